"""Faults on the service read like faults on a run: a full disk is a 507 naming the folder
(and the health check's cause) with nothing stored; a damaged ingest log is one line, exit 2;
a port in use is one line and no folder left behind to refuse the corrected command."""

from __future__ import annotations

import io
import os
import socket
import subprocess

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from lifelong import cli
from lifelong.config import RunConfig
from lifelong.serve.app import create_app
from lifelong.serve.ingest_log import IngestLog
from lifelong.serve.service import Service
from tests.serve_helpers import SMALL, Served, digit_tasks

NPZ = {"content-type": "application/x-npz"}

CFG = RunConfig(**dict(SMALL, stream="serve"))


def fill_disk(log: IngestLog, pages: int | None) -> None:
    """Cap the log's database at ``pages`` pages (SQLite then answers SQLITE_FULL, "database
    or disk is full", as on a full disk); None lifts the cap."""

    def cap(dbapi_conn, _record) -> None:
        limit = pages if pages is not None else 1 << 30
        dbapi_conn.execute(f"PRAGMA max_page_count = {limit}")

    event.listen(log.engine, "connect", cap)
    log.engine.dispose()  # pooled connections reconnect under the cap


def test_a_full_disk_is_a_507_and_the_health_checks_cause(tmp_path):
    """The ingest log's disk fills (SQLite answers SQLITE_FULL) under observe.
    Expect: 507 naming the folder, nothing of the batch stored, /healthz 503 naming the
    cause; once space is freed the same retry is taken and health is back."""
    service = Service(CFG, tmp_path / "run", echo=lambda m: None)
    client = TestClient(create_app(service))
    task = digit_tasks()[0]
    body = {"x": task["x"][:10].tolist(), "y": task["y"][:10].tolist()}
    try:
        assert client.post("/v1/observe", json=body).status_code == 200
        with service.log.engine.connect() as c:
            used = c.exec_driver_sql("PRAGMA page_count").scalar()
        fill_disk(service.log, used)
        big = {"x": task["x"][:100].tolist(), "y": task["y"][:100].tolist()}
        r = client.post("/v1/observe", json=big, headers={"Idempotency-Key": "k"})
        assert r.status_code == 507, r.text
        assert f"the disk holding {tmp_path / 'run'} is full" in r.json()["detail"]
        health = client.get("/healthz")
        assert health.status_code == 503 and "is full" in health.json()["detail"]
        assert service.log.received == 10  # nothing of the refused batch was stored
        fill_disk(service.log, None)  # space freed: the same retry is taken, health is back
        r = client.post("/v1/observe", json=big, headers={"Idempotency-Key": "k"})
        assert r.status_code == 200 and not r.json()["duplicate"]
        assert client.get("/healthz").status_code == 200 and service.log.received == 110
    finally:
        service.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_real_full_disk_under_serve(tmp_path):
    """Serve on a 6 MiB tmpfs and post batches of 100 examples until the disk is full.
    Expect: 507 naming the folder; /healthz 503 naming a full disk; SIGTERM ends the server
    in one line, no traceback; with space freed the same command resumes and learns every
    acknowledged example exactly once."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], check=True)
    try:
        run, rng, taken = mnt / "run", np.random.default_rng(0), 0
        server = Served(run, log_dir=tmp_path)
        with httpx.Client(base_url=server.url, timeout=120) as api:
            for _ in range(200):
                body = io.BytesIO()
                np.savez(body, x=rng.random((100, 784), np.float32), y=rng.integers(0, 10, 100))
                r = api.post("/v1/observe", content=body.getvalue(), headers=NPZ)
                if r.status_code != 200:
                    break
                taken += 100
            assert r.status_code == 507, r.text
            assert f"the disk holding {run} is full" in r.json()["detail"]
            health = api.get("/healthz")
            assert health.status_code == 503 and "full" in health.json()["detail"]
        assert server.stop() in (2, 143)  # 2 once the learner has stopped on the full disk
        said = server.log_path.read_text()
        assert "Traceback" not in said, said
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        server = Served(run, log_dir=tmp_path)
        with httpx.Client(base_url=server.url, timeout=400) as api:
            state = api.get("/v1/run", params={"wait": 300}).json()
        assert state["caught_up"] and state["learned"] == state["received"] == taken
        assert server.stop() == 143
    finally:
        Served.kill_leftovers()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_ingest_log_is_one_line_exit_2(tmp_path, capsys, damage):
    """Truncate ingest.sqlite, or overwrite its header, then serve.
    Expect: exit 2, one line naming the file and --reset-log, no traceback; the file is
    unchanged."""
    run = tmp_path / "run"
    log = IngestLog(run)
    for i in range(100):
        x = np.random.default_rng(i).random((10, 64), np.float32)
        log.append_batch(x, np.zeros(10, np.int64), 0, f"k{i}")
    log.close()
    path = run / "ingest.sqlite"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        if damage == "truncated":
            f.truncate(size // 2)
        else:
            f.write(b"not a database" * 10)
    before = path.read_bytes()
    code = cli.main(["serve", "--out", str(run), "--n-classes", "10", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{path} is damaged" in err and "--reset-log" in err
    assert path.read_bytes() == before  # nothing was changed


def test_a_port_in_use_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    """Serve on a port another socket holds.
    Expect: exit 2, one line naming the address; no run folder left behind."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = tmp_path / "runs" / "live"
        argv = ["serve", "--out", str(run), "--n-classes", "10", "--port", str(port)]
        assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port}" in err and "another --port" in err
    assert not (tmp_path / "runs").exists()
