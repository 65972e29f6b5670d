"""Heads with one generator shared across pieces of the target, told apart by learned embeddings."""

from __future__ import annotations

import torch
from torch import nn

from hypercore.bodies.mlp import make_activation
from hypercore.errors import check_positive_int
from hypercore.heads.base import Head
from hypercore.init import check_method, element_targets
from hypercore.target.spec import WeightSpec


class EmbeddingGenerator(nn.Module):
    r"""A shared generator :math:`g(h, c_k)` evaluated for every piece embedding :math:`c_k`.

    .. math:: g(h, c_k) = W_2\, \phi(U h + V c_k + b_1) + b_2

    i.e. an MLP on the concatenation :math:`[h, c_k]`, computed without
    materialising the concatenation: :math:`U h` once per condition and
    :math:`V c_k` once per piece, broadcast to ``(N, K, hidden)``. The hidden
    layer matters: without it the pieces would differ only by a constant.

    Shapes:
        ``(N, in_features) -> (N, num_pieces, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        num_pieces: int,
        embedding_dim: int,
        hidden: int,
        out_features: int,
        activation: str = "relu",
    ):
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(num_pieces, embedding_dim))  # (K, E)
        self.from_condition = nn.Linear(in_features, hidden)
        self.from_piece = nn.Linear(embedding_dim, hidden, bias=False)
        self.activation = make_activation(activation)
        self.out = nn.Linear(hidden, out_features)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.from_condition(h).unsqueeze(1) + self.from_piece(self.embeddings)  # (N, K, hidden)
        return self.out(self.activation(a))  # (N, K, out_features)


class ScaledOutputHead(Head):
    r"""A head whose raw output is rescaled per generated number by fixed buffers.

    Generated numbers are :math:`\theta = o + s \odot r(h)`, where :math:`r` is
    the raw generator output and :math:`s, o` are fixed per-number buffers set
    by the init. When one generator output unit serves numbers of different
    target tensors (with different fan-ins), Chang et al.'s per-row variance
    rule cannot be applied to its weights; the fixed scale :math:`s` applies it
    to the output instead, and the offset :math:`o` carries bias-HyperInit's
    standard target init. With init ``"default"``, :math:`s = 1, o = 0`.
    Subclasses implement :meth:`raw`.
    """

    scale: torch.Tensor  # buffers
    offset: torch.Tensor

    def __init__(self, in_features: int, spec: WeightSpec):
        super().__init__(in_features, spec)
        self.register_buffer("scale", torch.ones(spec.total))
        self.register_buffer("offset", torch.zeros(spec.total))

    def raw(self, h: torch.Tensor) -> torch.Tensor:
        """The generator's output as one flat vector per condition, ``(N, total)``."""
        raise NotImplementedError

    def generate(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.spec.unflatten(torch.addcmul(self.offset, self.raw(h), self.scale))

    @torch.no_grad()
    def initialize_(self, method, gain, template, features):
        check_method(method)
        if method == "default":
            self.scale.fill_(1.0)
            self.offset.zero_()
            return
        variance, mean = element_targets(self.spec, method, gain, template)
        raw_sq_mean = float(self.raw(features).pow(2).mean())
        self.scale.copy_((variance / max(raw_sq_mean, 1e-12)).sqrt())
        self.offset.copy_(mean)


class SharedGeneratorHead(ScaledOutputHead):
    """Base of component-wise and chunk-wise heads: an :class:`EmbeddingGenerator`
    evaluated for every piece, with :class:`ScaledOutputHead`'s output scaling."""

    def __init__(
        self,
        in_features: int,
        spec: WeightSpec,
        num_pieces: int,
        piece_size: int,
        embedding_dim: int,
        hidden: int,
        activation: str,
    ):
        super().__init__(in_features, spec)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.hidden = check_positive_int("hidden", hidden)
        self.activation = activation
        self.generator = EmbeddingGenerator(
            in_features, num_pieces, embedding_dim, hidden, piece_size, activation
        )

    def config(self) -> dict:
        return {
            "embedding_dim": self.embedding_dim,
            "hidden": self.hidden,
            "activation": self.activation,
        }
