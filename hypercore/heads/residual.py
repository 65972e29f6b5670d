r"""Residual heads: generated weights as learned base weights plus a condition-dependent part.

:math:`\theta(c) = \theta_0 + h(c)`: the base :math:`\theta_0` is an ordinary
learned parameter (initialised to the target's own standard initialisation)
and the wrapped head only generates the deviation from it. This is the second
half of Ortiz, Guttag and Dalca's magnitude-invariant parametrisation (ICLR
2024): whatever the input's magnitude, the generated weights stay near a
sensible base, and the head learns only what depends on the condition.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hypercore.config import build
from hypercore.errors import HypercoreError, HypercoreTypeError
from hypercore.heads.base import Head
from hypercore.heads.structured import ModulationHead
from hypercore.target.spec import WeightSpec

#: Standard deviation of the condition-dependent part at init, relative to the
#: standard deviation the init method gives a whole generated tensor.
RESIDUAL_SCALE = 0.1


class ResidualHead(Head):
    """Wrap a head so that it generates a deviation from learned base weights.

    Args:
        in_features: body feature size.
        spec: the target's weight spec.
        inner: the wrapped head, or its configuration (``{"type": ..., ...}``).

    Shapes:
        as the inner head: ``(N, in_features) -> {name: (N, *shape)}``.
    """

    def __init__(self, in_features: int, spec: WeightSpec, inner: Head | dict[str, Any]):
        super().__init__(in_features, spec)
        if isinstance(inner, dict):
            inner = build(inner, in_features=in_features, spec=spec)
        if not isinstance(inner, Head):
            raise HypercoreTypeError(
                f"inner: expected a hypercore Head or its config dict, got {type(inner).__name__}"
            )
        if isinstance(inner, ModulationHead):
            raise HypercoreError(
                f"ResidualHead wraps heads that generate whole tensors; {type(inner).__name__} "
                "already modulates learned base weights"
            )
        self.inner = inner
        self.base = nn.ParameterList(nn.Parameter(torch.zeros(p.shape)) for p in spec)

    def config(self) -> dict:
        return {"inner": self.inner.describe()}

    def generate(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        deviation = self.inner(h)
        return {
            p.name: base + deviation[p.name] for p, base in zip(self.spec, self.base, strict=True)
        }

    @torch.no_grad()
    def initialize_(self, method, gain, template, features):
        for p, base in zip(self.spec, self.base, strict=True):
            base.copy_(template[p.name])
        zeros = {name: torch.zeros_like(t) for name, t in template.items()}
        # the inner head starts small (RESIDUAL_SCALE of the method's scale) around zero
        self.inner.initialize_(method, gain * RESIDUAL_SCALE, zeros, features)
