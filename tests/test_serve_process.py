"""``lifelong serve`` as users run it: a process killed with SIGKILL mid-learning and
restarted loses nothing acknowledged, learns nothing twice, and ends with the accuracy
matrix of ``lifelong run`` over the same batches; the folder door learns what ``lifelong
run --follow`` does."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import httpx
import numpy as np
import pytest

from lifelong.config import RunConfig
from lifelong.runner import run
from lifelong.serve.folder_door import FolderDoor
from lifelong.serve.service import Service
from tests.serve_helpers import SMALL, Served, batches, digit_tasks, wait_until

pytestmark = pytest.mark.slow

REFERENCE = RunConfig(**SMALL)


def write_task_files(folder, tasks) -> None:
    folder.mkdir()
    for i, task in enumerate(tasks):
        path = folder / f"task{i}.npz"
        np.savez(path, **task)
        os.utime(path, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))  # arrival order


def reference_matrix(tmp_path, tasks, **changes) -> np.ndarray:
    """``lifelong run --follow`` over the same tasks as task files."""
    folder = tmp_path / "inbox-reference"
    write_task_files(folder, tasks)
    cfg = replace(REFERENCE, follow=str(folder), **changes)
    result = run(cfg, tmp_path / "reference", follow_options={"idle_timeout": 0}, echo=print)
    return result.matrix


def observe(client, url, task, b, x, y) -> dict:
    r = client.post(
        f"{url}/v1/observe",
        json={"x": x.tolist(), "y": y.tolist(), "task_id": 0},
        headers={"Idempotency-Key": f"task{task}-{b}"},
    )
    assert r.status_code == 200, r.text
    return r.json()


def end(client, url, task, tasks) -> None:
    t = tasks[task]
    r = client.post(
        f"{url}/v1/experiences/end",
        json={"x_test": t["x_test"].tolist(), "y_test": t["y_test"].tolist()},
        headers={"Idempotency-Key": f"end{task}"},
    )
    assert r.status_code == 200, r.text


def test_kill_9_mid_learning_loses_nothing_and_matches_lifelong_run(tmp_path):
    tasks = digit_tasks()
    out, flag = tmp_path / "served", tmp_path / "paused"
    # the learner stops at step 23 (experience 1) and waits there: SIGKILL lands mid-task,
    # after 30 acknowledged batches of which 23 are learned (20 checkpointed)
    server = Served(out, "--no-shuffle", env={"LIFELONG_TEST_PAUSE": f"23:{flag}"})
    with httpx.Client(timeout=60) as client:
        for b, x, y in batches(tasks[0]):
            observe(client, server.url, 0, b, x, y)
        end(client, server.url, 0, tasks)
        for b, x, y in list(batches(tasks[1]))[:10]:
            observe(client, server.url, 1, b, x, y)
        wait_until(flag.exists, what="the learner to reach step 23")
        server.kill()

        server = Served(out, "--no-shuffle")
        # a client that never heard back retries everything of task 1: the first 10 are
        # already in the log and are taken once
        receipts = [observe(client, server.url, 1, b, x, y) for b, x, y in batches(tasks[1])]
        assert [r["duplicate"] for r in receipts] == [True] * 10 + [False] * 10
        end(client, server.url, 1, tasks)

        def finished():
            state = client.get(f"{server.url}/v1/run").json()
            return state if state["queued_examples"] == 0 and len(state["matrix"]) == 2 else None

        state = wait_until(finished, what="the served run to learn both tasks")
        assert state["learned"] == 400
    assert server.stop() == 143

    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["examples"] == 400  # nothing learned twice
    served = np.array(summary["matrix"], dtype=float)
    expected = reference_matrix(tmp_path, tasks, shuffle=False)
    np.testing.assert_array_equal(served, expected)


def test_the_folder_door_learns_what_lifelong_run_follow_does(tmp_path):
    tasks = digit_tasks()
    inbox = tmp_path / "inbox"
    cfg = replace(REFERENCE, stream="serve", follow=str(inbox))
    inbox.mkdir()
    service = Service(cfg, tmp_path / "served", echo=print)
    service.start()
    door = FolderDoor(cfg, service.log, service.stop_event, poll=0.05, echo=print)
    door.start()
    try:
        for i, task in enumerate(tasks):
            np.savez(inbox / f".task{i}.npz", **task)  # written under a hidden name, then
            os.rename(inbox / f".task{i}.npz", inbox / f"task{i}.npz")  # renamed: whole
            wait_until(lambda i=i: len(service.state()["matrix"]) == i + 1, what=f"task {i}")
    finally:
        service.shutdown()
    assert door.error is None
    summary = json.loads((tmp_path / "served" / "summary.json").read_text())
    expected = reference_matrix(tmp_path, tasks)  # shuffled, as lifelong run does
    np.testing.assert_array_equal(np.array(summary["matrix"], dtype=float), expected)


def test_a_public_address_needs_a_token_and_the_token_guards_it(tmp_path):
    import subprocess
    import sys

    refused = subprocess.run(
        [sys.executable, "-m", "lifelong.cli", "serve", "--out", str(tmp_path / "a")]
        + ["--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "--token-file" in refused.stderr
    assert not (tmp_path / "a").exists()  # refused before anything was made
    token = tmp_path / "token"
    token.write_text("a-long-enough-secret-token\n")
    server = Served(tmp_path / "b", "--host", "0.0.0.0", "--token-file", str(token))
    try:
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(f"{url}/v1/run").status_code == 401
        auth = {"Authorization": "Bearer a-long-enough-secret-token"}
        assert httpx.get(f"{url}/v1/run", headers=auth).status_code == 200
    finally:
        assert server.stop() == 143
