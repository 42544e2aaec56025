"""The ``lifelong`` command: one parser, each subcommand's work in its own module."""

from __future__ import annotations

import argparse
import json
import sys

from lifelong import memory_cli, run_cli
from lifelong.agent import BadBatchError
from lifelong.checkpoint import CheckpointError
from lifelong.config import ConfigError
from lifelong.runner import DiskFull
from stores import StoreError
from streams.errors import StreamError


def _streams_list(args: argparse.Namespace) -> int:
    from streams.registry import DESCRIPTIONS, stream_names

    if args.json:
        print(json.dumps(stream_names()))
        return 0
    print("Streams are named <scenario>-<source>:")
    for sc, text in DESCRIPTIONS.items():
        print(f"  {sc:<11} {text}")
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
    for e in info["experiences"]:
        task = "-" if e["task_id"] is None else e["task_id"]
        print(f"  {e['id']:>3} {task:>4} {e['n_train']:>6} {e['n_test']:>5}  {e['classes']}")
    return 0


def _streams_download(args: argparse.Namespace) -> int:
    from streams.sources import data_root, load_torchvision

    load_torchvision(args.source, args.data_root, download=True)
    print(f"{args.source} is cached in {data_root(args.data_root)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lifelong", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("streams", help="list, describe or download task streams")
    ssub = s.add_subparsers(dest="streams_command", required=True)
    sl = ssub.add_parser("list", help="list the named streams")
    sl.add_argument("--json", action="store_true")
    sl.set_defaults(func=_streams_list)
    sd = ssub.add_parser("describe", help="experiences, classes and sizes of a stream")
    sd.add_argument("name")
    sd.add_argument("--experiences", type=int, default=None)
    sd.add_argument("--seed", type=int, default=0)
    sd.add_argument("--overlap", type=float, default=None, help="blurry streams only")
    sd.add_argument("--data-root", default=None, help="cache folder of downloaded sets")
    sd.add_argument("--json", action="store_true")
    sd.set_defaults(func=_streams_describe)
    sdl = ssub.add_parser("download", help="fill the cache of a torchvision source")
    sdl.add_argument("source", choices=["mnist", "fashion-mnist", "cifar10", "cifar100"])
    sdl.add_argument("--data-root", default=None)
    sdl.set_defaults(func=_streams_download)

    memory_cli.add_parser(sub)
    run_cli.add_parser(sub)
    return p


# A user's mistake or a damaged file: one line naming the problem, exit 2, no traceback.
USER_ERRORS = (StreamError, ConfigError, BadBatchError, CheckpointError, DiskFull, StoreError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"lifelong: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that is a folder, a read-only mount, a full disk
        where = f": {exc.filename}" if exc.filename else ""
        print(f"lifelong: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once; checkpoints are atomic
        print(
            "lifelong: interrupted; the last checkpoint is intact (run the same command to resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
