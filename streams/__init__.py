"""Task streams: what a continual learner learns, in order. Knows data, nothing of models.

Names are imported on first use (PEP 562), so ``streams.names`` and ``streams.errors`` cost
no torch import: the command line starts fast.
"""

from importlib import import_module

_WHERE = {
    "from_arrays": "streams.arrays",
    "from_avalanche": "streams.avalanche_adapter",
    "to_avalanche": "streams.avalanche_adapter",
    "Experience": "streams.core",
    "Stream": "streams.core",
    "StreamError": "streams.errors",
    "get_stream": "streams.registry",
    "stream_names": "streams.names",
    "blurry": "streams.scenarios",
    "permuted": "streams.scenarios",
    "rotated": "streams.scenarios",
    "split": "streams.scenarios",
    "Dataset": "streams.sources",
    "load_source": "streams.sources",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'streams' has no attribute {name!r}")
