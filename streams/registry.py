"""Named streams for the command line: ``<scenario>-<source>``, e.g. ``split-mnist5k``."""

from __future__ import annotations

from collections.abc import Callable

from streams import scenarios
from streams.core import Stream
from streams.names import SCENARIOS, parse_name, stream_names
from streams.sources import load_source

__all__ = ["DESCRIPTIONS", "get_stream", "parse_name", "stream_names"]

# scenario prefix -> builder (names, descriptions and defaults: streams.names)
SCENARIO_BUILDERS: dict[str, Callable[..., Stream]] = {
    "split": scenarios.split,
    "split-task": lambda d, **kw: scenarios.split(d, scenario="task", **kw),
    "permuted": scenarios.permuted,
    "rotated": scenarios.rotated,
    "blurry": scenarios.blurry,
}
DESCRIPTIONS = {sc: text for sc, (text, _) in SCENARIOS.items()}


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
    builder, default_n = SCENARIO_BUILDERS[sc], SCENARIOS[sc][1]
    data = load_source(src, data_root)
    stream = builder(data, n_experiences=experiences or default_n, seed=seed, **options)
    stream.name = name
    return stream
