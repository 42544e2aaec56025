"""The import rules of docs/architecture.md, checked over every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEARNER = "lifelong.learner"  # the folder: every module under it is the learner
RUN = {
    "lifelong.runner",  # the package and every module under it
    "lifelong.config",
    "lifelong.config_file",
    "lifelong.checkpoint",
    "lifelong.run_folder",
    "lifelong.progress",
    "lifelong.follow",
    "lifelong.report",
    "lifelong.compare",  # the package: the comparison against Avalanche
    "lifelong.stability_gap",
    "lifelong.memory_pictures",
    "lifelong.tensorboard_log",
    "lifelong.metrics",
    "lifelong.cli",
    "lifelong.run_cli",
    "lifelong.memory_cli",
}


def modules() -> dict[str, set[str]]:
    """Every module of the three packages and the modules it imports (anywhere in it)."""
    found = {}
    for package in ("lifelong", "stores", "streams"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            name = name.removesuffix(".__init__")
            imported = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    imported.add(node.module)
                    imported.update(f"{node.module}.{a.name}" for a in node.names)
            found[name] = imported
    return found


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _is_learner(name: str) -> bool:
    return _in(name, LEARNER)


def _is_run(name: str) -> bool:
    return any(_in(name, r) for r in RUN)


def _hits(imported: set[str], banned: set[str] | tuple[str, ...]) -> list[str]:
    return sorted(i for i in imported if any(i == b or i.startswith(b + ".") for b in banned))


def test_streams_and_stores_stand_alone():
    for name, imported in modules().items():
        if name.startswith("streams"):
            assert not _hits(imported, ("lifelong", "stores")), name
        if name.startswith("stores"):
            assert not _hits(imported, ("lifelong", "streams")), name


def test_the_learner_knows_no_run_folder_flag_or_stream():
    for name, imported in modules().items():
        if _is_learner(name):
            assert not _hits(imported, (*RUN, "streams")), (name, _hits(imported, RUN))


def test_methods_do_not_know_the_agent():
    for name, imported in modules().items():
        if _in(name, "lifelong.learner.methods"):
            assert not _hits(imported, ("lifelong.learner.agent",)), name


def test_the_service_sits_on_the_run_and_nothing_sits_on_it():
    """lifelong.serve uses the run loop; the run and the learner never import the service
    (only the CLI's entry point names its subcommand)."""
    for name, imported in modules().items():
        if _is_learner(name) or (_is_run(name) and name != "lifelong.cli"):
            assert not _hits(imported, ("lifelong.serve",)), name
    assert set(_hits(modules()["lifelong.cli"], ("lifelong.serve",))) <= {
        "lifelong.serve",
        "lifelong.serve.cli",
    }


def test_sweeps_sit_on_the_run():
    """lifelong.sweep schedules runs; of the run, only compare (its pool) and the CLI's
    entry points (the subcommand, report on a sweep folder) use it; the learner never."""
    users = {"lifelong.compare.runs", "lifelong.cli", "lifelong.run_cli"}
    for name, imported in modules().items():
        if _is_learner(name) or (_is_run(name) and name not in users):
            assert not _hits(imported, ("lifelong.sweep",)), name


def test_the_table_covers_every_lifelong_module():
    """A new module must be placed in the picture (learner, run, service, sweeps, errors)."""
    unplaced = [
        n
        for n in modules()
        if _in(n, "lifelong")
        and not (_is_learner(n) or _is_run(n) or n in ("lifelong", "lifelong.errors"))
        and not _in(n, "lifelong.serve")
        and not _in(n, "lifelong.sweep")
    ]
    assert unplaced == []


def test_the_learner_lives_in_its_folder():
    """What learns (agent, methods, losses, prediction controller, learned rates, models,
    memory, average) is under lifelong/learner/, so the folder, not a list, says what the
    learner is."""
    for name in ("agent", "methods", "losses", "gate", "learned_rates", "models", "replay_memory"):
        assert f"lifelong.learner.{name}" in modules(), name
        assert f"lifelong.{name}" not in modules(), name


def test_no_import_circles():
    """No module imports, directly or through others, a module that imports it back (imports
    inside functions count: a circle broken only by a late import is still a circle)."""
    found = modules()
    graph = {
        name: {m for m in imported if m in found and m != name and not _in(name, m)}
        for name, imported in found.items()
    }
    circles = [c for c in _cycles(graph) if len(c) > 1]
    assert circles == [], circles


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each a list of module names."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out
