"""``lifelong sweep``: grids of runs (methods x streams x seeds x settings) on Ray.

A sweep file names streams, seeds, methods (our agent with any RunConfig keys, Avalanche
strategies with their own settings) and a grid or random search over keys (``spec``). Each
trial is a run folder made by the same code as ``lifelong run`` (``trial``), so it resumes
from its checkpoints; Ray only schedules trials and gathers their results (``pool``: Ray's
local cluster, started for you, or ``--address`` for a real one). A trial done is a
``result.json`` in its folder, so a sweep started again skips it; ``results`` writes the
table, CSV/JSON and plots. ``lifelong compare`` runs its jobs on the same pool.
"""
