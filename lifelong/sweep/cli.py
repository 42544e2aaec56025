"""``lifelong sweep``: the command."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub, formatter) -> None:
    s = sub.add_parser(
        "sweep",
        help="a grid of runs (methods x streams x seeds x settings) on Ray, resumable",
        description="Run every trial a sweep file names, as Ray tasks: on this machine's cores "
        "(a local Ray cluster, started for you) or on a cluster (--address). Each trial is a "
        "run folder under OUT/trials/; started again, a sweep skips finished trials and "
        "resumes the others from their checkpoints. Writes results.csv/json, table.md and "
        "sweep-STREAM.png.\n\n"
        "  lifelong sweep configs/sweeps/split-digits.toml\n"
        "  lifelong sweep configs/sweeps/split-digits.toml --address ray://head:10001",
        formatter_class=formatter,
    )
    s.add_argument("file", help="sweep file (TOML)")
    s.add_argument("--out", help="sweep folder (default: sweeps/NAME, NAME the file's)")
    s.add_argument(
        "--address",
        help="Ray cluster: auto (one started with `ray start`), ray://host:port, or none "
        "to start one on this machine",
    )
    s.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="trials at a time (default 0: every CPU of the cluster; 1 with no --address: "
        "in this process, without Ray)",
    )
    s.add_argument(
        "--max-trials",
        type=int,
        default=None,
        help="refuse a sweep of more trials than this (default 10,000; counted before any "
        "is built)",
    )
    s.add_argument("--no-progress", dest="progress", action="store_false", help="no bar")
    s.set_defaults(func=sweep_command)


def sweep_command(args) -> int:
    import sys

    from lifelong.config import ConfigError
    from lifelong.sweep import driver, spec

    if args.jobs < 0:
        raise ConfigError(f"--jobs must be 0 (every CPU) or more, got {args.jobs}")
    if args.max_trials is not None and args.max_trials <= 0:
        raise ConfigError(f"--max-trials must be > 0, got {args.max_trials}")
    plan = spec.load(args.file, args.max_trials or spec.MAX_TRIALS)
    out = Path(args.out or f"sweeps/{plan.name}")

    def echo(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    echo(f"sweep {plan.name}: {len(plan.trials)} trials into {out}")
    rows, paths = driver.sweep(
        plan, out, address=args.address, jobs=args.jobs, progress=args.progress, echo=echo
    )
    print((out / "table.md").read_text(), end="")
    for k, v in paths.items():
        print(f"{k}: {v}")
    failed = sum(r["status"] != "ok" for r in rows)
    if failed:
        echo(f"{failed} trial(s) failed (their errors: {out}/trials/ID/error.txt)")
    return 1 if failed else 0
