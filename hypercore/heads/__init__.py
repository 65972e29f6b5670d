"""Hypernetwork heads (output strategies): once, multiple, component-wise, chunk-wise."""

from hypercore.heads.base import Head, RowwiseHead
from hypercore.heads.chunk import ChunkWiseHead
from hypercore.heads.component import ComponentWiseHead
from hypercore.heads.multiple import MultiHead
from hypercore.heads.once import OnceHead
from hypercore.heads.shared import EmbeddingGenerator, SharedGeneratorHead

__all__ = [
    "ChunkWiseHead",
    "ComponentWiseHead",
    "EmbeddingGenerator",
    "Head",
    "MultiHead",
    "OnceHead",
    "RowwiseHead",
    "SharedGeneratorHead",
]
