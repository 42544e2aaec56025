"""``lifelong memory ...`` on a real store folder."""

from __future__ import annotations

import csv
import json
import os
import subprocess

import numpy as np
import pytest

from lifelong.cli import main
from stores import EpisodicStore
from tests.run_helpers import LIFELONG, ROOT
from tests.store_helpers import DIM, VSHAPE, batch


@pytest.fixture()
def store_dir(tmp_path):
    rng = np.random.default_rng(0)
    keys, values, labels = batch(rng, 60)
    with EpisodicStore.create(tmp_path / "mem", dim=DIM, value_shape=VSHAPE) as st:
        st.write(keys, values, labels, tasks=np.arange(60) // 30)
    np.save(tmp_path / "q.npy", keys[5])
    return tmp_path


def run_json(capsys, *argv):
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_stats(store_dir, capsys):
    code, info = run_json(capsys, "memory", "stats", str(store_dir / "mem"))
    assert code == 0 and info["memories"] == 60 and info["tasks"] == {"0": 30, "1": 30}


def test_query_by_id_and_by_npy_with_filter(store_dir, capsys):
    code, rows = run_json(capsys, "memory", "query", str(store_dir / "mem"), "--id", "5", "-k", "3")
    assert code == 0 and rows[0]["id"] == 5 and rows[0]["distance"] == 0.0 and len(rows) == 3
    code, rows = run_json(
        capsys,
        "memory",
        "query",
        str(store_dir / "mem"),
        "--key",
        str(store_dir / "q.npy"),
        "--task",
        "1",
    )
    assert code == 0 and {r["task"] for r in rows} == {1} and len(rows) == 10
    assert main(["memory", "query", str(store_dir / "mem"), "--id", "5"]) == 0
    assert "distance" in capsys.readouterr().out


def test_sample(store_dir, capsys):
    code, rows = run_json(
        capsys, "memory", "sample", str(store_dir / "mem"), "-n", "7", "--positions", "0:20"
    )
    assert code == 0 and len(rows) == 7 and all(r["position"] < 20 for r in rows)


def test_export_npz_and_csv(store_dir, capsys):
    assert main(["memory", "export", str(store_dir / "mem"), str(store_dir / "m.npz")]) == 0
    data = np.load(store_dir / "m.npz")
    assert data["keys"].shape == (60, DIM) and data["values"].shape == (60, *VSHAPE)
    assert data["id"].tolist() == list(range(60))
    assert main(["memory", "export", str(store_dir / "mem"), str(store_dir / "m.csv")]) == 0
    with open(store_dir / "m.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60 and rows[0]["label"] != ""


def test_verify_and_reindex(store_dir, capsys):
    code, report = run_json(capsys, "memory", "verify", str(store_dir / "mem"))
    assert code == 0 and report["ok"]
    code, out = run_json(capsys, "memory", "reindex", str(store_dir / "mem"))
    assert code == 0 and out == {"reindexed": 60}


def test_verify_exit_1_when_index_disagrees(store_dir, capsys):
    # A store whose saved index covers the current version but lost entries: a cache bug.
    st = EpisodicStore.open(store_dir / "mem")
    st.index.remove(np.array([3, 4]))
    st.index.coverage.version = -1
    st.save_index()  # writes the damaged index as "current"
    st.engine.dispose()
    st.close(save=False)
    code, report = run_json(capsys, "memory", "verify", str(store_dir / "mem"))
    assert code == 1 and not report["ok"]
    assert "in database only [3, 4]" in report["problems"][0]


def test_missing_store_is_a_clear_error(tmp_path, capsys):
    assert main(["memory", "stats", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["list", "--positions", "4000:0"], "--positions 4000:0 holds no position"),
        (["sample", "-n", "0"], "-n must be positive, got 0"),
        (["sample", "-n", "-5"], "-n must be positive, got -5"),
        (["list", "--limit", "0"], "--limit must be positive"),
        (["list", "--offset", "-1"], "--offset must be 0 or more"),
        (["query", "--id", "1", "-k", "0"], "k must be positive"),
    ],
)
def test_counts_and_ranges_that_select_nothing_are_refused(store_dir, capsys, argv, words):
    """memory list/sample/query with --positions 4000:0, -n 0, -n -5, --limit 0, -k 0.
    Expect: exit 2 naming the flag, like -k 0."""
    assert main(["memory", argv[0], str(store_dir / "mem"), *argv[1:]]) == 2
    assert words in capsys.readouterr().err


def test_reindex_beside_a_live_writer_names_its_pid(store_dir, capsys):
    """memory reindex on a store a live process writes to.
    Expect: one line naming that process's pid."""
    with EpisodicStore.open(store_dir / "mem"):  # this process writes: it holds the lock
        assert main(["memory", "reindex", str(store_dir / "mem")]) == 2
    err = capsys.readouterr().err
    assert f"is in use by pid {os.getpid()}" in err and len(err.strip().splitlines()) == 1


def test_a_warning_is_one_line(store_dir):
    """memory stats on a store whose index file is garbage.
    Expect: exit 0; the rebuild warning is one line, no source echo."""
    (store_dir / "mem" / "keys.faiss").write_bytes(b"not an index")
    done = subprocess.run(
        [*LIFELONG, "memory", "stats", str(store_dir / "mem")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lifelong: warning: "), done.stderr
    assert "rebuilding the index" in lines[0]


def test_show_prints_a_memory_and_draws_its_example(tmp_path, capsys):
    """memory show ID: the fields, the example's shape and range; --png draws it."""
    from lifelong.memory_pictures import as_image

    rng = np.random.default_rng(0)
    with EpisodicStore.create(tmp_path / "mem", dim=DIM, value_shape=(784,)) as st:
        st.write(rng.standard_normal((3, DIM)).astype(np.float32), rng.random((3, 784)), [4, 5, 6])
    png = tmp_path / "m.png"
    code, shown = run_json(capsys, "memory", "show", str(tmp_path / "mem"), "1", "--png", str(png))
    assert code == 0 and shown["label"] == 5 and shown["value_shape"] == [784]
    assert png.stat().st_size > 1000 and shown["png"] == str(png)
    assert main(["memory", "show", str(tmp_path / "mem"), "7"]) == 2
    assert "no memory 7" in capsys.readouterr().err
    assert as_image(np.zeros(784)).shape == (28, 28)  # MNIST's flat digits are images
    assert as_image(np.zeros((3, 32, 32))).shape == (32, 32, 3)
    assert as_image(np.zeros(10)).shape == (1, 10)  # features: a strip


def test_no_task_is_written_one_way(tmp_path, capsys):
    """A memory written without a task id is "none" wherever it is shown: the list, the
    counts by task (text and JSON) and the stream's description."""
    rng = np.random.default_rng(1)
    with EpisodicStore.create(tmp_path / "mem", dim=DIM, value_shape=VSHAPE) as st:
        st.write(*batch(rng, 3))
    assert main(["memory", "list", str(tmp_path / "mem")]) == 0
    rows = capsys.readouterr().out.splitlines()[1:4]
    assert [r.split()[2] for r in rows] == ["none"] * 3
    code, info = run_json(capsys, "memory", "stats", str(tmp_path / "mem"))
    assert code == 0 and info["tasks"] == {"none": 3}
    assert main(["streams", "describe", "split-digits"]) == 0
    described = capsys.readouterr().out.splitlines()[2:]
    assert {r.split()[1] for r in described} == {"none"}
