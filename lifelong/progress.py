"""``Progress``: where a run is, what a checkpoint records beside the agent's state.

Stored as JSON text inside ``state.pt``. It carries enough to resume exactly (experience,
batch, stream position, training time) and to rebuild the event log if it is lost (the
untrained accuracies and every experience end), plus a followed folder's ledger or a served
run's ingest log id, and under the real-time protocol the stream clock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Progress:
    experience: int = 0  # the experience being learned (the next one, between experiences)
    batch: int = 0  # batches of it learned
    position: int = 0  # stream examples learned
    rows: list[list[float]] = field(default_factory=list)  # the accuracy matrix so far
    untrained: list[float] | None = None  # accuracies before any training
    train_seconds: float = 0.0
    done: bool = False  # a named stream learned to its end
    events: int = 0  # lines of metrics.jsonl the checkpoint counts
    ends: list[dict] = field(default_factory=list)  # experience_end events
    files: list[dict] | None = None  # follow mode: the ledger of files taken
    log: dict | None = None  # a served run: the ingest log it learned from ({"id": ...})
    clock: dict | None = None  # the real-time protocol: the stream clock (runner/clock.py)
    pending: list | None = None  # label delay: the batches waiting for their labels
    # each experience's lowest accuracy at any evaluation since it was learned (min-ACC)
    lowest: list[float | None] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for optional in ("files", "log", "clock", "pending"):
            if out[optional] is None:
                del out[optional]
        return out

    @classmethod
    def from_dict(cls, data: dict, log_path: Path | None = None) -> Progress:
        """From a checkpoint, older ones too: those counted the log in bytes, not events."""
        data = dict(data)
        if "events" not in data and log_path is not None:
            kept = log_path.read_bytes() if log_path.exists() else b""
            data["events"] = kept[: data.get("metrics_bytes", 0)].count(b"\n")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def vouched_events(self) -> list[dict]:
        """The events a checkpoint can rebuild: untrained accuracies and experience ends."""
        events = []
        if self.untrained is not None:
            events.append({"type": "untrained", "accuracies": self.untrained})
        return events + list(self.ends)
