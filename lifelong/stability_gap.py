"""The stability gap (De Lange et al., ICLR 2023): right after a new experience starts, the
earlier ones' accuracy drops, then partly recovers. Evaluations only at experience ends
hide it; a run with ``--eval-every`` has the points between, and this module aligns them at
each boundary: for every boundary, the earlier experiences' accuracy at each evaluation of
the next experience's training, against theirs at the boundary.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def around_boundaries(events: list[dict]) -> list[dict]:
    """For each boundary followed by evaluations inside the next experience: ``boundary``
    (the experience that starts), ``position`` (the stream position), and ``points``:
    (examples since the boundary, mean change of the earlier experiences' accuracy, the
    worst single change)."""
    evaluations = [e for e in events if e["type"] in ("curve", "experience_end")]
    ends = {e["experience"]: e for e in evaluations if e["type"] == "experience_end"}
    gaps = []
    for i, start in sorted(ends.items()):
        earlier = [j for j, a in enumerate(start["accuracies"][: i + 1]) if a is not None]
        base = {j: start["accuracies"][j] for j in earlier}
        points, between = [(0, 0.0, 0.0)], False
        for e in evaluations:
            if e["experience"] != i + 1 or not earlier:
                continue
            between |= e["type"] == "curve"
            change = [e["accuracies"][j] - base[j] for j in earlier]
            points.append(
                (e["position"] - start["position"], sum(change) / len(change), min(change))
            )
        if between:  # an evaluation inside the experience, not only at its end
            gaps.append({"boundary": i + 1, "position": start["position"], "points": points})
    return gaps


def deepest_drop(gaps: list[dict]) -> float | None:
    """The largest fall of an earlier experience's accuracy after any boundary (a positive
    number; None without evaluations between boundaries)."""
    worst = [p[2] for g in gaps for p in g["points"]]
    return -min(worst) if worst else None


def plot(gaps: list[dict], title: str, path: Path) -> Path:
    """One line per boundary: the earlier experiences' mean change (solid) and the worst
    single one (dotted), against examples since the boundary."""
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    cmap = plt.get_cmap("viridis")
    for k, g in enumerate(gaps):
        colour = cmap(k / max(len(gaps) - 1, 1))
        xs = [p[0] for p in g["points"]]
        ax.plot(
            xs,
            [p[1] for p in g["points"]],
            color=colour,
            marker="o",
            ms=3,
            label=f"experience {g['boundary']} starts",
        )
        ax.plot(xs, [p[2] for p in g["points"]], color=colour, ls=":", lw=1)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("training examples since the boundary")
    ax.set_ylabel("change of earlier experiences' accuracy")
    ax.set_title(f"Stability gap: {title} (solid: mean, dotted: worst)")
    if gaps:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
