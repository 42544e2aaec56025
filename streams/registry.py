"""Named streams for the command line: ``<scenario>-<source>``, e.g. ``split-mnist5k``."""

from __future__ import annotations

from collections.abc import Callable

from streams import scenarios
from streams.core import Stream
from streams.errors import StreamError
from streams.sources import SOURCES, load_source

# scenario prefix -> (builder, default experiences)
SCENARIO_BUILDERS: dict[str, tuple[Callable[..., Stream], int]] = {
    "split": (scenarios.split, 5),
    "split-task": (lambda d, **kw: scenarios.split(d, scenario="task", **kw), 5),
    "permuted": (scenarios.permuted, 10),
    "rotated": (scenarios.rotated, 5),
    "blurry": (scenarios.blurry, 5),
}

DESCRIPTIONS = {
    "split": "class-incremental: classes split into experiences, no task ids",
    "split-task": "task-incremental: classes split into experiences, each with its task id",
    "permuted": "domain-incremental: a fixed pixel permutation per experience (first unpermuted)",
    "rotated": "domain-incremental: a fixed rotation per experience (first unrotated)",
    "blurry": "task-free: split with blurred, hidden boundaries (overlap option)",
}


def stream_names() -> list[str]:
    """Every registered name: each scenario with each source."""
    return [f"{sc}-{src}" for sc in SCENARIO_BUILDERS for src in SOURCES]


def parse_name(name: str) -> tuple[str, str]:
    for src in sorted(SOURCES, key=len, reverse=True):
        if name.endswith("-" + src):
            sc = name[: -len(src) - 1]
            if sc in SCENARIO_BUILDERS:
                return sc, src
    raise StreamError(
        f"unknown stream {name!r}; names are <scenario>-<source> with scenario in "
        f"{sorted(SCENARIO_BUILDERS)} and source in {list(SOURCES)}, e.g. split-mnist5k"
    )


def get_stream(
    name: str,
    *,
    experiences: int | None = None,
    seed: int = 0,
    data_root: str | None = None,
    **options,
) -> Stream:
    """Build a named stream. ``options`` go to the scenario (e.g. ``overlap`` for blurry)."""
    sc, src = parse_name(name)
    builder, default_n = SCENARIO_BUILDERS[sc]
    data = load_source(src, data_root)
    stream = builder(data, n_experiences=experiences or default_n, seed=seed, **options)
    stream.name = name
    return stream
