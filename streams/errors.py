"""The one error type streams raise, so callers can catch bad data without catching bugs."""


class StreamError(ValueError):
    """Bad stream input: names the culprit (which array, which experience, which index)."""
