"""Chunk-wise: one shared generator produces the target in fixed-size chunks."""

from __future__ import annotations

import math

import torch

from hypercore.errors import check_positive_int
from hypercore.heads.shared import SharedGeneratorHead
from hypercore.target.spec import WeightSpec


class ChunkWiseHead(SharedGeneratorHead):
    r"""Cut the flat target vector into chunks of ``chunk_size`` numbers; generate each chunk.

    Chunk :math:`k` is :math:`g(h, c_k)` with a learned chunk embedding
    :math:`c_k`; the chunks are concatenated and the tail cut off at the
    target's size (von Oswald et al., 2020). The head's size is about
    ``K * embedding_dim + hidden * (in_features + embedding_dim + chunk_size)``
    for ``K = ceil(total / chunk_size)`` chunks, which can be far below the
    target's size: the compressive regime.

    Args:
        in_features: body feature size.
        spec: the target's weight spec.
        chunk_size: numbers per chunk.
        embedding_dim: size of each chunk embedding.
        hidden: the shared generator's hidden width.
        activation: the generator's activation.

    Shapes:
        ``(N, in_features) -> {name: (N, *shape)}``.
    """

    def __init__(
        self,
        in_features: int,
        spec: WeightSpec,
        chunk_size: int = 256,
        embedding_dim: int = 16,
        hidden: int = 64,
        activation: str = "relu",
    ):
        chunk_size = check_positive_int("chunk_size", chunk_size)
        num_chunks = math.ceil(spec.total / chunk_size)
        super().__init__(
            in_features,
            spec,
            num_pieces=num_chunks,
            piece_size=chunk_size,
            embedding_dim=embedding_dim,
            hidden=hidden,
            activation=activation,
        )
        self.chunk_size, self.num_chunks = chunk_size, num_chunks

    def config(self) -> dict:
        return {"chunk_size": self.chunk_size, **super().config()}

    def raw(self, h: torch.Tensor) -> torch.Tensor:
        out = self.generator(h)  # (N, K, chunk_size)
        return out.reshape(h.shape[0], -1)[:, : self.spec.total]
