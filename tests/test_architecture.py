"""The import rules of docs/architecture.md, checked over every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEARNER = {
    "lifelong.agent",
    "lifelong.losses",
    "lifelong.controller",
    "lifelong.models",
    "lifelong.backbones",
    "lifelong.replay_memory",
    "lifelong.adaptation",
    "lifelong.compute",
    "lifelong.gate",
    "lifelong.weight_average",
    "lifelong.learner_config",
    "lifelong.user_code",
}
RUN = {
    "lifelong.runner",
    "lifelong.config",
    "lifelong.checkpoint",
    "lifelong.run_folder",
    "lifelong.progress",
    "lifelong.follow",
    "lifelong.report",
    "lifelong.compare",
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
        if name in LEARNER or name.startswith("lifelong.methods"):
            assert not _hits(imported, (*RUN, "streams")), (name, _hits(imported, RUN))


def test_methods_do_not_know_the_agent():
    for name, imported in modules().items():
        if name.startswith("lifelong.methods"):
            assert not _hits(imported, ("lifelong.agent",)), name


def test_the_service_sits_on_the_run_and_nothing_sits_on_it():
    """lifelong.serve uses the run loop; the run and the learner never import the service
    (only the CLI's entry point names its subcommand)."""
    for name, imported in modules().items():
        if name in LEARNER or (name in RUN and name != "lifelong.cli"):
            assert not _hits(imported, ("lifelong.serve",)), name
    assert set(_hits(modules()["lifelong.cli"], ("lifelong.serve",))) <= {
        "lifelong.serve",
        "lifelong.serve.cli",
    }


def test_sweeps_sit_on_the_run():
    """lifelong.sweep schedules runs; of the run, only compare (its pool) and the CLI's
    entry points (the subcommand, report on a sweep folder) use it; the learner never."""
    users = {"lifelong.compare", "lifelong.cli", "lifelong.run_cli"}
    for name, imported in modules().items():
        if name in LEARNER or (name in RUN and name not in users):
            assert not _hits(imported, ("lifelong.sweep",)), name


def test_the_table_covers_every_lifelong_module():
    """A new module must be placed in the picture (learner, run, service, sweeps, methods,
    errors)."""
    known = LEARNER | RUN | {"lifelong", "lifelong.errors"}
    unplaced = [
        n
        for n in modules()
        if n.startswith("lifelong")
        and not n.startswith(("lifelong.methods", "lifelong.serve", "lifelong.sweep"))
    ]
    assert sorted(set(unplaced) - known) == []
