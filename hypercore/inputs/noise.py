"""Noise-conditioned input: random codes, so the hypernetwork is a distribution over weights."""

from __future__ import annotations

import torch

from hypercore.errors import HypercoreError
from hypercore.inputs.base import Conditioner


class NoiseSource(Conditioner):
    r"""Gaussian noise :math:`z \sim \mathcal{N}(0, \sigma^2 I_E)` as the condition.

    A noise-conditioned hypernetwork :math:`\theta = h(z)` is an implicit
    distribution over target weights, as in Bayesian hypernetworks (Krueger et
    al., 2017) and HyperGAN (Ratzlaff & Fuxin, 2019): every draw of ``z`` is
    one member of an ensemble.

    Args:
        dim: noise size ``E``.
        std: its standard deviation (default 1).

    Call with:
        ``None`` -> one code ``(E,)`` (one weight set shared by the batch);
        an ``int`` ``n`` -> ``(n, E)`` (``n`` weight sets);
        a tensor ``(n, E)`` -> itself (codes drawn elsewhere, e.g. fixed for
        evaluation). An optional ``generator`` makes draws reproducible.
    """

    def __init__(self, dim: int, std: float = 1.0):
        super().__init__()
        self.out_features = dim
        self.std = std
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def config(self) -> dict:
        return {"dim": self.out_features, "std": self.std}

    def sample(
        self, n: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``n`` codes ``(n, E)``, or one ``(E,)`` when ``n`` is None."""
        shape = (self.out_features,) if n is None else (int(n), self.out_features)
        a = self._anchor
        return torch.randn(*shape, generator=generator, device=a.device, dtype=a.dtype) * self.std

    def forward(
        self, condition: int | torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if condition is None or (isinstance(condition, int) and not isinstance(condition, bool)):
            if condition is not None and condition < 1:
                raise HypercoreError(f"number of noise samples must be >= 1, got {condition}")
            return self.sample(condition, generator)
        if isinstance(condition, torch.Tensor):
            if condition.shape[-1:] != (self.out_features,) or condition.dim() > 2:
                raise HypercoreError(
                    f"noise: expected shape ({self.out_features},) or (n, {self.out_features}), "
                    f"got {tuple(condition.shape)}"
                )
            return condition
        raise TypeError(
            f"condition: expected None, an int or a tensor of codes, got {type(condition).__name__}"
        )

    def example_condition(self, n: int) -> int:
        return n
