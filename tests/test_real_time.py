"""The real-time protocol: a stream clock counted in compute, near-future accuracy, and the
run folder's record of the batches learned; a slow stream changes nothing, and a run
stopped under the clock resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import streams
from lifelong.config import ConfigError, RunConfig
from lifelong.learner.agent import Agent
from lifelong.runner import run
from lifelong.runner.clock import StreamClock, replay_update_cost
from tests.run_helpers import matrix, quiet, stop_at


@pytest.mark.parametrize(
    "cost, learned",
    [
        (60.0, list(range(8))),  # plain replay's cost: every batch
        (61.0, [0, 2, 4, 6]),  # a little more: busy when the next arrives, so every other
        (150.0, [0, 3, 6]),  # 2.5 intervals: free again at the third
        (10.0, list(range(8))),
    ],
)
def test_the_clock_lets_a_learner_learn_what_its_cost_leaves_time_for(cost, learned):
    clock = StreamClock.for_run(batch_size=10, stream_rate=1.0)
    assert clock.interval == replay_update_cost(10) == 60.0  # (10 + 10 rows) x 3
    for _ in range(8):
        if clock.arrive():
            clock.took(cost)
    assert clock.learned == learned and clock.arrived == 8
    assert clock.learned_share == len(learned) / 8
    again = StreamClock.from_dict(json.loads(json.dumps(clock.to_dict())))
    assert again == clock  # what a checkpoint keeps is the whole clock


def test_a_faster_stream_halves_the_interval():
    assert StreamClock.for_run(10, 2.0).interval == 30.0
    with pytest.raises(ConfigError, match="stream_rate must be positive"):
        RunConfig(real_time=True, stream_rate=0).validate()


def summary_of(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())["summary"]


def cfg(**kw) -> RunConfig:
    base = dict(stream="split-digits", experiences=2, seed=2, memory=60, progress=False)
    return RunConfig(**{**base, **kw}).validate()


def test_a_stream_slow_enough_is_the_waiting_run_plus_its_measures(tmp_path):
    """Real time with time for every batch learns what the waiting run learns, exactly
    (predicting ahead changes nothing), and adds the protocol's measures; near-future
    accuracy is the waiting run's too (a named stream's next batch is there to predict);
    without that measure the waiting run learns the same."""
    waiting = run(cfg(), tmp_path / "waiting", echo=quiet)
    slow = run(cfg(real_time=True, stream_rate=0.01), tmp_path / "slow", echo=quiet)
    assert np.array_equal(slow.matrix, waiting.matrix)
    s = summary_of(tmp_path / "slow")
    assert s["learned_share"] == 1.0 and s["batches_learned"] == s["batches_revealed"]
    assert s["online_accuracy"] == summary_of(tmp_path / "waiting")["online_accuracy"]
    assert 0.3 < s["near_future_accuracy"] < 1  # learned, yet not the next batch's labels
    assert "learned_share" not in summary_of(tmp_path / "waiting")
    assert summary_of(tmp_path / "waiting")["near_future_accuracy"] == s["near_future_accuracy"]
    page = (tmp_path / "{}" / "report" / "index.html").as_posix()
    assert "near-future accuracy" in Path(page.format("slow")).read_text()
    assert "near-future accuracy" in Path(page.format("waiting")).read_text()
    assert "batches learned of those revealed" not in Path(page.format("waiting")).read_text()
    # --no-near-future: no look-ahead prediction a batch (the measure's whole cost: one
    # prediction with the memory's prototypes), nothing else changed
    bare = run(cfg(near_future=False), tmp_path / "bare", echo=quiet)
    assert np.array_equal(bare.matrix, waiting.matrix)
    assert "near_future_accuracy" not in summary_of(tmp_path / "bare")
    online = summary_of(tmp_path / "bare")["online_accuracy"]
    assert online == summary_of(tmp_path / "waiting")["online_accuracy"]


def test_near_future_accuracy_left_unmeasured_on_a_stream_that_does_not_wait(tmp_path):
    run(cfg(real_time=True, near_future=False), tmp_path / "timed", echo=quiet)
    s = summary_of(tmp_path / "timed")
    assert s["near_future_accuracy"] is None and s["stream_interval"] == 60.0  # on the clock


def test_at_the_default_rate_a_fixed_update_learns_a_share_and_answers_every_batch(tmp_path):
    out = tmp_path / "rt"
    result = run(cfg(real_time=True, fit_compute=False), out, echo=quiet)
    s = summary_of(out)
    revealed = s["batches_revealed"]
    # the default spends 5 updates of 10 + 32 replayed a batch: about 10x plain replay's
    assert 0.05 < s["learned_share"] < 0.2 and revealed == sum(
        -(-n // 10) for n in (len(e.y_train) for e in _train_sets(2))
    )
    assert s["examples"] == 10 * s["batches_learned"]  # only learned batches are examples
    assert 0.9 < s["compute_used_share"] <= 1.2
    ends = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    ends = [e for e in ends if e["type"] == "experience_end"]
    learned = [b for e in ends for b in e["learned_batches"]]  # the folder says which
    assert len(learned) == s["batches_learned"] and learned == sorted(set(learned))
    assert ends[-1]["answered_seen"] + s["examples"] == ends[-1]["position"]
    assert result.matrix[-1].mean() > 0.3  # it still learned something of both


def test_a_run_stopped_under_the_clock_resumes_exactly(tmp_path, monkeypatch):
    reference = run(cfg(real_time=True, stream_rate=0.5), tmp_path / "ref", echo=quiet)
    out = tmp_path / "stopped"
    with stop_at(monkeypatch, tmp_path, 9):
        stopped = run(cfg(real_time=True, stream_rate=0.5), out, echo=quiet)
    assert stopped.interrupted
    resumed = run(cfg(real_time=True, stream_rate=0.5), out, echo=quiet)
    assert np.array_equal(resumed.matrix, reference.matrix)
    assert summary_of(out) | {"train_seconds": 0, "samples_per_second": 0} == summary_of(
        tmp_path / "ref"
    ) | {"train_seconds": 0, "samples_per_second": 0}
    assert np.array_equal(matrix(out), matrix(tmp_path / "ref"))


def _train_sets(n: int):
    import streams

    return list(streams.get_stream("split-digits", experiences=n, seed=2))


def test_the_compute_plan_fits_the_update_to_the_time_and_counts_as_the_agent_does():
    """Under a clock of one plain-replay update a batch, the default agent plans one update
    with as much replay as fits (less on the steps its weight average watches), and what
    learning the batch then costs is what the plan expected; with time enough, the config."""
    import streams
    from lifelong.learner import budget
    from lifelong.runner.clock import compute_units
    from tests.test_agent import make_agent

    stream = streams.get_stream("split-digits", experiences=1, seed=0)
    agent = make_agent(stream, memory=40)
    e = stream[0]
    interval = replay_update_cost(10)
    seen = set()
    for b in range(0, 400, 10):
        x, y = e.x_train[b : b + 10], e.y_train[b : b + 10]
        plan = budget.plan(agent, 10, interval)
        expected = budget.cost_of(agent, 10, *plan)
        assert expected <= interval
        agent.iters, agent.replay_batch = plan
        before = compute_units(agent)
        agent.observe(x, y)
        assert compute_units(agent) - before == expected, (b, plan)
        seen.add(plan)
    assert (1, 10) in seen and (1, 6) in seen  # a full update; one beside the average's watch
    assert budget.plan(agent, 10, 10_000) == (5, 32)  # the stream waits long enough: as set


def test_a_stream_too_fast_for_an_update_with_replay_gets_one_and_its_whole_time():
    """Where even one update replaying a quarter of a batch of memories overruns the time
    between batches, the plan does not cut the replay to fit (an update of fresh examples
    alone forgets); it makes an update the batches its overrun misses leave time for: the
    most replay that fits the whole intervals the least such update takes."""
    import math

    import streams
    from lifelong.learner import budget
    from tests.test_agent import make_agent

    stream = streams.get_stream("split-digits", experiences=1, seed=0)
    agent = make_agent(stream, memory=40)
    e = stream[0]
    fast = replay_update_cost(10) / 4  # rate 4: 15, where 10 incoming alone cost 30
    assert budget.plan(agent, 10, fast) == (1, 0)  # no memories yet: the batch alone
    agent.observe(e.x_train[:2], e.y_train[:2])
    assert budget.least_replay(agent, 10) == 2 and budget.plan(agent, 10, fast) == (1, 2)
    agent.observe(e.x_train[2:40], e.y_train[2:40])
    least = budget.least_replay(agent, 10)
    assert least == 3 and budget.least_replay(agent, 4) == 1
    whole = math.ceil(budget.cost_of(agent, 10, 1, least) / fast) * fast
    updates, replayed = budget.plan(agent, 10, fast)
    assert updates == 1 and replayed > least
    cost = [budget.cost_of(agent, 10, 1, r) for r in (replayed, replayed + 1)]
    assert cost[0] <= whole < cost[1]


def test_fitting_the_compute_learns_more_of_a_fast_stream(tmp_path):
    fitted = run(cfg(real_time=True), tmp_path / "fit", echo=quiet)
    fixed = run(cfg(real_time=True, fit_compute=False), tmp_path / "fixed", echo=quiet)
    share = {k: summary_of(tmp_path / k)["learned_share"] for k in ("fit", "fixed")}
    assert share["fit"] > 0.6 > 0.2 > share["fixed"]
    assert fitted.matrix[-1].mean() > fixed.matrix[-1].mean()


def test_compare_real_time_puts_every_method_on_the_clock(tmp_path, capsys):
    """compare --real-time: today's rows, and in OUT/real-time the same methods on a stream
    that does not wait: ours on the clock; an Avalanche strategy on the batches its metered
    cost leaves time for (plain replay's cost is the interval: every batch; DER++ replays
    its buffer's logits too, and learns fewer)."""
    from lifelong.cli import main

    out = tmp_path / "c"
    args = ["compare", "--stream", "split-digits", "--experiences", "2", "--seeds", "0"]
    args += ["--methods", "ours,replay,der++", "--memory", "60", "--real-time"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "real time (stream rate 1" in printed and "learned share" in printed
    waited = {r["method"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    timed = json.loads((out / "real-time" / "results.json").read_text())["runs"]
    timed = {r["method"]: r for r in timed}
    assert "learned_share" not in waited["replay"]
    assert timed["replay"]["learned_share"] == 1.0  # exactly the interval, or less
    assert timed["der++"]["learned_share"] < 1.0
    assert waited["der++"]["compute_units_per_batch"][-1] > 60
    assert 0.9 < timed["ours"]["learned_share"] <= 1.0  # it fits its updates to the time
    assert timed["ours"]["near_future_accuracy"] is not None
    assert (out / "real-time" / "table.md").read_text().count("|") > 20


def test_a_sweep_trial_on_the_clock_reports_the_real_time_measures(tmp_path):
    """A sweep of our agent may grid the stream rate: each trial's row carries its learned
    share and near-future accuracy (Avalanche's get their schedule from compare)."""
    from lifelong.sweep import spec
    from lifelong.sweep.trial import run_trial

    text = """
[sweep]
streams = ["split-digits"]
seeds = [0]
memory = 60

[methods.ours]
fixed = { experiences = 2, real_time = true, fit_compute = false }
grid = { stream_rate = [0.05, 1.0] }
"""
    plan = spec.parse(spec.tomllib.loads(text), "rt")
    rows = {t.params["stream_rate"]: run_trial(t.to_dict(), str(tmp_path)) for t in plan.trials}
    assert all(r["status"] == "ok" for r in rows.values()), rows
    assert rows[0.05]["learned_share"] == 1.0 > rows[1.0]["learned_share"]
    assert rows[1.0]["near_future_accuracy"] is not None


def test_one_planned_update_takes_the_larger_step_and_a_boundary_charges_its_refresh():
    import streams
    from lifelong.learner import budget
    from tests.test_agent import make_agent

    stream = streams.get_stream("split-digits", experiences=1, seed=0)
    agent = make_agent(stream, memory=40)
    budget.apply(agent, 1, 10)
    assert (agent.method.settings.lr, agent.method.settings.grad_clip) == pytest.approx((0.3, 1.0))
    budget.apply(agent, 5, 32)  # the configured step again, with the configured updates
    assert (agent.method.settings.lr, agent.method.settings.grad_clip) == (0.1, 2.0)
    e = stream[0]
    for b in range(0, 100, 10):
        agent.observe(e.x_train[b : b + 10], e.y_train[b : b + 10], experience=0)
    assert budget.boundary_cost(agent, 0) == 40  # DER++ renews those 40 memories' logits
    assert budget.boundary_cost(agent, 1) == 0
    plain = make_agent(stream, memory=40, distill=0.0)  # ER: nothing to renew
    plain.observe(e.x_train[:10], e.y_train[:10], experience=0)
    assert budget.boundary_cost(plain, 0) == 0


def test_the_clock_says_how_much_the_learner_has_before_the_next_batch():
    clock = StreamClock.for_run(batch_size=10, stream_rate=1.0)
    assert clock.arrive() and clock.idle() == 60.0  # free, the next one interval away
    clock.took(50.0)
    assert clock.idle() == 10.0
    clock.busy(30.0)  # an experience's end past the next arrival
    assert clock.idle() == 0.0 and not clock.arrive()
    assert StreamClock(interval=60.0, waits=True).idle() == float("inf")


@pytest.mark.parametrize(
    "protocol, refreshed, learned_all",
    [
        ({"real_time": True}, False, True),  # no time for the refresh: the batches instead
        ({"real_time": True, "stream_rate": 0.05}, True, True),  # a slow stream has the time
        ({"real_time": True, "fit_compute": False, "iters": 1}, True, False),  # as set
        ({}, True, True),  # a stream that waits
    ],
)
def test_an_experience_end_renews_logits_only_where_the_clock_leaves_time(
    tmp_path, monkeypatch, protocol, refreshed, learned_all
):
    """The boundary's logit refresh (60 memories forward: one interval at rate 1) would make
    the learner miss the next experience's first batch; fitting its compute, it skips the
    refresh there, and the pass over the memories with it (no uncharged work is left in
    its place: the keys too stay as written), makes it where the stream leaves the time,
    and a fixed budget pays it."""
    from lifelong.learner import agent_memory
    from lifelong.learner.replay_memory import ReplayMemory

    calls, passes = [], []
    renew, forward = ReplayMemory.refresh_logits, agent_memory._memories_forward
    monkeypatch.setattr(
        ReplayMemory, "refresh_logits", lambda m, e, lg: calls.append(e) or renew(m, e, lg)
    )
    monkeypatch.setattr(agent_memory, "_memories_forward", lambda a: passes.append(1) or forward(a))
    run(cfg(**protocol, replay_batch=10), tmp_path / "r", echo=quiet)
    assert (calls == [0, 1]) is refreshed and calls in ([], [0, 1])
    assert len(passes) == len(calls)  # a pass over the memories only where it refreshes
    summary = summary_of(tmp_path / "r")
    assert (summary.get("learned_share", 1.0) == 1.0) is learned_all


def test_a_run_killed_under_the_clock_resumes_to_the_same_numbers(tmp_path):
    """SIGKILL between checkpoints (every 7 steps): the clock resumes from the last one and
    the batches revealed since are revealed again, learned or answered as before."""
    import os
    import signal
    import subprocess

    from tests.run_helpers import LIFELONG, ROOT, SMALL, events_without_timing, start_paused

    def finish(out):
        done = subprocess.run(
            [*LIFELONG, "run", *SMALL, "--real-time", "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr

    finish(tmp_path / "ref")
    proc = start_paused(tmp_path / "killed", 10, tmp_path, "--real-time")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    finish(tmp_path / "killed")
    assert np.array_equal(matrix(tmp_path / "killed"), matrix(tmp_path / "ref"))
    assert events_without_timing(tmp_path / "killed") == events_without_timing(tmp_path / "ref")
    timed = summary_of(tmp_path / "ref")
    assert summary_of(tmp_path / "killed")["learned_share"] == timed["learned_share"] < 1


def test_a_new_tasks_first_batch_is_answered_among_its_own_classes(tmp_path, monkeypatch):
    """Task-incremental, three tasks of 3-4 classes: each task's classes come with the task
    when its experience starts (as Avalanche's multi-head classifier gets them), not from its
    batches' labels. Expect: when each task's first batch arrives, the agent's mask for that
    task is exactly the task's classes (before: no mask, so all ten, and a busy learner
    answered a new task's first batches with old classes)."""
    seen: dict[int, list[int] | None] = {}
    observe = Agent.observe

    def spy(self, x, y, *, task_id=None, **kw):
        if task_id is not None and task_id not in seen:
            row = self.masks.row(task_id)
            seen[task_id] = None if row is None else row.nonzero().flatten().tolist()
        return observe(self, x, y, task_id=task_id, **kw)

    monkeypatch.setattr(Agent, "observe", spy)
    run(cfg(stream="split-task-digits", experiences=3), tmp_path / "r", echo=quiet)
    stream = streams.get_stream("split-task-digits", experiences=3, seed=2)
    assert seen == {e.task_id: sorted(e.classes) for e in stream}
    assert all(len(classes) < 10 for classes in seen.values())


def test_rerun_ours_redoes_our_rows_on_the_clock_and_keeps_every_strategys(tmp_path):
    """After a change to our agent, our rows of a published real-time table again, alone:
    ours fits its compute to the clock, ours@S keeps its fixed budget (and learns less of
    the stream), an earlier strategy's row is kept as it was and an earlier row of ours is
    replaced; a strategy is refused (its schedule comes from a waiting run)."""
    from lifelong.compare import rerun_ours

    timed = cfg(real_time=True)
    earlier = [{"method": "replay", "seed": 2, "matrix": "kept"}]
    earlier.append({"method": "ours", "seed": 2, "matrix": "stale"})
    again = [("ours", 2), ("ours@0.1", 2)]
    runs = rerun_ours(again, "split-digits", 60, timed, tmp_path, earlier=earlier)
    by = {r["method"]: r for r in runs}
    assert sorted(by) == ["ours", "ours@0.1", "replay"] and len(runs) == 3
    assert by["replay"]["matrix"] == "kept" and by["ours"]["matrix"] != "stale"
    assert 0.9 < by["ours"]["learned_share"] <= 1.0 and "average_accuracy" in by["ours"]
    assert by["ours@0.1"]["learned_share"] < 0.5  # its fixed update overruns the interval
    with pytest.raises(ConfigError, match="our methods only"):
        rerun_ours([("replay", 2)], "split-digits", 60, timed, tmp_path)
