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
FILES = ("tests/test_faults.py", "tests/test_runner.py")
# the runner's kill-and-resume trials belong in the table too
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


def trials() -> dict[str, tuple[str, str]]:
    """test name -> (trial, expected), from the docstrings of tests/test_faults.py."""
    found = dict(RUNNER_TRIALS)
    tree = ast.parse((ROOT / FILES[0]).read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            doc = " ".join((ast.get_docstring(node) or "").split())
            trial, _, expected = doc.partition("Expect:")
            found[node.name] = (trial.strip(), expected.strip())
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


def table(found: dict[str, tuple[str, str]], results: dict[str, list[tuple[str, str]]]) -> str:
    rows = ["| # | trial | expected | outcome | test |", "|---|---|---|---|---|"]
    for n, (name, (trial, expected)) in enumerate(found.items(), 1):
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
    found = trials()
    with tempfile.TemporaryDirectory() as tmp:
        xml_path = Path(tmp) / "faults.xml"
        selected = [f"{FILES[1]}::{name}" for name in RUNNER_TRIALS]
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", FILES[0], *selected, f"--junitxml={xml_path}"],
            cwd=ROOT,
        )
        results = outcomes(xml_path)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""# Reliability: fault and abuse trials

What a sceptical operator does to a run folder and its store, and what `lifelong` does about
it. Every row is a test (`tests/test_faults.py`, and the kill-and-resume tests of
`tests/test_runner.py`); this page is written by running them:

```sh
make faults        # runs the trials and rewrites this page
```

Last run: {when}, on this project's 2-core machine. Runs are stopped at steps the tests choose
(a test-only pause hook, `LIFELONG_TEST_PAUSE=STEP:FILE`), never after a wall-clock delay, so
the outcome does not depend on the machine's speed. The real-filesystem disk-full trial
mounts a 1.5 MiB tmpfs and needs root; elsewhere it is skipped and the injected ENOSPC trial
still runs.

{table(found, results)}

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
  Ctrl-C: exit 130, checkpoints being atomic).
"""
    (ROOT / "docs" / "reliability.md").write_text(page)
    print(f"wrote docs/reliability.md ({sum(len(v) for v in results.values())} cases)")
    return code


if __name__ == "__main__":
    sys.exit(main())
