"""Errors a user can cause or fix: each is one line at the command line (exit 2), never a
traceback. Kept apart from the modules that raise them, so the command line can catch them
without importing torch."""


class ConfigError(ValueError):
    """A configuration that cannot run, or that does not match an existing run folder."""


class BadBatchError(ValueError):
    """An incoming batch the agent refuses: names the experience and the example."""


class CheckpointError(RuntimeError):
    """No checkpoint generation of a run folder can be used; names each and why."""


class DiskFull(RuntimeError):
    """The disk filled up; the last checkpoint is intact and the run resumes from it."""


class RunFolderBusy(ConfigError):
    """Another process is running in this run folder."""


def one_line_warnings(prefix: str = "lifelong") -> None:
    """At the command line a warning prints like an error: one line, no source line echoed
    (the library keeps Python's default for its own users)."""
    import sys
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"{prefix}: warning: {message}", file=file or sys.stderr, flush=True)

    warnings.showwarning = show


__all__ = [
    "BadBatchError",
    "CheckpointError",
    "ConfigError",
    "DiskFull",
    "RunFolderBusy",
    "one_line_warnings",
]
