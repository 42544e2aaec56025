"""Store benchmark: EpisodicStore against its bare components, side by side in one run.

    python bench/store_bench.py                 # 10k, 100k, 1M memories (about 15 minutes)
    python bench/store_bench.py --sizes 10000   # quick look

Keys are 128-d float32 drawn from a mixture of 1,000 Gaussian clusters (real embeddings are
clustered; uniform noise is the worst case for every ANN index); values are 784 bytes (a
28x28 uint8 image). Results print as a table and go to bench/results/store.json; paste the
table into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_table import write_table  # noqa: E402
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
    b1 = time_calls(lambda i: bare.search(one[i % len(one)], 10), 300)
    s64 = time_calls(lambda i: st.search(queries[:64], 10), 20)
    b64 = time_calls(lambda i: bare.search(queries[:64], 10), 20)
    res = st.search(queries, 10).ids
    recall = round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(res, truth)])), 4)
    target = "p50 <= 1 ms, recall >= 0.95, overhead <= 1.5x" if kind != "flat" else "exact"
    return [
        {
            "n": n,
            "op": f"search k=10, 1 query, {kind}",
            "store": f"p50 {pct(s1, 50):.3f} / p99 {pct(s1, 99):.3f} ms",
            "bare": f"p50 {pct(b1, 50):.3f} / p99 {pct(b1, 99):.3f} ms",
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


def write_store(folder: Path, n: int, batch: int = 5000) -> tuple[float, np.ndarray]:
    rng = np.random.default_rng(0)
    st = EpisodicStore.create(folder, dim=DIM, value_shape=VALUE, value_dtype="uint8")
    keys_all = []
    elapsed = 0.0
    for start in range(0, n, batch):
        m = min(batch, n - start)
        k = keys_for(rng, m)
        v = rng.integers(0, 256, (m, *VALUE), dtype=np.uint8)
        y = rng.integers(0, 10, m)
        t = time.perf_counter()
        st.write(k, v, y, tasks=y // 2)
        elapsed += time.perf_counter() - t
        keys_all.append(k)
    t = time.perf_counter()
    st.close()
    elapsed += time.perf_counter() - t
    return n / elapsed, np.concatenate(keys_all)


def bare_index(kind: str, keys: np.ndarray, spec) -> faiss.Index:
    """The same FAISS index the store builds, without the store around it."""
    if kind == "flat":
        idx = faiss.IndexFlatL2(DIM)
    elif kind == "hnsw":
        idx = faiss.IndexHNSWFlat(DIM, spec.hnsw_m)
        idx.hnsw.efConstruction = spec.ef_construction
        idx.hnsw.efSearch = spec.ef_search
    else:
        nlist = int(np.clip(4 * np.sqrt(len(keys)), 1, len(keys) // 39))
        idx = faiss.IndexIVFFlat(faiss.IndexFlatL2(DIM), DIM, nlist)
        idx.train(keys[np.random.default_rng(0).permutation(len(keys))[: nlist * 64]])
        idx.nprobe = spec.nprobe
    idx.add(keys)
    return idx


KILL_WRITER = """
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from stores import EpisodicStore
st = EpisodicStore.open(sys.argv[1])
rng = np.random.default_rng(5)
print("ready", flush=True)
while True:
    st.write(rng.standard_normal((500, 128)).astype(np.float32),
             rng.integers(0, 256, (500, 784), dtype=np.uint8), rng.integers(0, 10, 500))
"""


def open_after_kill(folder: Path, seconds: float = 3.0) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_WRITER, str(folder), str(ROOT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    proc.stdout.readline()
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t = time.perf_counter()
    st = EpisodicStore.open(folder)
    took = time.perf_counter() - t
    assert st.verify(sample=100)["ok"]
    st.close()
    return took


def bench_size(n: int, workdir: Path, kinds: list[str]) -> list[dict]:
    rows: list[dict] = []
    folder = workdir / f"store-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    print(f"[{n:,}] writing ...", flush=True)
    writes_per_s, keys = write_store(folder, n)
    rows.append(
        {
            "n": n,
            "op": "write (batches of 5,000)",
            "store": f"{writes_per_s:,.0f}/s",
            "bare": "",
            "ratio": "",
            "target": ">= 50,000/s",
            "value": writes_per_s,
        }
    )

    t = time.perf_counter()
    st = EpisodicStore.open(folder)
    rows.append(
        {
            "n": n,
            "op": "open after clean close",
            "store": f"{time.perf_counter() - t:.2f} s",
            "bare": "",
            "ratio": "",
            "target": "",
            "value": time.perf_counter() - t,
        }
    )
    rng = np.random.default_rng(7)
    queries = keys_for(rng, 200)
    d = faiss.IndexFlatL2(DIM)
    d.add(keys)
    _, truth = d.search(queries, 10)  # ids are 0..n-1 in write order, as in the store

    for kind in kinds:
        if kind != st.spec.kind:
            print(f"[{n:,}] building {kind} ...", flush=True)
            st.reindex(kind)
        rows += bench_search(st, bare_index(kind, keys, st.spec), kind, queries, truth, n)

    ring_vals = np.random.default_rng(0).integers(0, 256, (n, *VALUE), dtype=np.uint8)
    ring_labels = np.zeros(n, np.int64)
    srng = np.random.default_rng(1)

    def ring_sample():
        i = srng.choice(n, 64, replace=False)
        return ring_vals[i], ring_labels[i]

    for policy in ("uniform", "class-balanced"):
        ss = time_calls(lambda i, p=policy: st.sample(64, p, rng=srng), 300)
        rs = time_calls(lambda i: ring_sample(), 300)
        rows.append(
            {
                "n": n,
                "op": f"sample(64) {policy}",
                "store": f"p50 {pct(ss, 50):.3f} / p99 {pct(ss, 99):.3f} ms",
                "bare": f"p50 {pct(rs, 50):.3f} ms (numpy ring buffer)",
                "ratio": f"{pct(ss, 50) / pct(rs, 50):.1f}x",
                "target": "p50 <= 1 ms",
                "value": pct(ss, 50),
            }
        )
    st.reindex("flat")
    st.close()
    took = open_after_kill(folder)
    rows.append(
        {
            "n": n,
            "op": "open after SIGKILL during writes (flat)",
            "store": f"{took:.2f} s",
            "bare": "",
            "ratio": "",
            "target": "<= 10 s",
            "value": took,
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
    for n in (int(s) for s in args.sizes.split(",")):
        rows += bench_size(n, workdir, args.kinds.split(","))
    cols = ["n", "op", "store", "bare", "ratio", "recall@10", "target"]
    write_table("store", rows, cols)


if __name__ == "__main__":
    main()
