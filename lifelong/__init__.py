"""lifelong: an online continual learner, its episodic memory, and forgetting metrics."""

__version__ = "0.1.0"
