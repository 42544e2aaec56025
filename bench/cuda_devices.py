"""Print every CUDA device present as ``cuda:0,cuda:1,...``; where there is none, say so and
exit 1 (``make test-gpu`` and ``make bench-gpu`` need one; ``make test`` is the CPU suite)."""

import sys

import torch

count = torch.cuda.device_count() if torch.cuda.is_available() else 0
if not count:
    sys.exit(
        f"no CUDA device here (torch {torch.__version__}): make test-gpu and make bench-gpu "
        "need one; make test runs the suite on the CPU"
    )
print(",".join(f"cuda:{i}" for i in range(count)))
