"""A served stream that does not wait (``serve --real-time``): on the real clock, a batch
logged while the learner is still learning an earlier one is answered and not learned.

The rule is checked on a scripted clock (no test here depends on the machine's speed), and
through a served run where the order of events alone decides: the batches of one request
arrive together, so a free learner learns the first and answers the rest; a batch sent once
the learner has caught up is learned."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from lifelong.config import RunConfig
from lifelong.runner.clock import StreamClock
from lifelong.runner.wall_clock import WallClock, clock_from_dict
from lifelong.serve.app import create_app
from lifelong.serve.service import Service
from tests.serve_helpers import SMALL, digit_tasks, wait_until

CFG = RunConfig(**dict(SMALL, stream="serve", real_time=True))


def scripted(seconds_per_batch: float, arrivals: list[float]) -> WallClock:
    """A wall clock read from a script: batches arrive at ``arrivals`` and each one learned
    takes ``seconds_per_batch`` (100 compute units) from when the learner gets to it."""
    now = [0.0]
    clock = WallClock(interval=0.0, now=lambda: now[0])
    for at in arrivals:
        now[0] = max(now[0], at)
        if clock.arrive(at):
            now[0] += seconds_per_batch
            clock.took(100.0, seconds=seconds_per_batch)
    return clock


def test_a_learner_busy_when_a_batch_arrives_answers_it_and_learns_the_next_one_after():
    """Batches every second, learning takes 2.5 s: expect batches 0, 3, 6 learned (each the
    first to arrive after the learner was free), the pace and speed measured (1 s apart,
    0.025 s a unit: 40 units of room a batch), and the clock restored from its dict to the
    same decisions."""
    clock = scripted(2.5, [float(k) for k in range(9)])
    assert clock.learned == [0, 3, 6] and clock.arrived == 9
    assert clock.gap_seconds == pytest.approx(1.0)
    assert clock.unit_seconds == pytest.approx(0.025)
    assert clock.room() == pytest.approx(40.0)
    again = clock_from_dict(json.loads(json.dumps(clock.to_dict())))
    assert isinstance(again, WallClock) and again.to_dict() == clock.to_dict()
    assert again.arrive(8.5) is True  # learning batch 6 ended at 8.5
    assert isinstance(clock_from_dict(StreamClock(interval=60.0).to_dict()), StreamClock)
    # learning faster than the stream: every batch learned
    assert scripted(0.5, [float(k) for k in range(5)]).learned == [0, 1, 2, 3, 4]


def test_a_wall_clock_has_no_room_until_it_has_seen_the_pace_and_its_speed():
    clock = WallClock(interval=0.0, now=lambda: 0.0)
    assert clock.room() is None
    clock.arrive(0.0)
    assert clock.room() is None  # one arrival: no gap yet
    clock.arrive(0.2)
    clock.took(10.0, seconds=0.1)
    assert clock.room() == pytest.approx(0.2 / 0.01)


def test_a_wall_clock_says_how_much_time_is_left_before_the_next_batch_is_due():
    """What an experience's end may spend without missing a batch, in the plan's unit: from
    when the learner is free to the next batch due at the measured pace."""
    t = [0.0]
    clock = WallClock(interval=0.0, now=lambda: t[0])
    clock.arrive(0.0)
    assert clock.idle() == float("inf")  # pace and speed not seen yet
    clock.arrive(0.2)
    t[0] = 0.3
    clock.took(10.0, seconds=0.1)  # 0.01 s a unit, free at 0.3, the next due at 0.4
    assert clock.idle() == pytest.approx(10.0)
    t[0] = 0.5
    assert clock.idle() == 0.0  # overdue


def post(client, path: str, body: dict) -> dict:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def revealed(client, n: int):
    state = client.get("/v1/run").json()
    timed = state.get("real_time") or {}
    return state if timed.get("batches_revealed") == n and state["queued_examples"] == 0 else None


def served(run) -> tuple[Service, TestClient]:
    service = Service(CFG, run, publish_every=5, echo=lambda m: None)
    service.start()
    return service, TestClient(create_app(service))


def test_a_served_burst_is_answered_and_a_batch_after_it_learned_across_a_restart(tmp_path):
    """Send 50 examples in one request (5 batches at once), then, once the learner has
    caught up, one batch more, and end the experience; restart; one batch more. Expect 1,
    then 2 of 6, then 3 of 7 batches learned, every batch answered (online accuracy over
    all), the summary and /metrics saying so, and the clock resumed from the checkpoint."""
    run, task = tmp_path / "run", digit_tasks()[0]
    x, y = task["x"], task["y"]
    service, client = served(run)
    try:
        post(client, "/v1/observe", {"x": x[:50].tolist(), "y": y[:50].tolist()})
        state = wait_until(lambda: revealed(client, 5), what="the burst taken")
        assert state["real_time"]["batches_learned"] == 1
        assert state["learned"] == 50  # every example taken: answered or learned
        post(client, "/v1/observe", {"x": x[50:60].tolist(), "y": y[50:60].tolist()})
        state = wait_until(lambda: revealed(client, 6), what="the batch after it")
        assert state["real_time"]["batches_learned"] == 2
        assert 0.0 <= state["online_accuracy"] <= 1.0
        test = {"x_test": task["x_test"].tolist(), "y_test": task["y_test"].tolist()}
        post(client, "/v1/experiences/end", test)
        wait_until(lambda: len(client.get("/v1/run").json()["matrix"]) == 1, what="the end")
        metrics_text = client.get("/metrics").text
        assert "lifelong_batches_revealed_total 6" in metrics_text
        assert "lifelong_batches_learned_total 2" in metrics_text
    finally:
        service.shutdown()
    summary = json.loads((run / "summary.json").read_text())["summary"]
    assert summary["clock"] == "wall"
    assert summary["learned_share"] == pytest.approx(2 / 6, abs=1e-5)
    assert summary["batches_revealed"] == 6 and summary["online_accuracy"] is not None

    service, client = served(run)
    try:
        post(client, "/v1/observe", {"x": x[60:70].tolist(), "y": y[60:70].tolist()})
        state = wait_until(lambda: revealed(client, 7), what="a batch after the restart")
        assert state["real_time"]["batches_learned"] == 3
    finally:
        service.shutdown()
