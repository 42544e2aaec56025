"""``/metrics``: the service in Prometheus's text format."""

from __future__ import annotations

from lifelong.serve.service import Service


def prometheus_text(service: Service) -> str:
    """The service's counters and gauges, ``lifelong_`` before each name."""
    c, view, late = service.counters, service.view, service.log.late
    rows = [
        ("examples_received_total", "counter", "examples acknowledged", service.log.received),
        ("examples_learned_total", "counter", "examples learned", service.learned),
        ("queue_examples", "gauge", "acknowledged, not learned yet", service.queue_depth()),
        ("steps_total", "counter", "training steps", view.get("steps", 0)),
        ("experiences_ended_total", "counter", "experience ends logged", service.log.experience),
        (
            "step_seconds",
            "gauge",
            "mean seconds between training steps (last 200)",
            view.get("step_seconds") or 0.0,
        ),
        ("observe_refused_total", "counter", "observe requests answered 429", c.refused),
        (
            "memories",
            "gauge",
            "examples in the replay memory",
            view.get("memory", {}).get("size", 0),
        ),
        (
            "online_accuracy",
            "gauge",
            "accuracy on each batch before it is learned",
            _or_nan(view.get("online_accuracy")),
        ),
        (
            "training_loss",
            "gauge",
            "training loss, smoothed over ~50 steps",
            _or_nan(view.get("loss")),
        ),
        (
            "awaiting_label_examples",
            "gauge",
            "examples sent without labels whose labels have not come",
            late.awaiting_examples,
        ),
        (
            "arrival_accuracy",
            "gauge",
            "accuracy of the answers given on arrival to batches labelled later",
            _or_nan(late.arrival_accuracy),
        ),
    ]
    timed = view.get("real_time")
    if timed:  # a stream that does not wait: batches answered while the learner was busy
        rows += [
            (
                "batches_revealed_total",
                "counter",
                "batches taken from the log",
                timed["batches_revealed"],
            ),
            (
                "batches_learned_total",
                "counter",
                "batches the learner was free to learn",
                timed["batches_learned"],
            ),
        ]
    out = []
    for name, kind, text, value in rows:
        out += [f"# HELP lifelong_{name} {text}", f"# TYPE lifelong_{name} {kind}"]
        out.append(f"lifelong_{name} {value}")
    out += [
        "# HELP lifelong_predict_seconds time to answer a predict request",
        "# TYPE lifelong_predict_seconds summary",
        f"lifelong_predict_seconds_sum {c.predict_seconds}",
        f"lifelong_predict_seconds_count {c.predict_requests}",
    ]
    return "\n".join(out) + "\n"


def _or_nan(value: float | None) -> float | str:
    """A gauge's value, or Prometheus's NaN before there is one."""
    return "NaN" if value is None else value
