"""Multiple heads: one output layer per target tensor."""

from __future__ import annotations

import torch
from torch import nn

from hypercore.heads.base import RowwiseHead
from hypercore.target.spec import WeightSpec


class MultiHead(RowwiseHead):
    r"""One linear head per target tensor: :math:`\theta_j = H_j h + \beta_j`.

    The "generate multiple" strategy of the review (e.g. hypnettorch's MLP
    hypernetwork). It has the same parameter count as :class:`OnceHead`; the
    heads can be run, initialised or frozen separately.

    Shapes:
        ``(N, in_features) -> {name: (N, *shape)}``.
    """

    def __init__(self, in_features: int, spec: WeightSpec):
        super().__init__(in_features, spec)
        self.heads = nn.ModuleList(nn.Linear(in_features, p.numel) for p in spec)

    def config(self) -> dict:
        return {}

    def output_layers(self):
        return [
            (head, slice(p.offset, p.offset + p.numel))
            for head, p in zip(self.heads, self.spec, strict=True)
        ]

    def generate(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        n = h.shape[0]
        return {
            p.name: head(h).view(n, *p.shape) for head, p in zip(self.heads, self.spec, strict=True)
        }
