"""Hypernetwork heads (output strategies): once, multiple, component-wise, chunk-wise,
structured modulations of base weights (scaling, low-rank), Ha et al.'s
kernel tiles for convolutional targets, and dynamic filters (per-input conv
kernels from a transposed-convolution generator, Jia et al.)."""

from hypercore.heads.base import Head, RowwiseHead
from hypercore.heads.chunk import ChunkWiseHead
from hypercore.heads.component import ComponentWiseHead
from hypercore.heads.dynamic_filters import DynamicFilterHead, dynamic_filter_network
from hypercore.heads.kernel_tiles import KernelTileHead
from hypercore.heads.multiple import MultiHead
from hypercore.heads.once import OnceHead
from hypercore.heads.residual import ResidualHead
from hypercore.heads.shared import EmbeddingGenerator, ScaledOutputHead, SharedGeneratorHead
from hypercore.heads.structured import LowRankHead, ModulationHead, ScalingHead

__all__ = [
    "ChunkWiseHead",
    "ComponentWiseHead",
    "DynamicFilterHead",
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
    "dynamic_filter_network",
]
