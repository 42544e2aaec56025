"""Fault and abuse trials on run folders and stores (docs/reliability.md lists them).

Each test is one trial a sceptical operator tried: its docstring's first line says what was
done, its ``Expect:`` line what must happen. ``make faults`` runs them and rewrites the table.
Runs are stopped at steps the tests choose (the pause hook), never after a wall-clock delay.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import streams
from lifelong import checkpoint, cli
from lifelong.config import ConfigError
from lifelong.run_folder import FolderLock
from lifelong.runner import DiskFull, run
from stores import EpisodicStore, StoreError
from tests.run_helpers import (
    LIFELONG,
    ROOT,
    SMALL,
    events_without_timing,
    matrix,
    quiet,
    small_cfg,
    start_paused,
    stop_at,
)
from tests.store_helpers import batch

# process-spawning and whole-run tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A run of the small config stopped (as by Ctrl-C) after step 80, with two checkpoint
    generations on disk: made once, each trial damages its own copy (``half_done``)."""
    folder = tmp_path_factory.mktemp("stopped")
    with pytest.MonkeyPatch.context() as monkeypatch, stop_at(monkeypatch, folder, 80):
        result = run(small_cfg(), folder / "run", echo=quiet)
    assert result.interrupted
    return folder / "run"


@pytest.fixture
def half_done(stopped_run: Path, tmp_path: Path) -> Path:
    """This trial's copy of ``stopped_run``, as it was left."""
    return Path(shutil.copytree(stopped_run, tmp_path / "run", symlinks=True))


def cli_run(capsys, *args: str) -> tuple[int, str]:
    """``lifelong ARGS`` in this process: (exit code, stderr)."""
    code = cli.main(list(args))
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lifelong: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)


def file_state(path: Path) -> tuple[int, int, bytes]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, path.read_bytes()


# -- 1. two runs on one folder -------------------------------------------------------------
def test_second_run_on_a_live_folder_is_refused_before_touching_it(reference, tmp_path):
    """A second `lifelong run` on the --out of a live run.
    Expect: refused at once naming the first one's pid; the live store and log untouched; the
    first run resumes and ends with the reference matrix."""
    out = tmp_path / "live"
    first = start_paused(out, 40, tmp_path)
    db, log = out / "memory" / "memory.sqlite", out / "metrics.jsonl"
    before = file_state(db), file_state(log)
    second = subprocess.run(
        [*LIFELONG, "run", *SMALL, "--out", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert second.returncode == 2
    assert f"in use by another lifelong process (pid {first.pid})" in second.stderr
    assert "Traceback" not in second.stderr
    assert (file_state(db), file_state(log)) == before
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=120) == 130
    result = run(small_cfg(), out, echo=quiet)
    assert np.array_equal(result.matrix, matrix(reference))
    assert events_without_timing(out) == events_without_timing(reference)


def test_folder_lock_is_released_when_a_run_ends(tmp_path):
    """A run ends (or fails) and another process takes the folder.
    Expect: the lock is free again."""
    out = tmp_path / "r"
    run(small_cfg(experiences=1, learned_rates=False), out, echo=quiet)
    with FolderLock(out):
        pass


# -- 2. checkpoints say what they are -----------------------------------------------------
def test_checkpoint_refuses_another_stream_or_lr_with_config_toml_deleted(half_done):
    """Delete config.toml of a half-done run and resume with another --stream, or --lr.
    Expect: refused naming the key (the checkpoint carries its config); the right command
    resumes and rewrites config.toml."""
    out = half_done
    (out / "config.toml").unlink()
    with pytest.raises(ConfigError, match=r"stream: 'split-digits' \(folder\) vs 'rot"):
        run(small_cfg(stream="rotated-digits"), out, echo=quiet)
    with pytest.raises(ConfigError, match=r"lr: 0.1 \(folder\) vs 0.05"):
        run(small_cfg(lr=0.05), out, echo=quiet)
    assert not (out / "config.toml").exists()
    result = run(small_cfg(), out, echo=quiet)
    assert result.summary["complete"] and (out / "config.toml").exists()


def test_same_stream_name_with_other_data_is_refused(tmp_path):
    """Rerun a finished API run with the same stream name but its classes reversed.
    Expect: refused (the checkpoint holds the stream's data fingerprint), not the old matrix."""
    digits = streams.get_stream("split-digits", experiences=2, seed=0)
    train = [(e.x_train, e.y_train) for e in digits]
    test = [(e.x_test, e.y_test) for e in digits]
    cfg = small_cfg(experiences=0, learned_rates=False)
    run(cfg, tmp_path / "r", stream=streams.from_arrays(train, test, name="mine"), echo=quiet)
    reversed_stream = streams.from_arrays(train[::-1], test[::-1], name="mine")
    with pytest.raises(ConfigError, match="trained on other data"):
        run(cfg, tmp_path / "r", stream=reversed_stream, echo=quiet)


@pytest.mark.parametrize(
    "bad, needle",
    [
        (["--stream", "split-digitz"], "split-digitz"),
        (["--lr", "nan"], "lr must be a finite number"),
        (["--replay-batch", "-1"], "replay_batch must be positive"),
        (["--seed", "-1"], "seed must be zero or positive"),
    ],
)
def test_a_failed_first_attempt_leaves_nothing_that_refuses_the_fix(capsys, tmp_path, bad, needle):
    """A first attempt with a typo in --stream, --lr nan, a negative replay batch or seed.
    Expect: one line naming the key, exit 2, no folder left; the corrected command runs."""
    out = tmp_path / "r"
    base = ["run", "--stream", "split-digits", "--experiences", "1", "--no-progress"]
    code, err = cli_run(capsys, *base, *bad, "--out", str(out))
    assert_one_line_error(code, err, needle)
    assert not out.exists()
    code, _ = cli_run(capsys, *base, "--no-learned-rates", "--iters", "1", "--out", str(out))
    assert code == 0


def test_wrong_typed_toml_value_names_the_key(capsys, tmp_path):
    """A config file with `lr = "fast"` and one with `memory = 1.5`.
    Expect: one line naming the key, exit 2."""
    for line, needle in (('lr = "fast"', "lr must be a number"), ("memory = 1.5", "memory")):
        (tmp_path / "c.toml").write_text(line + "\n")
        code, err = cli_run(capsys, "run", "--config", str(tmp_path / "c.toml"), "--out", "x")
        assert_one_line_error(code, err, needle)


# -- 3. a damaged checkpoint never destroys the good copy --------------------------------
@pytest.mark.parametrize("damage", ["truncate-snapshot", "random-state", "truncate-state"])
def test_damaged_checkpoint_falls_back_to_the_previous_generation(reference, half_done, damage):
    """Truncate checkpoint/memory.sqlite, or replace or truncate state.pt, then resume.
    Expect: a warning naming the file, the damaged generation moved aside, the previous one
    used; the run ends with the reference matrix."""
    out = half_done
    target = out / "checkpoint" / ("memory.sqlite" if "snapshot" in damage else "state.pt")
    data = target.read_bytes()
    if damage == "random-state":
        target.write_bytes(np.random.default_rng(0).bytes(len(data)))
    else:
        target.write_bytes(data[: len(data) // 2])
    said = []
    result = run(small_cfg(), out, echo=said.append)
    assert any(target.name in m and "previous checkpoint" in m for m in said), said
    assert list(out.glob("checkpoint.damaged-*"))
    assert np.array_equal(result.matrix, matrix(reference))
    assert EpisodicStore.open(out / "memory", readonly=True).verify()["ok"]


def test_every_generation_damaged_is_an_error_that_changes_nothing(half_done):
    """Truncate the snapshot of both checkpoint generations, then resume.
    Expect: CheckpointError naming both; the live store's files unchanged."""
    out = half_done
    for gen in ("checkpoint", "checkpoint.old"):
        snap = out / gen / "memory.sqlite"
        snap.write_bytes(snap.read_bytes()[:1000])
    live = file_state(out / "memory" / "memory.sqlite")
    with pytest.raises(checkpoint.CheckpointError, match="no usable checkpoint.*checkpoint.old"):
        run(small_cfg(), out, echo=quiet)
    assert file_state(out / "memory" / "memory.sqlite") == live


# -- 4. the event log -------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["delete", "garbage-tail", "truncate-mid-line"])
def test_event_log_is_rebuilt_or_cut_never_padded(reference, half_done, damage):
    """Delete metrics.jsonl, append garbage to it, or cut it mid-line, then resume.
    Expect: whole JSON lines only (no NUL padding), `lifelong report` works; with the log
    intact up to the checkpoint it ends equal to the reference log."""
    out = half_done
    log = out / "metrics.jsonl"
    if damage == "delete":
        log.unlink()
    elif damage == "garbage-tail":
        log.write_bytes(log.read_bytes() + b'{"type": "curve", "acc\x00\x00')
    else:
        log.write_bytes(log.read_bytes()[:-7])
    said = []
    run(small_cfg(), out, echo=said.append)
    data = log.read_bytes()
    assert b"\x00" not in data
    events = events_without_timing(out)
    if damage == "garbage-tail":
        assert events == events_without_timing(reference)
    else:  # rebuilt from the checkpoint: untrained and experience ends, in order
        assert any("rebuilt it from the checkpoint" in m for m in said), said
        assert [e["type"] for e in events] == ["untrained"] + ["experience_end"] * 3
    assert cli.main(["report", str(out)]) == 0


# -- 5. an index file that does not match its database ----------------------------------
def _small_store(path: Path, n: int, seed: int = 0) -> None:
    with EpisodicStore.create(path, dim=8, value_shape=(2, 3)) as st:
        st.write(*batch(np.random.default_rng(seed), n))


def test_index_file_ahead_of_an_older_database_is_rebuilt(tmp_path):
    """Put an older memory.sqlite back beside a newer keys.faiss.
    Expect: searches return only ids in the database; a writer does not keep the stale index;
    verify is OK afterwards."""
    mem = tmp_path / "mem"
    _small_store(mem, 100)
    older = (mem / "memory.sqlite").read_bytes()
    with EpisodicStore.open(mem) as st:
        st.write(*batch(np.random.default_rng(1), 50))
    (mem / "memory.sqlite").write_bytes(older)
    with pytest.warns(UserWarning, match="does not belong to this database"):
        reader = EpisodicStore.open(mem, readonly=True)
    with reader:
        hits = reader.search(np.random.default_rng(2).standard_normal((20, 8)), k=10)
        assert hits.ids.max() < 100 and len(reader) == 100
    with pytest.warns(UserWarning), EpisodicStore.open(mem) as writer:
        assert writer.index.ntotal == 100
    with EpisodicStore.open(mem, readonly=True) as st:
        report = st.verify()
    assert report["ok"] and report["index_file"] == "current", report


@pytest.mark.parametrize("layout", ["v2", "v1"])
def test_crafted_index_with_valid_header_and_junk_body(tmp_path, capsys, layout):
    """Write keys.faiss (today's layout, header last; and the first one, header first) with
    a valid header and CRC over a junk body.
    Expect: verify reports it (exit 1), never crashes; reindex rebuilds it; verify then OK."""
    import struct
    import zlib

    import xxhash

    from stores.index_file import MAGIC1, MAGIC2

    mem = tmp_path / "mem"
    _small_store(mem, 30)
    path = mem / "keys.faiss"
    data = path.read_bytes()
    (hlen,) = struct.unpack("<Q", data[-8:])
    header = json.loads(data[-8 - hlen : -8])
    junk = np.random.default_rng(0).bytes(4000)
    header.update(size=len(junk), catalog_rows=0, catalog_fields=0)
    header.update(xxh3=xxhash.xxh3_64(junk).hexdigest(), crc32=zlib.crc32(junk))
    raw = json.dumps(header).encode()
    if layout == "v2":
        path.write_bytes(MAGIC2 + junk + raw + struct.pack("<Q", len(raw)))
    else:
        path.write_bytes(MAGIC1 + struct.pack("<Q", len(raw)) + raw + junk)
    assert cli.main(["memory", "verify", str(mem), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert any("damaged" in p for p in report["problems"]), report
    with pytest.warns(UserWarning, match="damaged"):
        assert cli.main(["memory", "reindex", str(mem)]) == 0
    assert cli.main(["memory", "verify", str(mem)]) == 0


# -- 6. verify ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage", ["drop-payloads", "drop-memories", "delete-payload-rows", "delete-meta"]
)
def test_verify_checks_every_table(tmp_path, damage, capsys):
    """Drop the payloads or the memories table, delete some payload rows, or drop the meta
    table. Expect: verify is not OK and names the problem, or opening says, in one line at the
    command line, that the store is damaged and which table is missing."""
    mem = tmp_path / "mem"
    _small_store(mem, 40)
    db = sqlite3.connect(mem / "memory.sqlite")
    db.execute(
        {
            "drop-payloads": "DROP TABLE payloads",
            "drop-memories": "DROP TABLE memories",
            "delete-payload-rows": "DELETE FROM payloads WHERE id IN (3, 5)",
            "delete-meta": "DROP TABLE meta",
        }[damage]
    )
    db.commit()
    db.close()
    if damage != "delete-payload-rows":
        table = damage.split("-")[1]
        words = "not a readable SQLite store" if table == "meta" else f"['{table}'] are missing"
        with pytest.raises(StoreError, match=re.escape(words)):
            EpisodicStore.open(mem, readonly=True)
        for command in ("verify", "stats", "list"):
            assert cli.main(["memory", command, str(mem)]) == 2
            err = capsys.readouterr().err
            assert words in err and len(err.strip().splitlines()) == 1, err
        return
    with EpisodicStore.open(mem, readonly=True) as st:
        report = st.verify()
    assert not report["ok"]
    assert any("payloads missing for memories [3, 5]" in p for p in report["problems"]), report


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root")
def test_a_store_on_a_read_only_mount_opens_for_reading(tmp_path, capsys):
    """Copy a closed store (its database and index, no -wal/-shm) to a filesystem mounted
    read-only. Expect: stats, verify and sample read it; a copy whose commits are still only
    in its write-ahead log is refused in one line saying why, nothing written."""
    mem = tmp_path / "mem"
    _small_store(mem, 40)
    mnt = tmp_path / "ro"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        for name in ("clean", "unfolded"):
            (mnt / name).mkdir()
            for f in ("memory.sqlite", "keys.faiss"):
                (mnt / name / f).write_bytes((mem / f).read_bytes())
        (mnt / "unfolded" / "memory.sqlite-wal").write_bytes(b"\0" * 4096)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with EpisodicStore.open(mnt / "clean", readonly=True) as st:
            assert len(st) == 40 and st.verify()["ok"] and len(st.sample(5).ids) == 5
        assert cli.main(["memory", "stats", str(mnt / "clean")]) == 0
        capsys.readouterr()
        assert cli.main(["memory", "stats", str(mnt / "unfolded")]) == 2
        err = capsys.readouterr().err
        assert "cannot be written and its write-ahead log" in err, err
        assert len(err.strip().splitlines()) == 1
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_verify_on_a_malformed_page_reports_and_never_raises(tmp_path, capsys):
    """Overwrite a page in the middle of memory.sqlite with junk.
    Expect: `memory verify` exits 1 (or 2 if the store cannot be opened) with one line, no
    traceback."""
    mem = tmp_path / "mem"
    _small_store(mem, 400)
    db = mem / "memory.sqlite"
    data = bytearray(db.read_bytes())
    page = 16384
    data[3 * page : 4 * page] = np.random.default_rng(0).bytes(page)
    db.write_bytes(bytes(data))
    code = cli.main(["memory", "verify", str(mem)])
    out, err = capsys.readouterr()
    assert code in (1, 2) and "Traceback" not in err
    assert ("FAILED" in out and "problem:" in out) or err.startswith("lifelong: error:")


def test_verify_beside_a_live_writer_reports_no_false_failures(tmp_path):
    """Call verify 40 times while another process writes, deletes and re-keys.
    Expect: every report OK (each reads one snapshot)."""
    mem = tmp_path / "mem"
    _small_store(mem, 200)
    writer = subprocess.Popen(
        [
            *LIFELONG[:1],
            "-c",
            "import numpy as np, sys\n"
            "from stores import EpisodicStore\n"
            "from tests.store_helpers import batch\n"
            "rng = np.random.default_rng(5)\n"
            "with EpisodicStore.open(sys.argv[1]) as st:\n"
            "    for i in range(400):\n"
            "        st.write(*batch(rng, 5))\n"
            "        if i % 3 == 0: st.delete(st.catalog.ids[:2])\n"
            "        if i % 7 == 0:\n"
            "            ids = st.catalog.ids[:4]\n"
            "            st.rekey(ids, rng.standard_normal((4, 8)).astype('float32'))\n"
            "        if i % 50 == 0: st.save_index()\n",
            str(mem),
        ],
        cwd=ROOT,
    )
    reports = []
    with EpisodicStore.open(mem, readonly=True) as reader:
        while writer.poll() is None or len(reports) < 40:
            reports.append(reader.verify(sample=50))
            if len(reports) >= 40 and writer.poll() is not None:
                break
    assert writer.wait(timeout=120) == 0
    bad = [r for r in reports if not r["ok"]]
    assert not bad, bad[:2]


# -- 7. temp files never follow symlinks ---------------------------------------------------
def test_planted_symlinks_are_never_written_through(reference, half_done, tmp_path):
    """Plant symlinks at memory/keys.faiss.tmp, memory/memory.sqlite.restore and
    checkpoint.tmp pointing outside the folder; reindex and resume.
    Expect: the link targets are unchanged; the run ends with the reference matrix."""
    out = half_done
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    victim_dir = tmp_path / "victim_dir"
    victim_dir.mkdir()
    (victim_dir / "keep.txt").write_text("precious")
    for link in ("memory/keys.faiss.tmp", "memory/memory.sqlite.restore"):
        (out / link).symlink_to(victim)
    (out / "checkpoint.tmp").symlink_to(victim_dir)
    result = run(small_cfg(), out, echo=quiet)
    assert np.array_equal(result.matrix, matrix(reference))
    assert cli.main(["memory", "reindex", str(out / "memory")]) == 0
    assert victim.read_text() == "precious"
    assert (victim_dir / "keep.txt").read_text() == "precious"


# -- 8. disk full ---------------------------------------------------------------------------
def test_disk_full_while_checkpointing(reference, monkeypatch, tmp_path):
    """The disk fills while the third checkpoint is written (ENOSPC from the write).
    Expect: one DiskFull message naming the intact checkpoint; no temporary files left; the
    folder and store locks released; the resume after space is freed equals the reference."""
    real, calls = checkpoint.write_snapshot, []

    def full_disk(database, dest):
        calls.append(dest)
        if len(calls) == 3:
            Path(dest).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(dest))
        real(database, dest)

    monkeypatch.setattr(checkpoint, "write_snapshot", full_disk)
    out = tmp_path / "run"
    with pytest.raises(DiskFull, match=r"no space left .*experience 0, batch 14\) is intact"):
        run(small_cfg(), out, echo=quiet)
    assert not list(out.glob(".checkpoint-*")) and not list(out.glob("**/*.tmp"))
    with FolderLock(out), EpisodicStore.open(out / "memory"):
        pass  # both locks free
    monkeypatch.setattr(checkpoint, "write_snapshot", real)
    result = run(small_cfg(), out, echo=quiet)
    assert np.array_equal(result.matrix, matrix(reference))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_on_a_real_small_filesystem(reference, tmp_path, capsys):
    """Run on a 1.5 MiB tmpfs until it is full (a real ENOSPC wherever it lands).
    Expect: exit 2 with one line saying no space is left; no temp files; locks released;
    after growing the filesystem the resume equals the reference."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mnt)], check=True)
    try:
        out = mnt / "run"
        code = cli.main(["run", *SMALL, "--out", str(out)])
        err = capsys.readouterr().err
        assert_one_line_error(code, err, "no space left")
        assert not list(out.glob(".checkpoint-*")) and not list(out.rglob("*.tmp"))
        with FolderLock(out), EpisodicStore.open(out / "memory"):
            pass
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        assert cli.main(["run", *SMALL, "--out", str(out)]) == 0
        assert np.array_equal(matrix(out), matrix(reference))
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# -- 9. a user's mistake or a damaged file: one line, exit 2 -------------------------------
def _digits0() -> streams.Experience:
    return streams.get_stream("split-digits", experiences=2, seed=0)[0]


def _task_file(path: Path, **arrays) -> None:
    digits = _digits0()
    base = dict(
        x=digits.x_train.numpy(),
        y=digits.y_train.numpy(),
        x_test=digits.x_test.numpy(),
        y_test=digits.y_test.numpy(),
    )
    np.savez(path, **{**base, **arrays})


FOLLOW_CASES = {
    "string features": lambda p: _task_file(p, x=np.array([["a"] * 64] * 4), y=np.arange(4)),
    "array task_id": lambda p: _task_file(p, task_id=np.array([1, 2])),
    "string task_id": lambda p: _task_file(p, task_id=np.array("one")),
    "x_test of the wrong width": lambda p: _task_file(p, x_test=_digits0().x_test.numpy()[..., :7]),
}
FOLLOW_NEEDLES = {
    "string features": "features must be numeric",
    "array task_id": "task_id must be one integer",
    "string task_id": "task_id must be one integer",
    "x_test of the wrong width": "x_test examples have shape (1, 8, 7)",
}


@pytest.mark.parametrize("case", list(FOLLOW_CASES))
def test_bad_follow_files_give_one_line(capsys, tmp_path, case):
    """A follow folder's second file has string features, an array or string task_id, or
    an x_test of the wrong width (a half-written file is waited for: tests/test_follow.py).
    Expect: one line naming the file and the problem, exit 2, before that file is trained."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _task_file(inbox / "a.npz")
    FOLLOW_CASES[case](inbox / "b.npz")
    out = tmp_path / "r"
    code, err = cli_run(
        capsys,
        *("run", "--follow", str(inbox), "--out", str(out), "--no-progress", "--iters", "1"),
        *("--max-experiences", "2", "--poll", "0.05"),
    )
    assert_one_line_error(code, err, "b.npz", FOLLOW_NEEDLES[case])
    ends = [e for e in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]
    assert [e["experience"] for e in ends if e["type"] == "experience_end"] == [0]


def _stores_for_cli(tmp_path: Path) -> Path:
    mem = tmp_path / "mem"
    _small_store(mem, 20)
    return mem


CLI_CASES = {
    "malformed --positions": (
        lambda t: ["memory", "sample", str(_stores_for_cli(t)), "--positions", "3-9"],
        "--positions must be START:STOP",
    ),
    "--seeds 0-x": (lambda t: ["compare", "--seeds", "0-x", "--out", str(t / "c")], "'0-x'"),
    "--seeds 4-0": (lambda t: ["compare", "--seeds", "4-0", "--out", str(t / "c")], "is empty"),
    "object-array .npy key": (
        lambda t: [
            "memory",
            "query",
            str(_stores_for_cli(t)),
            "--key",
            str(_object_npy(t / "k.npy")),
        ],
        "not a plain numeric .npy",
    ),
    "export onto a directory": (
        lambda t: ["memory", "export", str(_stores_for_cli(t)), str(_folder(t / "d.npz"))],
        "d.npz",
    ),
    "export into a missing folder": (
        lambda t: ["memory", "export", str(_stores_for_cli(t)), str(t / "no" / "x.csv")],
        "No such file",
    ),
    "--out that is a file": (
        lambda t: ["run", "--out", str(_file(t / "f")), "--experiences", "1"],
        "is a file, not a folder",
    ),
    "writer.lock that is a directory": (
        lambda t: ["memory", "reindex", str(_lock_dir(_stores_for_cli(t)))],
        "writer lock",
    ),
    "invalid JSON in the store's meta": (
        lambda t: ["memory", "stats", str(_bad_meta(_stores_for_cli(t)))],
        "invalid JSON",
    ),
    "0-byte memory.sqlite (read-only stats)": (
        lambda t: ["memory", "stats", str(_empty_db(t / "empty"))],
        "not a readable SQLite store",
    ),
}


def _object_npy(path: Path) -> Path:
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _file(path: Path) -> Path:
    path.write_text("not a folder")
    return path


def _lock_dir(mem: Path) -> Path:
    (mem / "writer.lock").unlink()
    (mem / "writer.lock").mkdir()
    return mem


def _bad_meta(mem: Path) -> Path:
    db = sqlite3.connect(mem / "memory.sqlite")
    db.execute("UPDATE meta SET value = '{not json' WHERE name = 'capacity'")
    db.commit()
    db.close()
    return mem


def _empty_db(folder: Path) -> Path:
    folder.mkdir()
    (folder / "memory.sqlite").touch()
    return folder


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_user_mistakes_give_one_line_and_exit_2(capsys, tmp_path, case):
    """Malformed --positions, --seeds 0-x or 4-0, an object-array .npy key, exporting onto a
    directory or into a missing folder, --out that is a file, a writer.lock that is a
    directory, invalid JSON in the store's meta, `memory stats` on a 0-byte memory.sqlite.
    Expect: one line naming the problem, exit 2, no traceback."""
    args, needle = CLI_CASES[case]
    code, err = cli_run(capsys, *args(tmp_path))
    assert_one_line_error(code, err, needle)
    if case.startswith("0-byte"):  # read-only means read-only: still an empty file
        assert (tmp_path / "empty" / "memory.sqlite").stat().st_size == 0


def test_double_ctrl_c_exits_130_with_one_line_and_resumes(reference, tmp_path):
    """Press Ctrl-C twice in a row during a run.
    Expect: exit 130, no traceback; the run resumes to the reference matrix."""
    out = tmp_path / "r"
    proc = start_paused(out, 30, tmp_path)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    result = run(small_cfg(), out, echo=quiet)
    assert np.array_equal(result.matrix, matrix(reference))
