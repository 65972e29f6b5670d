"""Hypernetwork heads (output strategies): once, multiple, component-wise, chunk-wise,
and structured modulations of base weights (scaling, low-rank)."""

from hypercore.heads.base import Head, RowwiseHead
from hypercore.heads.chunk import ChunkWiseHead
from hypercore.heads.component import ComponentWiseHead
from hypercore.heads.multiple import MultiHead
from hypercore.heads.once import OnceHead
from hypercore.heads.shared import EmbeddingGenerator, SharedGeneratorHead
from hypercore.heads.structured import LowRankHead, ModulationHead, ScalingHead

__all__ = [
    "ChunkWiseHead",
    "ComponentWiseHead",
    "EmbeddingGenerator",
    "Head",
    "LowRankHead",
    "ModulationHead",
    "MultiHead",
    "OnceHead",
    "RowwiseHead",
    "ScalingHead",
    "SharedGeneratorHead",
]
