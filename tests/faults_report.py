"""Run the fault and abuse trials and write docs/reliability.md from their outcomes.

``make faults`` calls this. Each trial is a test whose docstring says what was done (first
part) and what must happen (``Expect:``); the table lists every trial with the outcome of
each of its cases in this run, so the page is always the result of a run, not a claim.
"""

from __future__ import annotations

import ast
import datetime as dt
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# every test of test_faults.py is a trial; in the other files, the tests whose docstring says
# what is expected ("Expect:") are
PARTS = {
    "The run folder and its store": (
        "tests/test_faults.py",
        "tests/test_runner.py",
        "tests/test_memory_cli.py",
        "tests/test_follow.py",
    ),
    "The service and the sweeps": (
        "tests/test_serve_log.py",
        "tests/test_serve_faults.py",
        "tests/test_serve_inputs.py",
        "tests/test_sweep.py",
    ),
}
# the runner's kill-and-resume trials belong in the table too (their docstrings are shorter)
RUNNER_TRIALS = {
    "test_sigkill_then_resume_gives_same_matrix": (
        "SIGKILL a run between checkpoints twice (steps 23 and 80), then resume.",
        "the same accuracy matrix and event log as an uninterrupted run; the store verifies.",
    ),
    "test_ctrl_c_checkpoints_then_resumes": (
        "Ctrl-C (SIGINT) a run at step 30, then resume.",
        "exit 130 with 'stopped; checkpoint written'; the resume ends with the same matrix.",
    ),
}


def trials(files: tuple[str, ...]) -> dict[str, tuple[str, str, str]]:
    """test name -> (file, trial, expected), from the tests' docstrings."""
    found = {}
    for path in files:
        tree = ast.parse((ROOT / path).read_text())
        for node in tree.body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            if path.endswith("test_runner.py") and node.name in RUNNER_TRIALS:
                found[node.name] = (path, *RUNNER_TRIALS[node.name])
                continue
            doc = " ".join((ast.get_docstring(node) or "").split())
            trial, expect, expected = doc.partition("Expect:")
            if expect or path.endswith("test_faults.py"):
                assert node.name not in found, f"two trials named {node.name}"
                found[node.name] = (path, trial.strip(), expected.strip())
    return found


def outcomes(xml_path: Path) -> dict[str, list[tuple[str, str]]]:
    """test name -> [(case id, passed|failed|skipped)] from pytest's JUnit XML."""
    result: dict[str, list[tuple[str, str]]] = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        name, _, param = case.get("name", "").partition("[")
        state = "passed"
        if case.find("failure") is not None or case.find("error") is not None:
            state = "FAILED"
        elif case.find("skipped") is not None:
            state = "skipped"
        result.setdefault(name, []).append((param.rstrip("]"), state))
    return result


def table(found: dict[str, tuple[str, str, str]], results, first: int = 1) -> str:
    rows = ["| # | trial | expected | outcome | test |", "|---|---|---|---|---|"]
    for n, (name, (_, trial, expected)) in enumerate(found.items(), first):
        cases = results.get(name, [])
        if not cases:
            outcome = "not run"
        elif len(cases) == 1 and not cases[0][0]:
            outcome = cases[0][1]
        else:
            passed = sum(state == "passed" for _, state in cases)
            detail = ", ".join(f"{cid}: {state}" for cid, state in cases)
            outcome = f"{passed} of {len(cases)} passed ({detail})"
        rows.append(f"| {n} | {trial} | {expected} | {outcome} | `{name}` |")
    return "\n".join(rows)


def main() -> int:
    parts = {title: trials(files) for title, files in PARTS.items()}
    with tempfile.TemporaryDirectory() as tmp:
        xml_path = Path(tmp) / "faults.xml"
        selected = [f"{path}::{name}" for p in parts.values() for name, (path, *_) in p.items()]
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", *selected, f"--junitxml={xml_path}"],
            cwd=ROOT,
        )
        results = outcomes(xml_path)
    sections, first = [], 1
    for title, found in parts.items():
        sections.append(f"## {title}\n\n{table(found, results, first)}")
        first += len(found)
    body = "\n\n".join(sections)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""# Reliability: fault and abuse trials

What a sceptical operator (or a hostile client) does to a run folder, its store, the service
and the sweeps, and what `lifelong` does about it. Every row is a test (every test of
`tests/test_faults.py`; in the other test files, those whose docstring says what is
expected); this page is written by running them:

```sh
make faults        # runs the trials and rewrites this page
```

Last run: {when}, on this project's 2-core machine. Runs are stopped at steps the tests choose
(a test-only pause hook, `LIFELONG_TEST_PAUSE=STEP:FILE`), never after a wall-clock delay, so
the outcome does not depend on the machine's speed. The real-filesystem disk-full trial
mounts a 1.5 MiB tmpfs and needs root; elsewhere it is skipped and the injected ENOSPC trial
still runs.

{body}

## The mechanisms behind the rows

- **Run folder lock** (`run.lock`, flock): taken before anything in the folder is read or
  written; a second run is refused naming the holder's pid.
- **Checkpoints say what they are**: `state.pt` carries the run's config and a fingerprint of
  the stream's data (a BLAKE2 hash of every experience's arrays); a resume with anything else
  is refused naming the keys, even with `config.toml` deleted. Config values are checked
  (type, range, finiteness) before anything is created, and a first attempt that fails
  before training leaves no folder behind.
- **Two checkpoint generations** (`checkpoint/`, `checkpoint.old/`), each checked on load
  (`state.pt` readable, the snapshot passes SQLite's `quick_check` and is a store). A damaged
  generation is moved aside and the previous one used, with a warning; the live store is
  replaced only by a checked snapshot, copied first to a fresh temporary file.
- **The event log** (`metrics.jsonl`) is written a whole line at a time and fsynced before the
  checkpoint that counts its lines; a resume keeps exactly those lines, or rebuilds the log
  from the checkpoint (untrained accuracies, experience ends) when lines are missing.
- **The index file is a cache that must prove itself**: it is used only if it belongs to this
  database (store id), is not ahead of it, and holds exactly its ids once caught up; anything
  else, a crafted body included, is rebuilt from SQLite (and a writer saves the rebuilt one).
- **verify** reads one snapshot (a read transaction), checks every table it depends on
  (memories, payloads and their sizes, meta, the index and the index file) and reports what
  it cannot read instead of raising.
- **Temporary files** are created exclusively (`mkstemp`/`mkdtemp`) under fresh random names
  and renamed over their destination, so no planted symlink is written through.
- **Disk full**: one message naming the last intact checkpoint; temporary files are removed
  by the writer that made them; the store's and the folder's locks are released in `finally`.
- **User mistakes** reach the CLI as typed errors and OS errors: one line, exit 2 (a second
  Ctrl-C: exit 130, checkpoints being atomic); warnings are one line too. A stop by a signal
  exits 128 + its number (130 Ctrl-C, 143 SIGTERM) after writing a checkpoint.
- **Readers on read-only places**: a store whose folder cannot be written is opened
  immutable when no shared-memory file can be made and its write-ahead log is empty; with
  commits only in that log it is refused saying why.
- **The ingest log proves itself** (service): a random id written when it is made is recorded
  in every checkpoint with the log position learned; a log that is not the checkpoint's, or
  ends before its position, is refused at start naming both files; `--reset-log` moves log and
  learned state to `RUN/dropped-TIME/`. `/healthz` is 503 while the learner has stopped, has
  learned more than the log holds, or the disk refused the last append.
- **Bounded inputs** (service, follow folders): an `.npz` is read member by member, each
  array's header (dtype, shape) checked and its size counted against the limit before its
  bytes are inflated, and exactly those bytes read (no object arrays, no pickle); a batch
  larger than the queue is a 413; an idempotency key is bound to the bytes it first carried
  (other data under it: 409).
- **Sweeps count before they build**: the number of trials is a product of list lengths,
  checked against the cap before any point is made; random search draws point numbers and
  decodes them; every Avalanche setting is checked by kind and range before a trial starts;
  one driver per sweep folder (`sweep.lock`, flock, with the holder's pid).
"""
    (ROOT / "docs" / "reliability.md").write_text(page)
    print(f"wrote docs/reliability.md ({sum(len(v) for v in results.values())} cases)")
    return code


if __name__ == "__main__":
    sys.exit(main())
