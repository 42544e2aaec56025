"""Labels that come late to a served run: a batch sent without ``y`` is answered on arrival
and learned when ``POST /v1/labels`` brings its labels, exactly as if it had come labelled
at that point of the log; both are committed before the answer, survive a restart, are taken
once, and bad labels are named and store nothing."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lifelong.config import RunConfig
from lifelong.serve.app import create_app
from lifelong.serve.ingest_log import IngestLog
from lifelong.serve.service import Service
from tests.serve_helpers import SMALL, batches, digit_tasks, wait_until

CFG = RunConfig(**dict(SMALL, stream="serve"))


def served(run) -> tuple[Service, TestClient]:
    service = Service(CFG, run, publish_every=5, echo=lambda m: None)
    service.start()
    return service, TestClient(create_app(service))


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def end(client, task: dict) -> None:
    test = {"x_test": task["x_test"].tolist(), "y_test": task["y_test"].tolist()}
    ok(client.post("/v1/experiences/end", json=test))


def learned_all(client, experiences: int, examples: int):
    state = client.get("/v1/run").json()
    done = state["learned"] == examples and len(state["matrix"]) == experiences
    return state if done and state["queued_examples"] == 0 else None


def test_a_batch_labelled_late_is_learned_as_if_it_came_labelled_then(tmp_path):
    """Serve two tasks twice: once labelled, once each batch sent bare and its labels right
    after. Expect the same accuracy matrix, to the last digit: the labels record is learned
    at its place in the log, like a labelled batch there."""
    matrices = []
    for late in (False, True):
        service, client = served(tmp_path / f"late-{late}")
        try:
            for task in digit_tasks():
                for _, x, y in batches(task):
                    if not late:
                        ok(client.post("/v1/observe", json={"x": x.tolist(), "y": y.tolist()}))
                        continue
                    r = ok(client.post("/v1/observe", json={"x": x.tolist()}))
                    assert r["awaiting_labels"] and r["first_position"] is None
                    ok(client.post("/v1/labels", json={"seq": r["seq"], "y": y.tolist()}))
                end(client, task)
            state = wait_until(lambda c=client: learned_all(c, 2, 400), what="both tasks")
        finally:
            service.shutdown()
        matrices.append(state["matrix"])
    assert matrices[0] == matrices[1]
    assert state["late_labels"]["labelled_late_examples"] == 400


def test_labels_after_a_restart_and_after_their_experience_are_learned(tmp_path):
    """Send the first task bare and end it, stop the service, start it again, send the second
    task labelled and then the first task's labels. Expect: after the restart the log still
    knows what waits (200 examples); the first task is learned in experience 1 (its accuracy
    low after experience 0, high after 1); the accuracy on arrival is the receipts' own."""
    run, (first, second) = tmp_path / "run", digit_tasks()
    service, client = served(run)
    bare = []
    try:
        for _, x, y in batches(first):
            r = ok(client.post("/v1/observe", json={"x": x.tolist()}))
            bare.append((r["seq"], y, r["predicted"]))
        end(client, first)
        wait_until(lambda: len(client.get("/v1/run").json()["matrix"]) == 1, what="experience 0")
    finally:
        service.shutdown()

    service, client = served(run)
    try:
        waiting = client.get("/v1/run").json()["late_labels"]
        assert waiting["awaiting_batches"] == 20 and waiting["awaiting_examples"] == 200
        for _, x, y in batches(second):
            ok(client.post("/v1/observe", json={"x": x.tolist(), "y": y.tolist()}))
        for seq, y, _ in bare:
            r = ok(client.post("/v1/labels", json={"seq": seq, "y": y.tolist()}))
            assert r["experience"] == 1 and r["batch"] == seq
        end(client, second)
        state = wait_until(lambda: learned_all(client, 2, 400), what="both tasks learned")
    finally:
        service.shutdown()
    R = np.array(state["matrix"], dtype=float)
    assert R[0, 0] < 0.6 < 0.8 < R[1, 0]  # nothing of task 0 learned until its labels came
    answered = [(np.array(p), y) for _, y, p in bare if p is not None]
    hits = sum(int((p == y).sum()) for p, y in answered)
    late = state["late_labels"]
    assert late["awaiting_examples"] == 0 and late["labelled_late_examples"] == 200
    if answered:
        assert late["arrival_accuracy"] == pytest.approx(hits / (10 * len(answered)))
    else:  # nothing was published before the first task ended: no answer to score
        assert late["arrival_accuracy"] is None


@pytest.fixture
def client(tmp_path):
    # the learner is not started: these requests are about what is acknowledged
    service = Service(CFG, tmp_path / "run", max_queue=100, echo=lambda m: None)
    yield service, TestClient(create_app(service))
    service.shutdown()


def test_bad_labels_are_named_and_store_nothing(client):
    service, client = client
    x, y = digit_tasks()[0]["x"][:10], digit_tasks()[0]["y"][:10]
    labelled = ok(client.post("/v1/observe", json={"x": x.tolist(), "y": y.tolist()}))
    bare = ok(client.post("/v1/observe", json={"x": x.tolist()}, headers={"Idempotency-Key": "b"}))
    stored = service.log.last_seq

    def refused(code: int, body: dict, *words: str, headers=None) -> None:
        r = client.post("/v1/labels", json=body, headers=headers or {})
        assert r.status_code == code, r.text
        assert all(w in r.json()["detail"] for w in words), r.json()["detail"]
        assert service.log.last_seq == stored

    refused(404, {"seq": 99, "y": y.tolist()}, "no record 99")
    refused(409, {"seq": labelled["seq"], "y": y.tolist()}, "a labelled batch")
    refused(400, {"seq": bare["seq"], "y": y[:3].tolist()}, "holds 10 examples", "3 labels")
    refused(400, {"seq": bare["seq"], "y": [12] * 10}, "12")
    refused(422, {"seq": 0, "y": y.tolist()}, "seq")
    refused(
        409,
        {"seq": bare["seq"], "y": y.tolist()},
        "first used for",
        headers={"Idempotency-Key": "b"},
    )
    # a bare batch's own retry answers the first receipt; its key with other data is a 409
    again = ok(client.post("/v1/observe", json={"x": x.tolist()}, headers={"Idempotency-Key": "b"}))
    assert again["duplicate"] and again["seq"] == bare["seq"]
    other = client.post(
        "/v1/observe", json={"x": (x * 0).tolist()}, headers={"Idempotency-Key": "b"}
    )
    assert other.status_code == 409 and service.log.last_seq == stored

    first = ok(client.post("/v1/labels", json={"seq": bare["seq"], "y": y.tolist()}))
    retry = ok(client.post("/v1/labels", json={"seq": bare["seq"], "y": y.tolist()}))
    assert retry["duplicate"] and retry["seq"] == first["seq"] and not first["duplicate"]
    stored = service.log.last_seq  # the labels, once
    refused(409, {"seq": bare["seq"], "y": ((y + 1) % 10).tolist()}, "labelled already")
    stats = client.get("/v1/run").json()["late_labels"]
    assert stats["labelled_late_examples"] == 10 and stats["arrival_accuracy"] is None


def test_labels_of_another_tasks_batch_wait_for_its_experience_to_end(client):
    """A task-incremental client labels task 0's batch while experience 1 (task 1) is open:
    a 409 naming both tasks (learning it under task 1's head would be wrong)."""
    service, client = client
    x, y = digit_tasks()[0]["x"][:10], digit_tasks()[0]["y"][:10]
    bare = ok(client.post("/v1/observe", json={"x": x.tolist(), "task_id": 0}))
    ok(client.post("/v1/experiences/end", json={}))
    ok(client.post("/v1/observe", json={"x": x.tolist(), "y": y.tolist(), "task_id": 1}))
    r = client.post("/v1/labels", json={"seq": bare["seq"], "y": y.tolist()})
    assert r.status_code == 409 and "task 1" in r.json()["detail"]
    assert f"batch {bare['seq']} is task 0" in r.json()["detail"]


def test_a_log_made_before_late_labels_opens_and_takes_them(tmp_path):
    """An ingest log of an earlier version (no late-label columns) opens, keeps its records
    and counts, and takes a bare batch and its labels."""
    x, y = digit_tasks()[0]["x"][:10], digit_tasks()[0]["y"][:10]
    log = IngestLog(tmp_path)
    log.append_batch(x, y, None, "a")
    log.close()
    with sqlite3.connect(tmp_path / "ingest.sqlite") as db:
        db.execute("DROP INDEX records_by_label_of")
        for column in ("label_of", "predicted", "hits"):
            db.execute(f"ALTER TABLE records DROP COLUMN {column}")
    log = IngestLog(tmp_path)
    assert (log.received, log.last_seq) == (10, 1)
    bare = log.append_unlabelled(x, None, None, y)  # answered right on arrival
    labels = log.append_labels(bare.seq, y, None)
    assert labels.hits == 10 and log.received == 20 and log.late.arrival_accuracy == 1.0
    learned = [r for r in log.read(0) if r.kind in ("batch", "labels")]
    assert [len(r.y) for r in learned] == [10, 10] and np.array_equal(learned[1].x, x)
    log.close()
