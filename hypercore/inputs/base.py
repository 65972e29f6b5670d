"""What a conditioner is: the input side of a hypernetwork."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hypercore.config import Configurable
from hypercore.errors import HypercoreError


class Conditioner(Configurable, nn.Module):
    """Maps a hypernetwork's condition to an embedding.

    A conditioner returns either one embedding ``(E,)``, which yields one weight
    set shared by the whole batch, or ``N`` embeddings ``(N, E)``, which yield
    ``N`` weight sets (per sample when ``N`` is the batch size).

    Attributes:
        out_features: ``E``.
        conditions_on_data: True when the condition is the target's input
            itself (a data-conditioned, per-sample hypernetwork); then
            ``HyperNetwork(x)`` needs no separate condition.
    """

    out_features: int
    conditions_on_data: bool = False

    def distinct(self, condition: Any) -> tuple[Any, torch.Tensor] | None:
        """``(distinct values, inverse indices)`` when weights for ``condition`` are best
        generated once per distinct value and gathered; ``None`` otherwise (default)."""
        return None

    def example_condition(self, n: int) -> Any:
        """A typical condition giving ``n`` embeddings (for data-dependent init)."""
        raise NotImplementedError

    def _anchor_like(self) -> torch.Tensor:
        """A parameter or buffer of this module, for its dtype and device."""
        for p in self.parameters():
            return p
        for b in self.buffers():
            return b
        raise HypercoreError(
            f"{type(self).__name__} holds no tensor to take its dtype and device from; "
            "register one (e.g. a non-persistent buffer) in its constructor"
        )
