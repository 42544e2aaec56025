"""``lifelong run`` and ``lifelong report``: flags are generated from ``RunConfig``'s fields."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from lifelong.config import RunConfig


def add_parser(sub, formatter) -> None:
    r = sub.add_parser(
        "run",
        help="train the agent on a stream in a run folder (resumable)",
        description="Train the agent in a run folder. Run the same command again to resume a "
        "stopped or killed run; a folder made with another config is refused.\n\n"
        "  lifelong run --stream split-mnist5k --seed 0 --out runs/first\n"
        "  lifelong run --follow inbox/ --out runs/live --idle-timeout 600",
        formatter_class=formatter,
    )
    r.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")
    r.add_argument("--config", help="TOML file with RunConfig keys; flags override it")
    r.add_argument(
        "--max-experiences", type=int, help="follow mode: stop after this many new files"
    )
    r.add_argument(
        "--idle-timeout", type=float, help="follow mode: stop after this many idle seconds"
    )
    r.add_argument("--poll", type=float, default=1.0, help="follow mode: seconds between looks")
    add_config_flags(r)
    r.set_defaults(func=run_command)

    c = sub.add_parser(
        "compare",
        help="our agent against Avalanche strategies, same tensors",
        description="Our agent and Avalanche's strategies on the very same tensors, network, "
        "batch and memory; a table of accuracy, forgetting and speed over seeds.\n\n"
        "  lifelong compare --stream split-mnist5k --seeds 0-4 --methods ours,replay,der++",
        formatter_class=formatter,
    )
    c.add_argument("--stream", default="split-mnist5k", help="named stream")
    c.add_argument(
        "--experiences", type=int, default=0, help="experiences (0: the stream's default)"
    )
    c.add_argument("--seeds", default="0", help="seeds: a range 0-4, a list 0,3, or one")
    c.add_argument("--memory", type=int, default=500, help="memory size of every method")
    c.add_argument(
        "--methods",
        default="all",
        help="comma-separated, from: ours (the default agent), ours-lamaml (with the "
        "La-MAML controller), ours-1x and ours-lamaml-1x (one update per batch, replay "
        "10: Avalanche's compute), ours@S (the default agent at S gradient steps per "
        "example), your own method as package.module:Class (run by our agent; its own "
        "settings from --config's [method] table), naive, replay, er-ace, der++, lamaml, "
        "mer, a-gem, gdumb, ewc, lwf, cumulative; default all",
    )
    c.add_argument(
        "--compute",
        default="",
        help="also run ours at these gradient steps per example (e.g. 0.1,0.2,0.5,1.0): "
        "rows ours@S, and compute.png plots every method's accuracy against steps and FLOPs",
    )
    c.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at a time; more than 1 runs them as Ray tasks on a local Ray cluster "
        "(as lifelong sweep does)",
    )
    c.add_argument("--address", help="Ray cluster to run on (auto, ray://host:port)")
    c.add_argument("--config", help="TOML of RunConfig keys for our agent")
    c.add_argument("--out", help="output folder (default: runs/compare-STREAM)")
    c.add_argument(
        "--device",
        help="where every method trains: cpu | cuda | cuda:N | mps | auto (default: the "
        "config's, cpu); Avalanche's strategies run on the same device as our agent",
    )
    c.add_argument(
        "--real-time",
        action="store_true",
        help="also run every method on a stream that does not wait (results in OUT/real-time): "
        "ours under the stream clock, each Avalanche strategy on the batches its metered "
        "cost leaves time for",
    )
    c.add_argument(
        "--stream-rate",
        type=float,
        help="with --real-time: batches revealed per plain-replay update (default: 1)",
    )
    c.add_argument(
        "--label-delay",
        type=int,
        metavar="D",
        help="every method's labels come D batches after their examples: ours predicts on "
        "arrival and learns late; each Avalanche strategy trains on the batches whose labels "
        "came in each experience's time (default: 0)",
    )
    c.add_argument(
        "--eval-every",
        type=int,
        metavar="N",
        help="every method evaluated on every test set every N updates too, not only at "
        "experience ends: min-ACC and WC-ACC then see the stability gap (default: 0)",
    )
    c.add_argument(
        "--no-near-future",
        dest="near_future",
        action="store_false",
        default=None,
        help="no method's near-future accuracy (each measures it where the stream waits: "
        "one more prediction a batch, off the training time)",
    )
    c.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    c.set_defaults(func=compare_command)

    p = sub.add_parser(
        "report",
        help="plots and an HTML page for one run, several overlaid, or a sweep folder",
        description="Forgetting curves, the accuracy matrix and an HTML page; works on a "
        "live run folder too. Given a sweep folder, its table and plots (of the trials "
        "finished so far).\n\n  lifelong report runs/A\n  lifelong report runs/A runs/B "
        "--out cmp/\n  lifelong report sweeps/NAME",
        formatter_class=formatter,
    )
    p.add_argument("runs", nargs="+", help="run folders (or one sweep folder)")
    p.add_argument(
        "--out", help="output folder when comparing several runs (default: runs/compared)"
    )
    p.set_defaults(func=report_command)


def add_config_flags(parser: argparse.ArgumentParser, leave_out: tuple[str, ...] = ()) -> None:
    """One flag per RunConfig key (``--no-KEY`` for booleans), its help with the default;
    ``leave_out``: keys a command sets itself (a served agent's stream is its HTTP door)."""
    defaults = RunConfig()
    for f in fields(RunConfig):
        if str(f.type) == "dict" or f.name in leave_out:  # method_options: a [method] table
            continue
        flag = "--" + f.name.replace("_", "-")
        text = f"{f.metadata['help']} (default: {getattr(defaults, f.name)!r})"
        if f.type in ("bool", bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            kind = {"int": int, "float": float, "str": str}[str(f.type)]
            parser.add_argument(flag, type=kind, default=None, help=text)
    if "learned_rates" not in leave_out:  # its old name, still read (RENAMED_KEYS)
        parser.add_argument(
            "--controller",
            dest="learned_rates",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=argparse.SUPPRESS,
        )


def config_from_args(args) -> RunConfig:
    """The run's config: ``--config``'s file, else the run folder's own ``config.toml`` (so
    the same folder run again with no flags resumes as it was made), else the defaults; the
    flags given override it (and a folder refuses those that differ from how it was made)."""
    own = Path(args.out) / "config.toml" if getattr(args, "out", None) else None
    if args.config:
        base = RunConfig.load(args.config).to_dict()
    elif own is not None and own.is_file():
        base = RunConfig.load(own).to_dict()
    else:
        base = RunConfig().to_dict()
    for f in fields(RunConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            base[f.name] = v
    return RunConfig.from_dict(base)


def run_command(args) -> int:
    from lifelong.runner import format_summary, run

    cfg = config_from_args(args)
    follow = {
        k: v
        for k, v in (
            ("max_experiences", args.max_experiences),
            ("idle_timeout", args.idle_timeout),
            ("poll_seconds", args.poll),
        )
        if v is not None
    }
    result = run(cfg, args.out, follow_options=follow, echo=lambda m: print(m, file=sys.stderr))
    print(format_summary(result))
    return 128 + result.stop_signal if result.interrupted else 0  # 130 Ctrl-C, 143 SIGTERM


def report_command(args) -> int:
    from lifelong import report

    if len(args.runs) == 1 and (Path(args.runs[0]) / "sweep.json").exists():
        from lifelong.sweep import driver, results
        from lifelong.sweep.trial import finished

        plan = driver.load_plan(Path(args.runs[0]))
        rows = [r for t in plan.trials if (r := finished(args.runs[0], t)) is not None]
        paths = results.write(rows, plan.swept, Path(args.runs[0]), plan.name)
        print(Path(paths["table"]).read_text(), end="")
    elif len(args.runs) == 1 and not args.out:
        paths = report.write_report(args.runs[0])
    else:
        out = Path(args.out or "runs/compared")
        paths = report.write_comparison(args.runs, out)
        print("settings that differ:")
        for name, row in json.loads(Path(paths["json"]).read_text()).items():
            differ = ", ".join(f"{k}={v!r}" for k, v in row["settings"].items())
            print(f"  {name}: {differ or '(the same config)'}")
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def compare_command(args) -> int:
    from lifelong import compare
    from lifelong.compare import outputs as compare_outputs

    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    cfg.experiences, cfg.progress = args.experiences, args.progress
    if args.device:
        cfg.device = args.device
    cfg.real_time = cfg.real_time or args.real_time
    if args.stream_rate is not None:
        cfg.stream_rate = args.stream_rate
    if args.label_delay is not None:
        cfg.label_delay = args.label_delay
    if args.eval_every is not None:
        cfg.eval_every = args.eval_every
    if args.near_future is not None:
        cfg.near_future = args.near_future
    cfg.validate()
    methods = list(compare.METHODS) if args.methods == "all" else args.methods.split(",")
    if compare.is_user_method(cfg.method):  # --config runs a user's method: say so, not "ours"
        methods = [cfg.method if m == "ours" else m for m in methods]
    methods += [f"{compare.BUDGET_PREFIX}{b.strip()}" for b in args.compute.split(",") if b]
    out = Path(args.out or f"runs/compare-{args.stream}")
    results = compare.compare(
        args.stream,
        compare.parse_seeds(args.seeds),
        methods,
        args.memory,
        cfg,
        out,
        jobs=args.jobs,
        address=args.address,
    )
    rows = compare_outputs.aggregate(results)
    print(compare_outputs.markdown_table(rows))
    if cfg.label_delay:
        print(f"(every method's labels came {cfg.label_delay} batches late)")
    note = compare_outputs.ratio_note(results)
    if note:
        print(note)
    if cfg.real_time:
        timed = json.loads((out / compare.REAL_TIME / "results.json").read_text())["runs"]
        print(f"\nreal time (stream rate {cfg.stream_rate:g}: the stream does not wait)")
        print(compare_outputs.markdown_table(compare_outputs.aggregate(timed)))
    print(f"results in {out} (results.json, results.csv, table.md, comparison.png, compute.png)")
    if cfg.real_time:
        print(f"real-time results in {out / compare.REAL_TIME} (the same files)")
    return 0
