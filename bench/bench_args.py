"""Checking a bench's stream and seed arguments before it runs anything, so a typo is one
line naming it (as ``lifelong``'s own errors are), not a traceback minutes in."""

from __future__ import annotations

import sys


def streams_and_seeds(prog: str, streams: str, seeds: str) -> tuple[list[str], list[int]]:
    """The comma-separated stream names and the seeds ("0-4", "0,2,5") of a bench's
    arguments; exits with ``prog: error: ...`` on a name or seed that is not one."""
    from lifelong.compare.runs import parse_seeds
    from lifelong.errors import ConfigError
    from streams.errors import StreamError
    from streams.names import parse_name

    names = streams.split(",")
    try:
        for name in names:
            parse_name(name)
        return names, parse_seeds(seeds)
    except (ConfigError, StreamError) as error:
        sys.exit(f"{prog}: error: {error}")


def stream_rates(prog: str, rates: str) -> list[float]:
    """The comma-separated stream rates of a bench's ``--rates``, each above 0; exits with
    ``prog: error: ...`` otherwise."""
    try:
        values = [float(r) for r in rates.split(",")]
    except ValueError:
        sys.exit(f"{prog}: error: --rates {rates!r}: numbers, comma-separated")
    if not all(r > 0 for r in values):
        sys.exit(f"{prog}: error: --rates {rates!r}: each must be above 0")
    return values
