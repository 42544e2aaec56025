"""The README's commands and Python snippets run as written, in order, in a fresh folder.

Only the download line is left out: it needs a network (offline it fails at once with the
folder and the command, which tests/test_streams.py checks), and `tensorboard` is a server.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lifelong import cli

# process-spawning and whole-run tests: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"
NOT_RUN = ("lifelong streams download", "tensorboard --logdir")


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), flags=re.S)


def command_lines() -> list[str]:
    (block,) = [b for b in blocks("sh") if "lifelong streams list" in b]
    lines = [line.strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith(NOT_RUN)]


@pytest.fixture
def in_fresh_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bindir = str(Path(sys.executable).parent)  # `python` is this environment's
    monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ["PATH"])
    return tmp_path


def test_readme_commands_and_snippets_run_as_written(in_fresh_folder, capsys):
    (follow_snippet,) = [b for b in blocks("python") if "inbox/task-000.npz" in b]
    exec(compile(follow_snippet, "README follow-mode snippet", "exec"), {})
    ran = []
    for line in command_lines():
        if line.startswith("lifelong "):
            code = cli.main(shlex.split(line, comments=True)[1:])
            out = capsys.readouterr()
            assert code == 0, f"{line}\n{out.err[-2000:]}"
        else:
            done = subprocess.run(line, shell=True, capture_output=True, text=True)
            assert done.returncode == 0, f"{line}\n{done.stderr}"
        ran.append(line)
    assert len(ran) >= 18
    assert (in_fresh_folder / "runs/first/report/index.html").exists()
    assert (in_fresh_folder / "cmp/index.html").exists()
    (api,) = [b for b in blocks("python") if "from lifelong import RunConfig, run, metrics" in b]
    scope: dict = {}
    exec(compile(api, "README Python API", "exec"), scope)
    assert scope["result"].summary["complete"] and len(scope["hits"].ids) == 2


def test_readme_gpu_commands_parse_and_without_a_gpu_refuse_before_any_folder(
    in_fresh_folder, capsys
):
    """The GPUs section's commands can only run on a GPU; here they must still be valid
    commands, and on a machine without CUDA each stops with one line naming the device."""
    import torch

    (block,) = [b for b in blocks("sh") if "--device cuda" in b]
    lines = [line.strip() for line in block.splitlines() if line.startswith("lifelong ")]
    assert len(lines) >= 3
    parser = cli.build_parser()
    for line in lines:
        parser.parse_args(shlex.split(line, comments=True)[1:])  # SystemExit if not
        if torch.cuda.is_available():
            continue
        code = cli.main(shlex.split(line, comments=True)[1:])
        err = capsys.readouterr().err
        assert code == 2 and "no CUDA device" in err, f"{line}\n{err}"
    assert not (in_fresh_folder / "runs").exists()


def test_readme_serve_walkthrough_and_client_run_as_written(in_fresh_folder):
    """The walkthrough (start, two tasks by curl, kill -9, restart, query) and the httpx
    client, on a free port instead of 8000."""
    import json
    import signal
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    (walk,) = [b for b in blocks("sh") if "lifelong serve --out runs/served" in b]
    (client,) = [b for b in blocks("python") if "httpx.Client(base_url" in b]
    script = walk.replace("8000", port) + "echo $SERVER > server.pid\n"
    out, err = in_fresh_folder / "walk.out", in_fresh_folder / "walk.err"
    with open(out, "w") as o, open(err, "w") as e:  # files, not pipes: the server outlives bash
        done = subprocess.run(["bash", "-c", script], stdout=o, stderr=e, timeout=600)
    assert done.returncode == 0, err.read_text()[-3000:]
    text = out.read_text()
    state = json.loads(text[text.index("{\n") :].split("\n}\n")[0] + "\n}")
    assert state["caught_up"] and state["learned"] == state["received"] == 1600
    assert len(state["matrix"]) == 2 and state["matrix"][1][1] > 0.9
    pid = int((in_fresh_folder / "server.pid").read_text())
    try:
        scope: dict = {}
        exec(compile(client.replace("8000", port), "README httpx client", "exec"), scope)
        final = scope["api"].get("/v1/run", params={"wait": 120}).json()
        assert final["learned"] == 3200 and len(final["matrix"]) == 4
    finally:
        os.kill(pid, signal.SIGTERM)
        while (in_fresh_folder / "runs/served/serve/server.lock").exists():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    summary = json.loads((in_fresh_folder / "runs/served/summary.json").read_text())
    assert summary["summary"]["examples"] == 3200  # nothing lost, nothing learned twice


def test_readme_sweep_file_and_commands_run_as_written(in_fresh_folder, capsys):
    """The README shows configs/sweeps/split-digits.toml as it is, and its commands run."""
    root = README.parent
    (shown,) = [b for b in blocks("toml") if "[methods.ours]" in b]
    assert shown == (root / "configs/sweeps/split-digits.toml").read_text()
    (commands,) = [b for b in blocks("sh") if "lifelong sweep configs/" in b]
    (in_fresh_folder / "configs/sweeps").mkdir(parents=True)
    (in_fresh_folder / "configs/sweeps/split-digits.toml").write_text(shown)
    for line in [ln for ln in commands.splitlines() if ln.strip()]:
        assert cli.main(shlex.split(line, comments=True)[1:]) == 0, line
    out = capsys.readouterr().out
    assert out.count("| split-digits | ours [distill=1, iters=5] | 3 |") == 2  # sweep, report
    rows = (in_fresh_folder / "sweeps/split-digits/results.csv").read_text().splitlines()
    assert len(rows) == 25
    assert (in_fresh_folder / "sweeps/split-digits/sweep-split-digits.png").exists()
