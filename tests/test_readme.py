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
