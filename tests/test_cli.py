"""The command line as a new user meets it: help on every option, honest listings, a fast
start, and `memory list` to find ids to query."""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from lifelong import cli
from stores import EpisodicStore
from tests.store_helpers import batch


def _parsers(parser: argparse.ArgumentParser, path: str = "lifelong"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_of_every_command_has_help_and_shows_its_default():
    for path, parser in _parsers(cli.build_parser()):
        assert issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter), path
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{path} {action.option_strings or action.dest} has no help"
    text = cli.build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    flat = " ".join(text.split())
    assert "(default: 'split-mnist5k')" in flat
    # a config flag's own default only, not argparse's None ("not given") beside it
    assert "(default: True)" in flat and "(default: True) (default: None)" not in flat
    assert "(default: 0.995) (default: None)" not in flat


def test_top_level_help_speaks_to_users(capsys):
    with contextlib.suppress(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "lifelong run --stream split-mnist5k --out runs/first" in out


def test_help_and_listing_start_without_torch():
    """`lifelong --help`, `streams list` and `memory stats` import no torch (startup under a
    second: the figures are in docs/benchmarks.md)."""
    code = (
        "import sys; from lifelong import cli\n"
        "cli.main(['streams', 'list', '--json'])\n"
        "assert 'torch' not in sys.modules and 'faiss' not in sys.modules, 'heavy import'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "split-mnist5k" in json.loads(done.stdout)


def test_streams_list_says_what_needs_a_download_and_describe_shows_no_task_ids(capsys):
    assert cli.main(["streams", "list"]) == 0
    out = capsys.readouterr().out
    assert "cifar10        download" in out and "mnist5k        shipped" in out
    assert cli.main(["streams", "describe", "split-digits"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert rows and all(r.split()[1] == "none" for r in rows)  # class-incremental: no task ids
    assert cli.main(["streams", "describe", "split-task-digits"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [r.split()[1] for r in rows] == [str(i) for i in range(len(rows))]


def test_memory_list_pages_and_filters(tmp_path, capsys):
    rng = np.random.default_rng(0)
    with EpisodicStore.create(tmp_path / "mem", dim=8, value_shape=(2, 3)) as st:
        keys, values, labels = batch(rng, 30)
        st.write(keys, values, labels)
    assert cli.main(["memory", "list", str(tmp_path / "mem"), "--json", "--limit", "5"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert page["total"] == 30 and [m["id"] for m in page["memories"]] == [0, 1, 2, 3, 4]
    args = ["memory", "list", str(tmp_path / "mem"), "--json", "--label", "2", "--limit", "99"]
    assert cli.main(args) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["total"] == int((labels == 2).sum())
    assert {m["label"] for m in got["memories"]} == {2}
    assert cli.main(["memory", "list", str(tmp_path / "mem"), "--offset", "28"]) == 0
    assert "(2 of 30 memories from offset 28)" in capsys.readouterr().out


def test_a_run_folder_run_again_with_no_flags_is_its_own_config(tmp_path, capsys):
    """The folder's config.toml is the run's: the same folder with no flags resumes (here:
    finds it complete and says so, its summary at once, nothing rewritten); a flag given and
    different is refused naming it and the way on."""
    out = str(tmp_path / "r")
    made = ["--stream", "split-digits", "--experiences", "2", "--memory", "100", "--iters", "1"]
    assert cli.main(["run", *made, "--out", out, "--no-progress"]) == 0
    first = capsys.readouterr().out
    summary = (tmp_path / "r" / "summary.json").read_bytes()
    assert cli.main(["run", "--out", out]) == 0
    again = capsys.readouterr()
    assert "is already complete" in again.err
    assert again.out.splitlines()[:10] == first.splitlines()[:10]  # matrix and metrics
    assert (tmp_path / "r" / "summary.json").read_bytes() == summary
    assert cli.main(["run", "--out", out, "--memory", "200"]) == 2
    err = capsys.readouterr().err
    assert "memory: 100 (folder) vs 200 (now)" in err and "leave those flags out" in err


def test_help_says_only_what_is_true():
    """serve lists no flag a served agent ignores; a --no-X flag shows no "(default: True)";
    sweep's example names a file that exists."""
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    serve = " ".join(commands["serve"].format_help().split())
    assert "--stream" not in serve and "--experiences" not in serve and "--seed" in serve
    for name in ("compare", "sweep"):
        text = commands[name].format_help()
        (line,) = [li for li in text.splitlines() if li.strip().startswith("--no-progress")]
        assert "default" not in line, line
    example = commands["sweep"].description.split("lifelong sweep ")[1].split()[0]
    assert (Path(__file__).resolve().parents[1] / example).is_file(), example
