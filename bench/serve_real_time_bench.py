"""``lifelong serve --real-time`` against a served learner that learns every batch, when
clients send faster than the learner learns.

One client posts each batch of 10 of split-mnist5k at a fixed pace (``--rate`` batches a
second, one request each) to a learner made slow on purpose (``--hidden``, ``--iters``) so
that the pace outruns it; a watcher reads ``/v1/run`` every 0.1 s. For each server: the
largest queue (examples acknowledged, not taken), how long after the last post the learner
had taken everything (its lag at the end), the share of batches learned, online accuracy
over every batch (each answered before any learning of it) and the final average accuracy.
A learner that learns every batch falls behind without bound; the real-time one answers
what arrives while it is busy and stays current.

    python bench/serve_real_time_bench.py [--rate 60] [--hidden 1000] [--iters 5]

Prints a table and writes bench/results/serve_real_time.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import ROOT, STREAM, Server, npz, wait_learned  # noqa: E402


def serve_paced(url: str, experiences, rate: float) -> dict:
    """Post every batch at ``rate`` a second, end each experience; watch the queue."""
    queue: list[int] = []
    done = threading.Event()

    def watch() -> None:
        with httpx.Client(timeout=30) as client:
            while not done.is_set():
                queue.append(client.get(url + "/v1/run").json()["queued_examples"])
                time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.perf_counter()
    sent = 0
    with httpx.Client(timeout=30) as client:
        for i, exp in enumerate(experiences):
            x, y = exp.x_train.numpy(), exp.y_train.numpy()
            for k in range(0, len(y), 10):
                time.sleep(max(0.0, started + sent / rate - time.perf_counter()))
                body = npz(x[k : k + 10], y[k : k + 10])
                r = client.post(
                    url + "/v1/observe",
                    content=body,
                    headers={"content-type": "application/x-npz", "Idempotency-Key": f"{i}-{k}"},
                )
                r.raise_for_status()
                sent += 1
            test = {"x_test": exp.x_test.numpy().tolist(), "y_test": exp.y_test.numpy().tolist()}
            client.post(url + "/v1/experiences/end", json=test).raise_for_status()
    last_post = time.perf_counter()
    total = sum(e.n_train for e in experiences)
    state = wait_learned(url, total, len(experiences))
    caught_up = time.perf_counter()
    done.set()
    watcher.join()
    return {
        "batches_sent": sent,
        "posting_seconds": last_post - started,
        "max_queue_examples": max(queue, default=0),
        "lag_after_last_post_s": caught_up - last_post,
        "learned_share": (state.get("real_time") or {}).get("learned_share", 1.0),
        "online_accuracy": state["online_accuracy"],
        "average_accuracy": state["summary"].get("average_accuracy"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=60.0, help="batches posted a second")
    ap.add_argument("--hidden", type=int, default=1000, help="the learner's width (its speed)")
    ap.add_argument("--iters", type=int, default=5, help="the learner's updates a batch")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from streams import get_stream

    experiences = list(get_stream(STREAM, seed=0))
    work = Path(tempfile.mkdtemp(prefix="serve-rt-bench-"))
    learner = ("--hidden", str(args.hidden), "--iters", str(args.iters))
    rows = {}
    for name, extra in (("learns every batch", ()), ("--real-time", ("--real-time",))):
        server = Server(work / name.strip("-").replace(" ", "-"), learner + extra)
        try:
            rows[name] = serve_paced(server.url, experiences, args.rate)
        finally:
            server.stop()
        print(name, json.dumps(rows[name]), flush=True)

    keys = list(next(iter(rows.values())))
    print(
        f"\n{STREAM}, {args.rate:g} batches/s posted, learner --hidden {args.hidden} "
        f"--iters {args.iters}\n"
    )
    print("| measure | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for k in keys:
        cells = [f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for r in rows.values()]
        print(f"| {k} | " + " | ".join(cells) + " |")
    out = ROOT / "bench" / "results" / "serve_real_time.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
