"""Hypernetwork heads (output strategies): once, multiple, component-wise, chunk-wise,
structured modulations of base weights (scaling, low-rank), and Ha et al.'s
kernel tiles for convolutional targets."""

from hypercore.heads.base import Head, RowwiseHead
from hypercore.heads.chunk import ChunkWiseHead
from hypercore.heads.component import ComponentWiseHead
from hypercore.heads.kernel_tiles import KernelTileHead
from hypercore.heads.multiple import MultiHead
from hypercore.heads.once import OnceHead
from hypercore.heads.residual import ResidualHead
from hypercore.heads.shared import EmbeddingGenerator, ScaledOutputHead, SharedGeneratorHead
from hypercore.heads.structured import LowRankHead, ModulationHead, ScalingHead

__all__ = [
    "ChunkWiseHead",
    "ComponentWiseHead",
    "EmbeddingGenerator",
    "Head",
    "KernelTileHead",
    "LowRankHead",
    "ModulationHead",
    "MultiHead",
    "OnceHead",
    "ResidualHead",
    "RowwiseHead",
    "ScaledOutputHead",
    "ScalingHead",
    "SharedGeneratorHead",
]
