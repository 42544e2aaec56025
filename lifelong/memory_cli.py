"""``lifelong memory ...``: look inside a store folder (a run's ``memory/`` or any store)."""

from __future__ import annotations

import argparse
import json
import time

from stores.errors import StoreError

# numpy and the store (FAISS, SQLAlchemy) are imported by the commands that use them, so
# `lifelong --help` and `lifelong streams list` start without them.


def add_parser(sub, formatter) -> None:
    m = sub.add_parser(
        "memory",
        help="inspect an episodic memory store",
        description="Look inside a store folder (a run's memory/, or any store); safe beside "
        "a live run.\n\n  lifelong memory list runs/first/memory --label 3\n"
        "  lifelong memory query runs/first/memory --id 42 -k 5",
        formatter_class=formatter,
    )
    msub = m.add_subparsers(dest="memory_command", required=True, metavar="MEMORY_COMMAND")

    def cmd(name: str, func, help_: str) -> argparse.ArgumentParser:
        p = msub.add_parser(name, help=help_, description=help_, formatter_class=formatter)
        p.add_argument("path", help="store folder, e.g. runs/NAME/memory")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)
        return p

    cmd("stats", stats, "counts, settings and file sizes")
    ls = cmd("list", list_memories, "the memories' ids and fields, filtered, a page at a time")
    ls.add_argument("--limit", type=int, default=20, help="memories per page")
    ls.add_argument("--offset", type=int, default=0, help="memories to skip (by id order)")
    _filters(ls)
    q = cmd("query", query, "nearest memories of a stored memory's key or of a .npy key")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--id", type=int, help="use this memory's key as the query")
    src.add_argument("--key", help=".npy file holding one key (or several, one per row)")
    q.add_argument("-k", type=int, default=10, help="neighbours per query")
    _filters(q)
    s = cmd("sample", sample, "a random batch of memories")
    s.add_argument("-n", type=int, default=10, help="memories to draw")
    s.add_argument(
        "--policy",
        default="uniform",
        choices=["uniform", "class-balanced", "task-balanced"],
        help="uniform, or stratified over classes or tasks",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the draw")
    _filters(s)
    sh = cmd("show", show, "one memory's fields and its stored example (--png: as a picture)")
    sh.add_argument("id", type=int, help="memory id (see `memory list`)")
    sh.add_argument("--png", help="write the stored example as a picture to this file")
    e = cmd("export", export, "write every memory to .npz (keys, values, fields) or .csv")
    e.add_argument("out", help="output file ending in .npz or .csv")
    cmd("verify", verify, "check index and database agree (exit 1 with the differences)")
    cmd("reindex", reindex, "rebuild the key index from the database")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", type=int, action="append", help="keep this task (repeatable)")
    p.add_argument("--label", type=int, action="append", help="keep this label (repeatable)")
    p.add_argument(
        "--experience", type=int, action="append", help="keep this experience (repeatable)"
    )
    p.add_argument("--positions", help="stream position range START:STOP (either may be empty)")


def _where(args) -> dict:
    where = {f: getattr(args, f) for f in ("task", "label", "experience") if getattr(args, f)}
    if args.positions:
        lo, sep, hi = args.positions.partition(":")
        try:
            where["position"] = (int(lo) if lo else None, int(hi) if hi else None)
        except ValueError:
            sep = ""
        if not sep:
            raise StoreError(
                f"--positions must be START:STOP (either may be empty), got {args.positions!r}"
            )
        lo, hi = where["position"]
        if (lo is not None and lo < 0) or (hi is not None and hi < 0):
            raise StoreError(f"--positions are stream positions (>= 0), got {args.positions!r}")
        if lo is not None and hi is not None and lo >= hi:
            raise StoreError(
                f"--positions {args.positions} holds no position: START must be below STOP "
                "(STOP is not included)"
            )
    return where


def _query_keys(path: str):
    """Keys from a .npy file, refusing anything but a plain numeric array (no pickles)."""
    import numpy as np

    try:
        keys = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise StoreError(f"--key {path}: not a plain numeric .npy array ({exc})") from None
    if not isinstance(keys, np.ndarray) or keys.dtype.kind not in "fiu":
        raise StoreError(f"--key {path}: expected a numeric .npy array of keys")
    return keys


def _emit(args, rows: list[dict]) -> int:
    """Rows as JSON with --json, else as an aligned table."""
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _table(rows)
    return 0


def _emit_fields(args, fields: dict, width: int, shown) -> int:
    """One record's fields: JSON with --json, else a ``key: value`` line each."""
    if args.json:
        print(json.dumps(fields, indent=2))
    else:
        for k, v in fields.items():
            print(f"{k:>{width}}: {shown(k, v)}")
    return 0


def _table(rows: list[dict]) -> None:
    if not rows:
        print("(no memories)")
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(_fmt(r[c], c)) for r in rows)) for c in cols}
    print("  ".join(c.rjust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(_fmt(r[c], c).rjust(widths[c]) for c in cols))


NO_TASK = "none"  # a memory written without a task id (null in its JSON record)


def _fmt(v, col: str = "") -> str:
    if col == "written_at" and v is not None:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))
    if col == "task" and v in (None, -1):
        return NO_TASK
    if v is None or (isinstance(v, int) and v == -1):
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _open(path: str, readonly: bool = True):
    from stores.store import EpisodicStore

    return EpisodicStore.open(path, readonly=readonly)


def stats(args) -> int:
    with _open(args.path) as st:
        info = st.stats()
    return _emit_fields(args, info, width=14, shown=lambda k, v: str(v))


def list_memories(args) -> int:
    """Ids in order with their fields: the ids to ask ``query --id`` about."""
    _positive(limit=args.limit)
    if args.offset < 0:
        raise StoreError(f"--offset must be 0 or more, got {args.offset}")
    with _open(args.path) as st:
        ids = st.catalog.ids
        where = _where(args)
        if where:
            ids = ids[st.catalog.mask(**where)]
        page = ids[args.offset : args.offset + args.limit]
        rows = st.records(page)
    if args.json:
        print(json.dumps({"total": int(len(ids)), "offset": args.offset, "memories": rows}))
        return 0
    _table(rows)
    print(f"({len(rows)} of {len(ids)} memories from offset {args.offset})")
    return 0


def _positive(**counts: int) -> None:
    """Counts a user gives (``-n``, ``--limit``): refused when not positive, as ``-k 0`` is."""
    for name, value in counts.items():
        if value <= 0:
            flag = f"-{name}" if len(name) == 1 else f"--{name}"
            raise StoreError(f"{flag} must be positive, got {value}")


def query(args) -> int:

    with _open(args.path) as st:
        keys = st.keys_of([args.id]) if args.id is not None else _query_keys(args.key)
        res = st.search(keys, args.k, where=_where(args))
        out = []
        for qi in range(res.ids.shape[0]):
            found = res.ids[qi] >= 0
            recs = {r["id"]: r for r in st.records(res.ids[qi][found])}
            for rank, (i, d) in enumerate(
                zip(res.ids[qi][found], res.distances[qi][found], strict=True)
            ):
                out.append({"query": qi, "rank": rank, "distance": float(d), **recs[int(i)]})
    return _emit(args, out)


def sample(args) -> int:
    import numpy as np

    _positive(n=args.n)
    with _open(args.path) as st:
        b = st.sample(
            args.n,
            args.policy,
            rng=np.random.default_rng(args.seed),
            where=_where(args),
            with_values=False,
        )
        out = st.records(b.ids)
    return _emit(args, out)


def show(args) -> int:
    """One memory: its fields, its example's shape and range, and with ``--png`` the example
    drawn (an image where its shape is one)."""
    from pathlib import Path

    from lifelong.memory_pictures import plot_one

    with _open(args.path) as st:
        (record,) = st.records([args.id]) or [None]
        if record is None:
            raise StoreError(f"no memory {args.id} in {args.path} (see `lifelong memory list`)")
        value = st.fetch([args.id]).values[0]
        newest = int(st.catalog.cols["position"].max())
    picture = str(plot_one(value, record, newest, Path(args.png))) if args.png else None
    record |= {
        "value_shape": list(value.shape),
        "value_min": float(value.min()),
        "value_max": float(value.max()),
    }
    if picture:
        record["png"] = picture
    return _emit_fields(args, record, width=13, shown=lambda k, v: _fmt(v, k))


def export(args) -> int:
    with _open(args.path) as st:
        path = st.export(args.out)
        n = len(st)
    print(
        json.dumps({"exported": n, "file": str(path)})
        if args.json
        else f"exported {n} memories to {path}"
    )
    return 0


def verify(args) -> int:
    with _open(args.path) as st:
        report = st.verify()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{'OK' if report['ok'] else 'FAILED'}: {report['memories']} memories, "
            f"{report['index_entries']} index entries; index file {report['index_file']}"
        )
        for p in report["problems"]:
            print(f"  problem: {p}")
    return 0 if report["ok"] else 1


def reindex(args) -> int:
    with _open(args.path, readonly=False) as st:
        st.reindex()
        n = len(st)
    print(json.dumps({"reindexed": n}) if args.json else f"reindexed {n} memories")
    return 0
