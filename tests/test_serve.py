"""``lifelong serve``'s API in process: a real Service (ingest log, learner thread, store)
behind the real FastAPI app, through Starlette's test client."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lifelong.config import ConfigError, RunConfig
from lifelong.serve.app import create_app
from lifelong.serve.cli import read_token
from lifelong.serve.service import Service
from tests.serve_helpers import SMALL, batches, digit_tasks, wait_until

CFG = dict(SMALL, stream="serve")


@pytest.fixture
def served(tmp_path):
    service = Service(RunConfig(**CFG), tmp_path / "run", publish_every=5, echo=lambda m: None)
    service.start()
    yield service, TestClient(create_app(service))
    service.shutdown()


def post_task(client, task: dict, key: str) -> None:
    for b, x, y in batches(task):
        r = client.post(
            "/v1/observe",
            json={"x": x.tolist(), "y": y.tolist(), "task_id": 0},
            headers={"Idempotency-Key": f"{key}-{b}"},
        )
        assert r.status_code == 200, r.text
    r = client.post(
        "/v1/experiences/end",
        json={"x_test": task["x_test"].tolist(), "y_test": task["y_test"].tolist()},
    )
    assert r.status_code == 200, r.text


def learned_all(client, experiences: int):
    state = client.get("/v1/run").json()
    done = state["queued_examples"] == 0 and len(state["matrix"]) == experiences
    return state if done else None


def test_learns_two_tasks_and_answers_while_learning(served):
    service, client = served
    tasks = digit_tasks()
    post_task(client, tasks[0], "a")
    post_task(client, tasks[1], "b")
    state = wait_until(lambda: learned_all(client, 2), what="both tasks learned")
    R = np.array(state["matrix"], dtype=float)
    assert state["learned"] == state["received"] == 400
    assert np.isnan(R[0, 1]) and R[1, 1] > 0.8 and R[0, 0] > 0.8  # learned, and remembered
    assert state["summary"]["experiences_trained"] == 2
    assert sum(state["memory"]["by_class"][:4]) == state["memory"]["size"] == 50
    # the training loss, smoothed, and in every point of the dashboard's history
    assert 0 < state["loss"] < 5 and state["history"][-1][3] == state["loss"]

    r = client.post("/v1/predict", json={"x": tasks[1]["x_test"][:20].tolist()})
    body = r.json()
    assert r.status_code == 200 and len(body["labels"]) == 20
    assert np.allclose(np.sum(body["probabilities"], axis=1), 1.0, atol=1e-4)
    hits = np.mean(np.array(body["labels"]) == tasks[1]["y_test"][:20])
    assert hits > 0.7

    adapted = client.post(
        "/v1/predict", json={"x": tasks[1]["x_test"][:5].tolist(), "adapt": True}
    ).json()
    assert len(adapted["labels"]) == 5
    assert np.allclose(np.sum(adapted["probabilities"], axis=1), 1.0, atol=1e-4)

    picture = client.get("/v1/memory/picture", params={"per_class": 3})
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG")
    stats = client.get("/v1/memory/stats").json()
    assert stats["memories"] == 50
    found = client.post("/v1/memory/search", json={"x": tasks[0]["x"][0].tolist(), "k": 5})
    memories = found.json()["memories"]
    assert len(memories) == 5 and memories[0]["distance"] <= memories[-1]["distance"]
    one = client.get(f"/v1/memory/{memories[0]['id']}").json()
    assert one["label"] == memories[0]["label"]
    only_threes = client.post(
        "/v1/memory/search", json={"x": tasks[0]["x"][0].tolist(), "k": 3, "label": 3}
    ).json()["memories"]
    assert only_threes and {m["label"] for m in only_threes} == {3}
    assert client.get("/v1/memory/999999").status_code == 404

    text = client.get("/metrics").text
    assert "lifelong_examples_learned_total 400" in text
    assert "lifelong_queue_examples 0" in text
    assert f"lifelong_training_loss {state['loss']}" in text
    assert "# TYPE lifelong_predict_seconds summary" in text
    assert client.get("/healthz").json() == {"status": "learning"}
    assert "/v1/observe" in client.get("/openapi.json").json()["paths"]


def test_a_retried_batch_is_taken_once(served):
    service, client = served
    task = digit_tasks()[0]
    body = {"x": task["x"][:10].tolist(), "y": task["y"][:10].tolist()}
    first = client.post("/v1/observe", json=body, headers={"Idempotency-Key": "k1"}).json()
    again = client.post("/v1/observe", json=body, headers={"Idempotency-Key": "k1"}).json()
    assert not first["duplicate"] and again["duplicate"]
    assert again["seq"] == first["seq"] and service.log.received == 10


def test_an_npz_body_is_taken_and_pickles_are_not(served):
    service, client = served
    task = digit_tasks()[0]
    buf = io.BytesIO()
    np.savez(buf, x=task["x"][:10], y=task["y"][:10])
    r = client.post(
        "/v1/observe", content=buf.getvalue(), headers={"content-type": "application/x-npz"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["last_position"] == 9
    evil = io.BytesIO()
    np.savez(evil, x=np.array([{"a": 1}], dtype=object), y=np.array([1]))
    r = client.post(
        "/v1/observe", content=evil.getvalue(), headers={"content-type": "application/x-npz"}
    )
    assert r.status_code == 400 and "object arrays are not accepted" in r.json()["detail"]
    assert service.log.received == 10


BAD = [
    ({"x": [[1.0] * 63], "y": [1]}, 400, "shape (63,)"),
    ({"x": [[1.0] * 64], "y": [10]}, 400, "out of range for 10 classes"),
    ({"x": [[1.0] * 64], "y": [1.5]}, 400, "not an integer"),
    ({"x": [[1.0] * 64, [1.0]], "y": [1, 1]}, 400, "not a rectangular array"),
    ({"x": [["a"] * 64], "y": [1]}, 400, "numeric"),
    ({"x": [[1.0] * 64], "y": [1, 2]}, 400, "has 1 examples but y has 2"),
    ({"x": [], "y": []}, 400, "expected shape (N, ...features)"),
    ({"x": [[1.0] * 64], "y": [1], "task_id": -1}, 422, "task_id"),
    ({"x": [[1.0] * 64], "y": [1], "label": 3}, 422, "label"),
    ({"x": [[1.0] * 64], "y": [1], "task_id": 5}, 409, "experience 0 is task 0"),
]


def test_bad_requests_name_the_problem_and_store_nothing(served):
    service, client = served
    task = digit_tasks()[0]
    ok = {"x": task["x"][:10].tolist(), "y": task["y"][:10].tolist(), "task_id": 0}
    assert client.post("/v1/observe", json=ok).status_code == 200
    before = (service.log.last_seq, service.log.received)
    for body, status, words in BAD:
        r = client.post("/v1/observe", json=body)
        assert r.status_code == status and words in r.json()["detail"], (body, r.text)
    nan = '{"x": [[' + ",".join(["NaN"] * 64) + ']], "y": [1]}'
    r = client.post("/v1/observe", content=nan, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "NaN or inf" in r.json()["detail"]
    r = client.post("/v1/observe", content=b"x,y\n1,2", headers={"content-type": "text/csv"})
    assert r.status_code == 415
    r = client.post("/v1/experiences/end", json={"x_test": [[1.0] * 64]})
    assert r.status_code == 400 and "both x_test and y_test" in r.json()["detail"]
    r = client.post("/v1/predict", json={"x": [[1.0] * 5]})
    assert r.status_code == 400 and "shape (5,)" in r.json()["detail"]
    r = client.post("/v1/memory/search", json={"key": [0.0] * 3})
    assert r.status_code in (400, 503)
    assert (service.log.last_seq, service.log.received) == before


def test_the_memory_asks_again_later_while_the_learner_makes_its_store(tmp_path):
    """Before the first checkpoint there is no store; while the learner makes it, its
    database is there with no tables, then tables and no settings. Each time the memory
    routes answer 503 (ask again), not 500 naming the store corrupt (it did, once, under two
    test processes)."""
    import sqlite3

    service = Service(RunConfig(**CFG), tmp_path / "run", echo=lambda m: None)
    client = TestClient(create_app(service))
    r = client.get("/v1/memory/stats")
    assert r.status_code == 503 and "no memories yet" in r.json()["detail"]
    folder = tmp_path / "run" / "memory"
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / "memory.sqlite")
    db.execute("PRAGMA journal_mode=WAL")  # the writer's first statement: no table yet
    r = client.get("/v1/memory/stats")
    assert r.status_code == 503 and "no store settings yet" in r.json()["detail"]
    db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")  # tables, no settings
    db.commit()
    r = client.get("/v1/memory/stats")
    assert r.status_code == 503 and "no store settings yet" in r.json()["detail"]
    db.close()
    service.shutdown()


def test_oversize_bodies_are_refused(tmp_path):
    service = Service(RunConfig(**CFG), tmp_path / "run", echo=lambda m: None)
    client = TestClient(create_app(service, max_bytes=1000))
    r = client.post("/v1/observe", json={"x": [[1.0] * 64] * 10, "y": [1] * 10})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert service.log.received == 0
    service.shutdown()


def test_a_learner_behind_gets_429_with_retry_after(tmp_path):
    # the learner is never started here: nothing is learned, so the queue only grows
    service = Service(RunConfig(**CFG), tmp_path / "run", max_queue=25, echo=lambda m: None)
    client = TestClient(create_app(service))
    task = digit_tasks()[0]
    codes = []
    for _, x, y in batches(task):
        r = client.post("/v1/observe", json={"x": x.tolist(), "y": y.tolist()})
        codes.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            assert "behind" in r.json()["detail"]
            break
    assert codes == [200, 200, 429]
    assert service.log.received == 20
    assert "lifelong_observe_refused_total 1" in client.get("/metrics").text
    service.shutdown()


def test_a_token_guards_every_api_route(tmp_path):
    service = Service(RunConfig(**CFG), tmp_path / "run", echo=lambda m: None)
    token = "s3cret-token-of-enough-length"
    client = TestClient(create_app(service, token=token))
    assert client.get("/v1/run").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/run", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/").status_code == 200  # the page holds no data
    service.shutdown()


def test_other_addresses_need_a_token(tmp_path):
    with pytest.raises(ConfigError, match="--token-file"):
        read_token(None, "0.0.0.0")
    assert read_token(None, "127.0.0.1") is None
    short = tmp_path / "t"
    short.write_text("abc")
    with pytest.raises(ConfigError, match="at least 16"):
        read_token(str(short), "0.0.0.0")


def test_one_server_per_run_folder(tmp_path):
    from lifelong.errors import RunFolderBusy

    first = Service(RunConfig(**CFG), tmp_path / "run", echo=lambda m: None)
    with pytest.raises(RunFolderBusy, match="served by another lifelong serve"):
        Service(RunConfig(**CFG), tmp_path / "run", echo=lambda m: None)
    first.shutdown()
    Service(RunConfig(**CFG), tmp_path / "run", echo=lambda m: None).shutdown()  # free again


def test_a_task_free_stream_needs_no_experience_ends(served):
    service, client = served
    task = digit_tasks()[0]
    for _, x, y in batches(task):
        assert client.post("/v1/observe", json={"x": x.tolist(), "y": y.tolist()}).is_success
    extra = {"x": task["x"][:5].tolist(), "y": task["y"][:5].tolist()}  # step 21: no view due
    assert client.post("/v1/observe", json=extra).is_success
    state = client.get("/v1/run", params={"wait": 120}).json()
    assert state["caught_up"] and state["learned"] == 205 and state["matrix"] == []
    assert state["steps"] == 21
    wait_until(lambda: service.snapshot is not None and service.snapshot.step == 21)
    labels = client.post("/v1/predict", json={"x": task["x_test"].tolist()}).json()["labels"]
    assert np.mean(np.array(labels) == task["y_test"]) > 0.8


def test_a_learner_that_cannot_start_is_an_error_of_start(tmp_path):
    """A folder served before with another config: the learner process refuses it, and
    start() raises its message (the CLI's one line, exit 2) instead of serving."""
    first = Service(RunConfig(**CFG), tmp_path / "run", echo=lambda m: None)
    first.start()
    client = TestClient(create_app(first))
    task = digit_tasks()[0]
    for _, x, y in batches(task):
        client.post("/v1/observe", json={"x": x.tolist(), "y": y.tolist()})
    assert client.get("/v1/run", params={"wait": 120}).json()["caught_up"]
    first.shutdown()
    other = Service(RunConfig(**{**CFG, "memory": 60}), tmp_path / "run", echo=lambda m: None)
    with pytest.raises(ConfigError, match="different config"):
        other.start()
    other.shutdown()


def test_a_learner_that_dies_is_reported_and_nothing_more_is_acknowledged(served):
    service, client = served
    assert client.get("/healthz").status_code == 200
    service.process.kill()
    wait_until(lambda: client.get("/healthz").status_code == 503, what="healthz to say so")
    assert "exited with status -9" in client.get("/healthz").json()["detail"]
    r = client.post("/v1/observe", json={"x": [[0.0] * 64], "y": [1]})
    assert r.status_code == 503 and "the learner has stopped" in r.json()["detail"]
    assert service.log.received == 0
