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


def one_line_warnings(prefix: str = "lifelong"):
    """At the command line a warning prints like an error: one line, no source line echoed.
    Returns the formatter it replaced, for a caller that runs in a longer-lived process to put
    back (only the format changes: filters and recording, pytest's included, still apply)."""
    import warnings

    def one_line(message, category, filename, lineno, line=None) -> str:
        return f"{prefix}: warning: {message}\n"

    old, warnings.formatwarning = warnings.formatwarning, one_line
    return old


__all__ = [
    "BadBatchError",
    "CheckpointError",
    "ConfigError",
    "DiskFull",
    "RunFolderBusy",
    "one_line_warnings",
]
