"""Train a continual learner on a stream of tasks, resumably, and look inside its memory.

`lifelong run` trains the agent on a named stream (or a folder that receives task files) in
a run folder that can be killed and resumed; `lifelong report` plots its forgetting curves;
`lifelong memory` queries its episodic memory store; `lifelong compare` runs it beside
Avalanche's strategies on the very same data. Start with:

  lifelong streams list
  lifelong run --stream split-mnist5k --out runs/first
  lifelong report runs/first
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from lifelong import memory_cli, run_cli
from lifelong.errors import one_line_warnings
from lifelong.serve import cli as serve_cli
from lifelong.sweep import cli as sweep_cli


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown beside every option; descriptions keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # RunConfig's flags say their config default in their help (theirs is None, which
        # means "not given"): not a second, wrong one
        if action.help and "(default:" in action.help:
            return action.help
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return action.help  # "--no-progress: no bar (default: True)" says the opposite
        return super()._get_help_string(action)


def _streams_list(args: argparse.Namespace) -> int:
    from streams.names import SCENARIOS, SOURCES, stream_names

    if args.json:
        print(json.dumps(stream_names()))
        return 0
    print("Streams are named <scenario>-<source>. Scenarios:")
    for sc, (text, n) in SCENARIOS.items():
        print(f"  {sc:<11} {text} ({n} experiences by default)")
    print("\nSources:")
    for src, how in SOURCES.items():
        print(f"  {src:<14} {how}")
    print("\nAvailable:")
    for name in stream_names():
        print(f"  {name}")
    return 0


def _streams_describe(args: argparse.Namespace) -> int:
    from streams.registry import get_stream

    opts = {"overlap": args.overlap} if args.overlap is not None else {}
    stream = get_stream(
        args.name, experiences=args.experiences, seed=args.seed, data_root=args.data_root, **opts
    )
    info = stream.describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    kind = {
        "class": "class-incremental",
        "task": "task-incremental",
        "domain": "domain-incremental",
        "task-free": "task-free",
    }[info["scenario"]]
    print(
        f"{info['name']}: {kind}, {info['n_experiences']} experiences, "
        f"{info['n_classes']} classes, input {tuple(info['input_shape'])}, seed {info['seed']}"
    )
    print(f"  {'exp':>3} {'task':>4} {'train':>6} {'test':>5}  classes")
    for e in info["experiences"]:  # only task-incremental streams give learners task ids
        task = e["task_id"] if info["scenario"] == "task" else "none"
        print(f"  {e['id']:>3} {task:>4} {e['n_train']:>6} {e['n_test']:>5}  {e['classes']}")
    return 0


def _streams_download(args: argparse.Namespace) -> int:
    from streams.sources import data_root, load_torchvision

    load_torchvision(args.source, args.data_root, download=True)
    print(f"{args.source} is cached in {data_root(args.data_root)}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lifelong")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lifelong", description=__doc__, formatter_class=Formatter)
    p.add_argument("--version", action="version", version=f"lifelong {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "streams",
        help="list, describe or download task streams",
        description="The named task streams: list them, describe one, fill a download cache.",
        formatter_class=Formatter,
    )
    ssub = s.add_subparsers(dest="streams_command", required=True, metavar="STREAMS_COMMAND")
    sl = ssub.add_parser(
        "list",
        help="the named streams, and which sources need a download",
        formatter_class=Formatter,
    )
    sl.add_argument("--json", action="store_true", help="the names as a JSON list")
    sl.set_defaults(func=_streams_list)
    sd = ssub.add_parser(
        "describe", help="experiences, classes and sizes of a stream", formatter_class=Formatter
    )
    sd.add_argument("name", help="a stream name, e.g. split-mnist5k")
    sd.add_argument(
        "--experiences", type=int, default=None, help="number of experiences (the stream's own)"
    )
    sd.add_argument("--seed", type=int, default=0, help="seed of the class order / permutations")
    sd.add_argument(
        "--overlap", type=float, default=None, help="blurry streams: share of neighbours mixed"
    )
    sd.add_argument(
        "--data-root", default=None, help="cache of downloaded sets ($LIFELONG_DATA or ~/.cache)"
    )
    sd.add_argument("--json", action="store_true", help="machine-readable output")
    sd.set_defaults(func=_streams_describe)
    sdl = ssub.add_parser(
        "download", help="fill the cache of a torchvision source", formatter_class=Formatter
    )
    sdl.add_argument(
        "source", choices=["mnist", "fashion-mnist", "cifar10", "cifar100"], help="the set to fetch"
    )
    sdl.add_argument(
        "--data-root", default=None, help="cache folder ($LIFELONG_DATA or ~/.cache/lifelong)"
    )
    sdl.set_defaults(func=_streams_download)

    run_cli.add_parser(sub, Formatter)
    memory_cli.add_parser(sub, Formatter)
    serve_cli.add_parser(sub, Formatter)
    sweep_cli.add_parser(sub, Formatter)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """A user's mistake or a damaged file: one line naming the problem, exit 2."""
    from lifelong.errors import BadBatchError, CheckpointError, ConfigError, DiskFull
    from stores.errors import StoreError
    from streams.errors import StreamError

    return (StreamError, ConfigError, BadBatchError, CheckpointError, DiskFull, StoreError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    formatter = one_line_warnings()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once; checkpoints are atomic
        print(
            "lifelong: interrupted; the last checkpoint is intact (run the same command to resume)",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            print(f"lifelong: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, OSError):  # a path that is a folder, a read-only mount, a full disk
            where = f": {exc.filename}" if exc.filename else ""
            print(f"lifelong: error: {exc.strerror or exc}{where}", file=sys.stderr)
            return 2
        raise
    finally:
        warnings.formatwarning = formatter


if __name__ == "__main__":
    sys.exit(main())
