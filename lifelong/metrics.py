"""Continual-learning metrics from the accuracy matrix, each named after its definition.

``R[i][j]`` is the accuracy on experience j's test set after training through experience i.
A matrix may be partial: t rows (experiences trained so far) by T columns (all test sets);
every metric then speaks of the t experiences seen. Where papers and libraries disagree, the
name says whose definition it is:

- ``forgetting_chaudhry2018``: mean over j < t-1 of max_{l < t-1} R[l][j] - R[t-1][j]
- ``forgetting_avalanche``: mean over j < t-1 of R[j][j] - R[t-1][j] (Avalanche's
  "forgetting"; its "BWT" is the negative, which equals ``bwt_lopezpaz2017``)
- ``bwt_lopezpaz2017``: mean over j < t-1 of R[t-1][j] - R[j][j]
- ``fwt_lopezpaz2017``: mean over 0 < j < t of R[j-1][j] - b[j], b the untrained accuracies

Means are over the known entries: an experience given without a test set (``lifelong
serve`` allows it) has a NaN column.
"""

from __future__ import annotations

import math

import numpy as np


def _checked(R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] == 0:
        raise ValueError(f"accuracy matrix must be 2-D with at least one row, got {R.shape}")
    if R.shape[0] > R.shape[1]:
        raise ValueError(f"accuracy matrix has {R.shape[0]} rows but only {R.shape[1]} columns")
    return R


def matrix_from_rows(rows: list[list[float]]) -> np.ndarray:
    """The accuracy matrix from its rows as recorded: row i holds the test sets known after
    experience i (a followed folder learns of later ones later); the rest is NaN."""
    width = max((len(r) for r in rows), default=0)
    R = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        R[i, : len(r)] = r
    return R


def average_accuracy(R) -> float:
    R = _checked(R)
    t = R.shape[0]
    return _mean(R[t - 1, :t])


def learning_accuracy(R) -> float:
    R = _checked(R)
    t = R.shape[0]
    return _mean([R[j, j] for j in range(t)])


def forgetting_chaudhry2018(R) -> float:
    R = _checked(R)
    t = R.shape[0]
    if t < 2:
        return 0.0
    # nanmax: in a followed folder a test set is unknown (NaN) before its experience arrives
    return _mean([_nanmax(R[: t - 1, j]) - R[t - 1, j] for j in range(t - 1)])


def bwt_lopezpaz2017(R) -> float:
    R = _checked(R)
    t = R.shape[0]
    if t < 2:
        return 0.0
    return _mean([R[t - 1, j] - R[j, j] for j in range(t - 1)])


def forgetting_avalanche(R) -> float:
    return -bwt_lopezpaz2017(R)


def fwt_lopezpaz2017(R, untrained) -> float | None:
    R = _checked(R)
    t = R.shape[0]
    if untrained is None or t < 2 or R.shape[1] < 2:
        return None
    b = np.asarray(untrained, dtype=float)
    if len(b) < t:  # a followed folder: later test sets were unknown before training
        return None
    gains = [R[j - 1, j] - b[j] for j in range(1, t)]
    return None if np.isnan(gains).any() else float(np.mean(gains))


def _mean(values) -> float:
    """Mean over the known entries: an experience served without a test set is NaN."""
    values = np.asarray(values, dtype=float)
    known = values[~np.isnan(values)]
    return float(known.mean()) if len(known) else math.nan


def _nanmax(values: np.ndarray) -> float:
    known = values[~np.isnan(values)]
    return float(known.max()) if len(known) else math.nan


def forgetting_curves(R) -> dict[int, list[float]]:
    """Experience j's accuracy along the stream: R[i][j] for every trained i."""
    R = _checked(R)
    return {j: R[:, j].tolist() for j in range(R.shape[1])}


def lowest_since_learned(lowest: list, current: int, row: list[float]) -> list:
    """``lowest`` (each experience's least accuracy at any evaluation after it was learned)
    with one more evaluation, made while experience ``current`` is learned or just after:
    experiences before ``current`` count (De Lange et al., ICLR 2023: the stability gap
    shows right after a boundary, which evaluating only at experience ends hides)."""
    lowest = list(lowest) + [None] * max(0, current - len(lowest))
    for j in range(min(current, len(row))):
        if not math.isnan(row[j]):
            lowest[j] = row[j] if lowest[j] is None else min(lowest[j], row[j])
    return lowest


def min_acc(lowest: list, trained: int) -> float:
    """avg-min-ACC: the mean of each earlier experience's lowest accuracy since learned."""
    known = [v for v in lowest[: trained - 1] if v is not None]
    return float(np.mean(known)) if known else math.nan


def wc_acc(R, lowest: list) -> float:
    """WC-ACC: (1/k) the last experience's accuracy + (1 - 1/k) min-ACC, k experiences."""
    R = _checked(R)
    k = R.shape[0]
    last = R[k - 1, k - 1] if R.shape[1] >= k else math.nan
    return float(last) if k == 1 else float(last / k + (1 - 1 / k) * min_acc(lowest, k))


def summary(R, untrained=None) -> dict:
    """Every metric above, JSON-able; min-ACC and WC-ACC from the experience ends alone (a
    run with ``--eval-every`` refines them with its curve points)."""
    lowest: list = []
    for i, row in enumerate(_checked(R)):
        lowest = lowest_since_learned(lowest, i, list(row))
    return {
        "experiences_trained": int(_checked(R).shape[0]),
        "min_acc": min_acc(lowest, len(R)),
        "wc_acc": wc_acc(R, lowest),
        "average_accuracy": average_accuracy(R),
        "learning_accuracy": learning_accuracy(R),
        "forgetting_chaudhry2018": forgetting_chaudhry2018(R),
        "forgetting_avalanche": forgetting_avalanche(R),
        "bwt_lopezpaz2017": bwt_lopezpaz2017(R),
        "fwt_lopezpaz2017": fwt_lopezpaz2017(R, untrained),
    }


def json_ready(v):
    """NaN (a test set not known yet) as JSON null, so the file is strict JSON; floats
    rounded to 6 decimals, what the measurements carry (no 0.9209999918937684)."""
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    if isinstance(v, dict):
        return {k: json_ready(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_ready(x) for x in v]
    return v


def mean_std(mean: float, std: float, seeds: int, fmt: str = ".3f") -> str:
    """A table cell: ``mean ± std`` over seeds; one seed has no spread to show. A signed
    mean (``+.3f``) keeps its sign, the spread never takes one."""
    cell = f"{mean:{fmt}}"
    return cell if seeds <= 1 else f"{cell} ± {std:{fmt.replace('+', '')}}"
