"""Store benchmark: EpisodicStore against its bare components, side by side in one run.

    python bench/store_bench.py                 # 10k, 100k, 1M memories (about 15 minutes)
    python bench/store_bench.py --sizes 10000   # quick look
    python bench/store_bench.py --sizes 10000000 --kinds ivf   # ten million (20 GB disk, 18 min)

Keys are 128-d float32 drawn from a mixture of 1,000 Gaussian clusters (real embeddings are
clustered; uniform noise is the worst case for every ANN index); values are 784 bytes (a
28x28 uint8 image). Nothing of size n is held beside the store: keys are drawn again, batch
by batch, from their seed for the bare indexes, the exact top-10 of the queries is merged
batch by batch as they are written, and the bare sampler's ring buffer holds at most a
million values; so the process's peak RSS (reported) is the store's and one bare index's.
Flat and HNSW are skipped above a million (an exact query of 10M keys takes a second; an
HNSW graph of 10M takes hours to build on two cores). Results print as a table after each
size and go to bench/results/store.json; paste the table into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_table import write_table  # noqa: E402
from bench.store_processes import (  # noqa: E402
    give_back_freed_memory,
    open_after_kill,
    peak_rss_gb,
    resident_gb,
    timed_open,
)
from stores import EpisodicStore  # noqa: E402

DIM, VALUE = 128, (784,)
CENTRES = np.random.default_rng(123).standard_normal((1000, DIM)).astype(np.float32) * 3


def keys_for(rng: np.random.Generator, n: int) -> np.ndarray:
    c = rng.integers(0, len(CENTRES), n)
    return CENTRES[c] + rng.standard_normal((n, DIM)).astype(np.float32)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, q))  # milliseconds


def time_calls(fn, reps: int) -> list[float]:
    """Seconds per call of fn(i) for i in range(reps)."""
    out = []
    for i in range(reps):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def bench_search(st, bare, kind: str, queries, truth, n: int) -> list[dict]:
    """Single-query and batched search, store against the bare FAISS index, with recall."""
    one = [queries[i : i + 1] for i in range(len(queries))]
    s1 = time_calls(lambda i: st.search(one[i % len(one)], 10), 300)
    if hasattr(bare, "parallel_mode"):  # as the store searches one query: its lists shared
        bare.parallel_mode = 1  # among the threads (FAISS's default gives a query one core)
    b1 = time_calls(lambda i: bare.search(one[i % len(one)], 10), 300)
    if hasattr(bare, "parallel_mode"):
        bare.parallel_mode = 0
    s64 = time_calls(lambda i: st.search(queries[:64], 10), 20)
    b64 = time_calls(lambda i: bare.search(queries[:64], 10), 20)
    recall = recall_at_10(st.search(queries, 10).ids, truth)
    bare_recall = recall_at_10(bare.search(queries, 10)[1], truth)
    target = {
        "flat": "exact",
        "ivfpq": "p50 <= 1 ms, p99 <= 5 ms; recall reported",
    }.get(kind, "p50 <= 1 ms, p99 <= 5 ms, recall >= 0.95, overhead <= 1.3x")
    return [
        {
            "n": n,
            "op": f"search k=10, 1 query, {kind}",
            "store": f"p50 {pct(s1, 50):.3f} / p99 {pct(s1, 99):.3f} ms",
            "bare": f"p50 {pct(b1, 50):.3f} / p99 {pct(b1, 99):.3f} ms (recall {bare_recall})",
            "ratio": f"{pct(s1, 50) / pct(b1, 50):.2f}x",
            "target": target,
            "recall@10": recall,
            "value": pct(s1, 50),
        },
        {
            "n": n,
            "op": f"search k=10, 64 queries, {kind}",
            "store": f"p50 {pct(s64, 50):.2f} / p99 {pct(s64, 99):.2f} ms",
            "bare": f"p50 {pct(b64, 50):.2f} / p99 {pct(b64, 99):.2f} ms",
            "ratio": f"{pct(s64, 50) / pct(b64, 50):.2f}x",
            "target": "",
            "recall@10": recall,
            "value": pct(s64, 50),
        },
    ]


def recall_at_10(got: np.ndarray, truth: np.ndarray) -> float:
    return round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])), 4)


def index_ram_row(st, n: int) -> dict:
    """What the store's IVF index holds in RAM: codes and ids in its lists, its centroids."""
    ix = st.index.index
    size = ix.ntotal * (ix.code_size + 8) + ix.nlist * ix.d * 4
    return {
        "n": n,
        "op": f"index RAM, {st.spec.kind} ({ix.code_size} bytes a key, {ix.nlist:,} lists)",
        "store": f"{size / 2**30:.2f} GB",
        "bare": "",
        "ratio": "",
        "target": "<= 2 GB (ivfpq)" if st.spec.kind == "ivfpq" else "",
        "value": size,
    }


BATCH = 5000
RING_MAX = 1_000_000  # the bare sampler's values (7.8 GB at 10M would crowd out the store)
FLAT_HNSW_MAX = 1_000_000


def key_batches(n: int):
    """The keys written, batch by batch, drawn again from their own seed."""
    rng = np.random.default_rng(0)
    for start in range(0, n, BATCH):
        yield keys_for(rng, min(BATCH, n - start))


def merge_top(best: tuple[np.ndarray, np.ndarray], dist, ids, k: int = 10):
    """The k nearest of two candidate lists per query (distances ascending)."""
    d = np.concatenate([best[0], dist], axis=1)
    i = np.concatenate([best[1], ids], axis=1)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)


def write_store(folder: Path, n: int, queries: np.ndarray, kind: str) -> tuple[float, np.ndarray]:
    """(writes per second, the exact top-10 ids of ``queries``), merged as batches go in,
    into a store of index ``kind`` from the start (an IVF one trains as it grows)."""
    rng = np.random.default_rng(1)
    st = EpisodicStore.create(folder, dim=DIM, value_shape=VALUE, value_dtype="uint8", index=kind)
    best = (np.full((len(queries), 10), np.inf, np.float32), np.full((len(queries), 10), -1))
    elapsed, start = 0.0, 0
    for k in key_batches(n):
        v = rng.integers(0, 256, (len(k), *VALUE), dtype=np.uint8)
        y = rng.integers(0, 10, len(k))
        t = time.perf_counter()
        st.write(k, v, y, tasks=y // 2)
        elapsed += time.perf_counter() - t
        exact = faiss.IndexFlatL2(DIM)
        exact.add(k)
        dist, rows = exact.search(queries, min(10, len(k)))
        best = merge_top(best, dist, np.where(rows >= 0, rows + start, -1))
        start += len(k)
    t = time.perf_counter()
    st.close()
    elapsed += time.perf_counter() - t
    return n / elapsed, best[1]


def bare_index(kind: str, n: int, spec, nlist: int = 0) -> faiss.Index:
    """The same FAISS index the store builds (for IVF: as many lists), without the store."""
    if kind == "flat":
        idx = faiss.IndexFlatL2(DIM)
    elif kind == "hnsw":
        idx = faiss.IndexHNSWFlat(DIM, spec.hnsw_m)
        idx.hnsw.efConstruction = spec.ef_construction
        idx.hnsw.efSearch = spec.ef_search
    else:
        nlist = nlist or int(np.clip(4 * np.sqrt(n), 1, n // 39))
        if kind == "ivfpq":
            idx = faiss.IndexIVFPQ(faiss.IndexFlatL2(DIM), DIM, nlist, spec.code_bytes, 8)
        else:
            idx = faiss.IndexIVFFlat(faiss.IndexFlatL2(DIM), DIM, nlist)
        sample, held = [], 0
        for k in key_batches(n):  # the first keys are as good a sample as any: drawn iid
            sample.append(k)
            held += len(k)
            if held >= nlist * 64:
                break
        idx.train(np.concatenate(sample)[: nlist * 64])
        idx.nprobe = spec.nprobe
    for k in key_batches(n):
        idx.add(k)
    return idx


def bench_sample(st, n: int) -> list[dict]:
    """sample(64), uniform and class-balanced, against a numpy ring buffer's draw, once the
    open's read of the value file into the page cache is done (as a service is seconds
    after its open); and uniform with the values read from the database instead."""
    rows: list[dict] = []
    if st.value_file is not None:
        st.value_file.wait_read_ahead()
        took = st.value_file.read_ahead_s
        rows.append(
            {
                "n": n,
                "op": "value file read into the page cache, after the index copy loaded",
                "store": "not read (too large for the memory available)"
                if took is None
                else f"{took:.2f} s",
                "bare": "",
                "ratio": "",
                "target": "",
                "value": took,
            }
        )
    print(f"[{n:,}] sampling ...", flush=True)
    ring = min(n, RING_MAX)
    ring_vals = np.random.default_rng(0).integers(0, 256, (ring, *VALUE), dtype=np.uint8)
    ring_labels = np.zeros(ring, np.int64)
    srng = np.random.default_rng(1)

    def ring_sample():
        i = srng.choice(ring, 64, replace=False)
        return ring_vals[i], ring_labels[i]

    value_file = st.value_file
    for policy in ("uniform", "class-balanced", "uniform, values from the database"):
        st.value_file = None if "database" in policy else value_file  # the A/B: file or SQL
        before = st.stats()["value_reads"] or {"file": 0, "database": 0}
        drawn = policy.split(",")[0]
        ss = time_calls(lambda i, p=drawn: st.sample(64, p, rng=srng), 300)
        rs = time_calls(lambda i: ring_sample(), 300)
        after = st.stats()["value_reads"]
        served = "" if after is None else f", {after['file'] - before['file']:,} from the file"
        rows.append(
            {
                "n": n,
                "op": f"sample(64) {policy}",
                "store": f"p50 {pct(ss, 50):.3f} / p99 {pct(ss, 99):.3f} ms{served}",
                "bare": f"p50 {pct(rs, 50):.3f} ms (numpy ring buffer of {ring:,})",
                "ratio": f"{pct(ss, 50) / pct(rs, 50):.1f}x",
                "target": "p50 <= 0.5 ms, p99 <= 2 ms",
                "value": pct(ss, 50),
            }
        )
    st.value_file = value_file
    return rows


def bench_size(n: int, workdir: Path, kinds: list[str]) -> list[dict]:
    rows: list[dict] = []
    folder = workdir / f"store-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    print(f"[{n:,}] writing ...", flush=True)
    queries = keys_for(np.random.default_rng(7), 200)
    writes_per_s, truth = write_store(folder, n, queries, kinds[0])
    give_back_freed_memory()
    print(f"[{n:,}] written; resident {resident_gb():.1f} GB; opening ...", flush=True)
    rows.append(
        {
            "n": n,
            "op": f"write (batches of {BATCH:,}, {kinds[0]})",
            "store": f"{writes_per_s:,.0f}/s",
            "bare": "",
            "ratio": "",
            "target": ">= 50,000/s",
            "value": writes_per_s,
        }
    )

    took, settled = timed_open(folder)
    print(f"[{n:,}] opened in a new process: {took:.2f} s, loaded {settled:.2f} s", flush=True)
    t = time.perf_counter()
    st = EpisodicStore.open(folder)
    took_here = time.perf_counter() - t
    st.settle()  # searches are timed on the loaded copy, with both cores free
    rows += bench_sample(st, n)  # before the search's bare index takes the page cache
    opens = (
        ("new process", took, "<= 2 s"),
        ("this process, as before 2026-12-06", took_here, "<= 2 s"),
        ("new process, until its index is loaded and checked", settled, ""),
    )
    for op, secs, target in opens:
        rows.append(
            {
                "n": n,
                "op": f"open after clean close ({op})",
                "store": f"{secs:.2f} s",
                "bare": "",
                "ratio": "",
                "target": target,
                "value": secs,
            }
        )
    for kind in kinds:
        if kind in ("flat", "hnsw") and n > FLAT_HNSW_MAX:
            continue
        if kind != st.spec.kind:
            print(f"[{n:,}] building {kind} ...", flush=True)
            # as many lists as the IVF index already built, when there is one (training
            # 4 sqrt(n) lists again at 10M is most of an hour on two cores)
            lists = getattr(st.index.index, "nlist", 0) if kind in ("ivf", "ivfpq") else 0
            st.reindex(kind, **({"nlist": lists} if lists else {}))
        bare = bare_index(kind, n, st.spec, getattr(st.index.index, "nlist", 0))
        rows += bench_search(st, bare, kind, queries, truth, n)
        if kind in ("ivf", "ivfpq"):
            rows.append(index_ram_row(st, n))
        del bare

    print(f"[{n:,}] searched; resident {resident_gb():.1f} GB", flush=True)
    kind = st.spec.kind
    st.close()
    st = None  # the reopen is measured in a new process: leave it the page cache
    gc.collect()
    took = open_after_kill(folder)
    rows.append(
        {
            "n": n,
            "op": f"open after SIGKILL during writes ({kind})",
            "store": f"{took:.2f} s",
            "bare": "",
            "ratio": "",
            "target": "<= 10 s",
            "value": took,
        }
    )
    rows.append(
        {
            "n": n,
            "op": "peak RSS of this process so far",
            "store": f"{peak_rss_gb():.1f} GB",
            "bare": "",
            "ratio": "",
            "target": "within the machine's 24 GB",
            "value": peak_rss_gb(),
        }
    )
    shutil.rmtree(folder, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--kinds", default="flat,ivf,hnsw")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    faiss.omp_set_num_threads(2)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lifelong-bench-"))
    rows = []
    cols = ["n", "op", "store", "bare", "ratio", "recall@10", "target"]
    for n in (int(s) for s in args.sizes.split(",")):
        rows += bench_size(n, workdir, args.kinds.split(","))
        write_table("store", rows, cols)  # after each size: a long run keeps what it measured


if __name__ == "__main__":
    main()
