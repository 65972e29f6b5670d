"""Generate once: one output layer produces every target weight at once."""

from __future__ import annotations

import torch
from torch import nn

from hypercore.heads.base import RowwiseHead
from hypercore.target.spec import WeightSpec


class OnceHead(RowwiseHead):
    r"""One linear layer :math:`\theta = H h + \beta` for the whole target.

    The simplest output strategy in the review's taxonomy ("generate once"):
    its size is ``in_features * total + total``, so it is larger than the
    target itself.

    Shapes:
        ``(N, in_features) -> {name: (N, *shape)}``.
    """

    def __init__(self, in_features: int, spec: WeightSpec):
        super().__init__(in_features, spec)
        self.linear = nn.Linear(in_features, spec.total)

    def config(self) -> dict:
        return {}

    def output_layers(self):
        return [(self.linear, slice(0, self.spec.total))]

    def generate(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.spec.unflatten(self.linear(h))  # (N, total) -> views
