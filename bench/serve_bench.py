"""``lifelong serve`` under load, against ``lifelong run`` on the same stream, in one run.

Phase 1: ``lifelong run`` on split-mnist5k (the reference learning throughput).
Phase 2: ``lifelong serve`` (a child process, loopback) while N clients post every batch of
10 of the same stream at full speed (``.npz`` bodies, with idempotency keys; a 429 is waited
out as its Retry-After says) and one client asks for a prediction 50 times a second:
learning throughput, observe and predict latency percentiles.
Phase 3: the same load while the server is killed with SIGKILL and restarted K times;
clients retry what was not answered with the same key. Counts acknowledged batches against
the log and examples learned against the stream: nothing lost, nothing learned twice.

    python bench/serve_bench.py [--clients 2] [--rounds 3] [--restarts 5]

Prints a table and writes bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STREAM = "split-mnist5k"
FLAGS = ["--n-classes", "10", "--seed", "0", "--no-tensorboard", "--no-shuffle"]


class Server:
    def __init__(self, out: Path, extra: tuple[str, ...] = ()) -> None:
        self.log_path = Path(f"{out}-{time.monotonic_ns()}.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lifelong.cli", "serve", "--out", str(out), "--port", "0"]
                + FLAGS
                + list(extra),
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = re.search(r"on (http://[\d.]+:\d+)/", self.log_path.read_text())
            if found:
                self.url = found.group(1)
                return
            if self.proc.poll() is not None:
                raise RuntimeError(self.log_path.read_text())
            time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=300)


def npz(x: np.ndarray, y: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    return buf.getvalue()


class Load:
    """N posting clients and a predict client against whatever server ``url()`` names."""

    def __init__(self, url, experiences, clients: int, predict_rate: float) -> None:
        self.url, self.experiences = url, experiences
        self.clients, self.predict_rate = clients, predict_rate
        self.observe_ms: list[float] = []
        self.predict_ms: list[float] = []
        self.acked: set[str] = set()
        self.refused = self.retries = 0
        self.done = threading.Event()
        self.lock = threading.Lock()

    def _post(self, client: httpx.Client, path: str, body: bytes, key: str) -> None:
        """Until answered 200: a 429 waits its Retry-After, a dead server is retried."""
        while True:
            started = time.perf_counter()
            try:
                r = client.post(
                    self.url() + path,
                    content=body,
                    headers={"content-type": "application/x-npz", "Idempotency-Key": key},
                )
            except httpx.TransportError:
                with self.lock:
                    self.retries += 1
                time.sleep(0.2)
                continue
            if r.status_code == 429:
                with self.lock:
                    self.refused += 1
                time.sleep(float(r.headers.get("Retry-After", 1)))
                continue
            if r.status_code != 200:
                raise RuntimeError(f"{path}: {r.status_code} {r.text}")
            with self.lock:
                if not r.json()["duplicate"] and path == "/v1/observe":
                    self.observe_ms.append(1000 * (time.perf_counter() - started))
                self.acked.add(key)
            return

    def _poster(self, k: int, barrier: threading.Barrier) -> None:
        with httpx.Client(timeout=30) as client:
            for i, exp in enumerate(self.experiences):
                x, y = exp.x_train.numpy(), exp.y_train.numpy()
                for b in range(k, (len(y) + 9) // 10, self.clients):
                    s = slice(10 * b, 10 * b + 10)
                    self._post(client, "/v1/observe", npz(x[s], y[s]), f"e{i}-b{b}")
                barrier.wait()
                if k == 0:
                    body = io.BytesIO()
                    np.savez(body, x_test=exp.x_test.numpy(), y_test=exp.y_test.numpy())
                    self._post(client, "/v1/experiences/end", body.getvalue(), f"end{i}")
                barrier.wait()

    def _predictor(self) -> None:
        x = self.experiences[0].x_test[:1].numpy().tolist()
        with httpx.Client(timeout=30) as client:
            while not self.done.is_set():
                started = time.perf_counter()
                try:
                    r = client.post(self.url() + "/v1/predict", json={"x": x})
                    if r.status_code == 200:
                        self.predict_ms.append(1000 * (time.perf_counter() - started))
                except httpx.TransportError:
                    pass
                time.sleep(max(0.0, 1 / self.predict_rate - (time.perf_counter() - started)))

    def run(self) -> float:
        """Post the whole stream; seconds from the first post to the last answer."""
        barrier = threading.Barrier(self.clients)
        posters = [
            threading.Thread(target=self._poster, args=(k, barrier)) for k in range(self.clients)
        ]
        predictor = threading.Thread(target=self._predictor, daemon=True)
        started = time.perf_counter()
        predictor.start()
        for t in posters:
            t.start()
        for t in posters:
            t.join()
        return time.perf_counter() - started


def wait_learned(url: str, total: int, experiences: int) -> dict:
    with httpx.Client(timeout=30) as client:
        while True:
            s = client.get(url + "/v1/run").json()
            if s["learned"] >= total and len(s["matrix"]) == experiences:
                return s
            time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="the stream posted this many times")
    ap.add_argument("--predict-rate", type=float, default=50.0)
    ap.add_argument("--restarts", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from lifelong.config import RunConfig
    from lifelong.runner import run
    from streams import from_arrays, get_stream

    experiences = list(get_stream(STREAM, seed=0)) * args.rounds
    total = sum(e.n_train for e in experiences)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    stream = from_arrays(
        [(e.x_train, e.y_train) for e in experiences],
        [(e.x_test, e.y_test) for e in experiences],
        n_classes=10,
        name=f"{STREAM}x{args.rounds}",
    )
    cfg = RunConfig(seed=0, progress=False, tensorboard=False, shuffle=False)
    result = run(cfg, work / "reference", stream=stream, echo=lambda m: None)
    reference = result.summary["samples_per_second"]

    server = Server(work / "served")
    load = Load(lambda: server.url, experiences, args.clients, args.predict_rate)
    wall = load.run()
    wait_learned(server.url, total, len(experiences))
    load.done.set()
    server.stop()
    served = json.loads((work / "served" / "summary.json").read_text())["summary"]

    # phase 3: kill -9 and restart during the same load
    holder = {"server": Server(work / "killed")}
    chaos = Load(lambda: holder["server"].url, experiences, args.clients, args.predict_rate)
    poster = threading.Thread(target=chaos.run)
    poster.start()
    kills, batches = 0, sum((e.n_train + 9) // 10 for e in experiences)
    while kills < args.restarts and poster.is_alive():
        # kill k once a share k / (restarts + 1) of the batches is acknowledged
        if len(chaos.acked) >= batches * (kills + 1) / (args.restarts + 1):
            holder["server"].kill()
            kills += 1
            holder["server"] = Server(work / "killed")
        time.sleep(0.01)
    poster.join()
    wait_learned(holder["server"].url, total, len(experiences))
    chaos.done.set()
    holder["server"].stop()
    with sqlite3.connect(work / "killed" / "ingest.sqlite") as db:
        logged = {k for (k,) in db.execute("SELECT key FROM records")}
    killed = json.loads((work / "killed" / "summary.json").read_text())["summary"]
    lost = len(chaos.acked - logged)

    figures = {
        "stream": f"{STREAM} x{args.rounds}",
        "clients": args.clients,
        "run_examples_per_s": reference,
        "serve_examples_per_s": served["samples_per_second"],
        "serve_wall_examples_per_s": total / wall,
        "ratio": served["samples_per_second"] / reference,
        "observe_p50_ms": percentile(load.observe_ms, 50),
        "observe_p99_ms": percentile(load.observe_ms, 99),
        "observe_429": load.refused,
        "predict_p50_ms": percentile(load.predict_ms, 50),
        "predict_p99_ms": percentile(load.predict_ms, 99),
        "predictions": len(load.predict_ms),
        "kills": kills,
        "acknowledged_batches": len(chaos.acked),
        "acknowledged_lost": lost,
        "examples_learned_after_kills": killed["examples"],
        "examples_in_stream": total,
        "accuracy_served": served["average_accuracy"],
        "accuracy_after_kills": killed["average_accuracy"],
    }
    out = ROOT / "bench" / "results" / "serve.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print("| measure | value | goal |\n|---|---|---|")
    rows = [
        ("`lifelong run` learning throughput", f"{reference:,.0f} examples/s", ""),
        (
            f"`lifelong serve` learning throughput ({args.clients} clients + predict 50/s)",
            f"{figures['serve_examples_per_s']:,.0f} examples/s ({figures['ratio']:.2f}x run)",
            ">= 0.80x",
        ),
        ("served, wall clock (first post to last answer)", f"{total / wall:,.0f} examples/s", ""),
        (
            "observe latency p50 / p99 (200s)",
            f"{figures['observe_p50_ms']:.1f} / {figures['observe_p99_ms']:.1f} ms",
            "p99 <= 20 ms",
        ),
        ("observe answered 429 (back-pressure)", str(load.refused), ""),
        (
            f"predict latency p50 / p99 ({len(load.predict_ms)} requests)",
            f"{figures['predict_p50_ms']:.1f} / {figures['predict_p99_ms']:.1f} ms",
            "p99 <= 20 ms",
        ),
        (
            f"kill -9 restarts during load: acknowledged batches lost ({kills} kills)",
            f"{lost} of {len(chaos.acked)}",
            "0",
        ),
        ("examples learned after the kills (stream has)", f"{killed['examples']} ({total})", "="),
        (
            "average accuracy: served / after kills",
            f"{served['average_accuracy']:.4f} / {killed['average_accuracy']:.4f}",
            "",
        ),
    ]
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"(stream: {STREAM} posted {args.rounds} times, {len(experiences)} experiences; "
        f"figures in {out.relative_to(ROOT)}; machine: {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
