"""Task streams: what a continual learner learns, in order. Knows data, nothing of models."""

from streams.arrays import from_arrays
from streams.avalanche_adapter import from_avalanche, to_avalanche
from streams.core import Experience, Stream
from streams.errors import StreamError
from streams.registry import get_stream, stream_names
from streams.scenarios import blurry, permuted, rotated, split
from streams.sources import Dataset, load_source

__all__ = [
    "Dataset",
    "Experience",
    "Stream",
    "StreamError",
    "blurry",
    "from_arrays",
    "from_avalanche",
    "get_stream",
    "load_source",
    "permuted",
    "rotated",
    "split",
    "stream_names",
    "to_avalanche",
]
