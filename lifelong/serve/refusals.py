"""What the service refuses, and how the HTTP layer answers each: data it cannot learn from
(400), a batch larger than the queue (413), a learner too far behind (429), a full disk
(507). Each names the problem; nothing of a refused request is stored."""

from __future__ import annotations

INT64_MAX = 2**63 - 1  # the log's integer columns (SQLite INTEGER)


def check_task_id(task_id) -> None:
    """A task id is None or an integer the log's column holds (``BadRequest`` otherwise)."""
    if task_id is not None and (isinstance(task_id, bool) or not 0 <= task_id <= INT64_MAX):
        raise BadRequest(f"task_id must be an integer in 0..{INT64_MAX}, got {task_id!r}")


class BadRequest(ValueError):
    """A request whose data cannot be learned from (answered 400, nothing stored)."""


class BatchTooLarge(BadRequest):
    """A batch the queue could never take whole (answered 413: a retry would never succeed)."""


class LogDiskFull(RuntimeError):
    """The ingest log's disk is full (answered 507: nothing stored, retry once freed)."""


class QueueFull(RuntimeError):
    """The learner is too far behind to take more now (answered 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
