"""``lifelong compare``: our agent against Avalanche 0.6's strategies on the very same tensors,
under the same protocol (a stream that waits, one that does not, labels that come late).

``runs`` runs every (method, seed) and merges results; ``strategies`` builds Avalanche's
strategies with the shared settings; ``baseline_model`` is the network they train and how
their accuracy is read; ``schedule`` turns our runner's real-time and late-label rule into
the batches their loop trains on, which ``real_time`` hands to the jobs; ``online`` measures
their online accuracy inside their loop; ``outputs`` writes the tables, CSV/JSON and plots.
"""

from lifelong.compare.baseline_model import baseline_model
from lifelong.compare.runs import (
    BUDGET_PREFIX,
    METHODS,
    OURS,
    REAL_TIME,
    compare,
    is_ours,
    is_user_method,
    ours_config,
    ours_overrides,
    parse_seeds,
    rerun_ours,
    run_baseline,
    run_ours,
)

__all__ = [
    "BUDGET_PREFIX",
    "METHODS",
    "OURS",
    "REAL_TIME",
    "baseline_model",
    "compare",
    "is_ours",
    "is_user_method",
    "ours_config",
    "ours_overrides",
    "parse_seeds",
    "rerun_ours",
    "run_baseline",
    "run_ours",
]
