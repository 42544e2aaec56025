"""The ingest log proves itself to the checkpoint: a served folder whose log was deleted or
replaced by an older copy is refused at start, in one message naming both and the way out,
never learned from the wrong place; ``--reset-log`` moves it all aside and starts afresh."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient

from lifelong.config import ConfigError, RunConfig
from lifelong.serve.app import create_app
from lifelong.serve.service import Service
from tests.serve_helpers import SMALL, batches, digit_tasks

CFG = RunConfig(**dict(SMALL, stream="serve"))


def serve_task(run, task: dict, key: str, **options) -> int:
    """Serve ``run``, post one task and its end, wait until it is learned, stop (the
    learner checkpoints on the way out); the examples it then says it learned."""
    service = Service(CFG, run, publish_every=5, echo=lambda m: None, **options)
    service.start()
    try:
        client = TestClient(create_app(service))
        for b, x, y in batches(task):
            r = client.post(
                "/v1/observe",
                json={"x": x.tolist(), "y": y.tolist(), "task_id": 0},
                headers={"Idempotency-Key": f"{key}-{b}"},
            )
            assert r.status_code == 200, r.text
        end = {"x_test": task["x_test"].tolist(), "y_test": task["y_test"].tolist()}
        assert client.post("/v1/experiences/end", json=end).status_code == 200
        assert client.get("/v1/run", params={"wait": 300}).json()["caught_up"]
        assert client.get("/healthz").status_code == 200
    finally:
        service.shutdown()
    return service.learned


def copy_log(src, dst) -> None:
    """A consistent copy of a SQLite file (what a backup tool would keep)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def drop_log(run) -> None:
    for name in ("ingest.sqlite", "ingest.sqlite-wal", "ingest.sqlite-shm"):
        (run / name).unlink(missing_ok=True)


def test_a_deleted_log_is_refused_and_reset_log_starts_afresh(tmp_path):
    """Serve a task, delete ingest.sqlite (checkpoint kept), restart.
    Expect: refused at start naming both files and the way out; nothing learned from the new
    log; --reset-log moves log and learned state to RUN/dropped-TIME/ and the folder starts
    afresh."""
    run = tmp_path / "run"
    first, second = digit_tasks()
    assert serve_task(run, first, "a") == 200
    drop_log(run)
    service = Service(CFG, run, echo=lambda m: None)
    with pytest.raises(ConfigError) as refused:
        service.start()
    service.shutdown()
    message = str(refused.value)
    assert "ingest.sqlite" in message and "checkpoint" in message
    assert "not the ingest log" in message and "--reset-log" in message
    assert (run / "checkpoint" / "state.pt").exists()  # the refusal moved nothing

    said: list[str] = []
    service = Service(CFG, run, reset_log=True, echo=said.append)
    service.shutdown()
    # the refused start made an empty log beside the checkpoint; both are moved
    assert said and "0 examples acknowledged" in said[0]
    assert "checkpoint at experience 1, example 200" in said[0]
    (aside,) = run.glob("dropped-*")
    assert (aside / "checkpoint" / "state.pt").exists() and not (run / "checkpoint").exists()
    assert serve_task(run, second, "b") == 200  # afresh: the second task is example 0..199


def test_an_older_copy_of_the_log_is_refused_not_skipped(tmp_path):
    """Put an older copy of ingest.sqlite (a restored backup) beside a newer checkpoint.
    Expect: refused at start ("older copy"), no acknowledged example skipped silently."""
    run = tmp_path / "run"
    first, second = digit_tasks()
    serve_task(run, first, "a")
    copy_log(run / "ingest.sqlite", tmp_path / "backup.sqlite")
    assert serve_task(run, second, "b") == 400
    drop_log(run)
    copy_log(tmp_path / "backup.sqlite", run / "ingest.sqlite")  # the backup put back
    service = Service(CFG, run, echo=lambda m: None)
    with pytest.raises(ConfigError) as refused:
        service.start()
    service.shutdown()
    message = str(refused.value)
    assert "ends at example 200" in message and "learned to example 400" in message
    assert "older copy" in message and "--reset-log" in message


def test_healthz_and_observe_answer_503_when_more_is_learned_than_logged(tmp_path):
    """The learner reports more examples learned than the log holds.
    Expect: /healthz 503 naming it; observe and end 503 (nothing more acknowledged)."""
    service = Service(CFG, tmp_path / "run", echo=lambda m: None)  # no learner started
    client = TestClient(create_app(service))
    assert client.get("/healthz").status_code == 200
    service.view = {**service.view, "position": 50}  # what a learner beside another log says
    r = client.get("/healthz")
    assert r.status_code == 503 and "holds 0" in r.json()["detail"]
    task = digit_tasks()[0]
    r = client.post("/v1/observe", json={"x": task["x"][:5].tolist(), "y": [0] * 5})
    assert r.status_code == 503 and service.log.received == 0
    service.shutdown()
