"""Component-wise: one shared generator, fed with a learned embedding per target tensor."""

from __future__ import annotations

import torch

from hypercore.heads.shared import SharedGeneratorHead
from hypercore.target.spec import WeightSpec


class ComponentWiseHead(SharedGeneratorHead):
    r"""Generate each target tensor (each layer's weight, each bias) with one shared generator.

    Component :math:`k` gets a learned embedding :math:`c_k`; its weights are
    the first ``numel_k`` outputs of :math:`g(h, c_k)`, whose output size is the
    largest component's size (Ha et al.'s static hypernetwork generates layers
    this way; the review's "component-wise" category).

    Args:
        in_features: body feature size.
        spec: the target's weight spec.
        embedding_dim: size of each component embedding.
        hidden: the shared generator's hidden width.
        activation: the generator's activation.

    Shapes:
        ``(N, in_features) -> {name: (N, *shape)}``.
    """

    def __init__(
        self,
        in_features: int,
        spec: WeightSpec,
        embedding_dim: int = 16,
        hidden: int = 64,
        activation: str = "relu",
    ):
        super().__init__(
            in_features,
            spec,
            num_pieces=len(spec),
            piece_size=max(p.numel for p in spec),
            embedding_dim=embedding_dim,
            hidden=hidden,
            activation=activation,
        )

    def raw(self, h: torch.Tensor) -> torch.Tensor:
        out = self.generator(h)  # (N, K, max numel)
        return torch.cat([out[:, k, : p.numel] for k, p in enumerate(self.spec)], dim=1)
