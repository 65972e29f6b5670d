"""Noise-conditioned input: random codes, so the hypernetwork is a distribution over weights."""

from __future__ import annotations

import torch

from hypercore._deprecation import renamed
from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_int,
    check_like,
    check_positive_int,
    shape_str,
)
from hypercore.inputs.base import Conditioner


class NoiseSource(Conditioner):
    r"""Gaussian noise :math:`z \sim \mathcal{N}(0, \sigma^2 I_E)` as the condition.

    A noise-conditioned hypernetwork :math:`\theta = h(z)` is an implicit
    distribution over target weights, as in Bayesian hypernetworks (Krueger et
    al., 2017) and HyperGAN (Ratzlaff & Fuxin, 2019): every draw of ``z`` is
    one member of an ensemble.

    Args:
        embedding_dim: noise size ``E`` (formerly ``dim``).
        std: its standard deviation (default 1; finite and > 0).

    Call with:
        ``None`` -> one code ``(E,)`` (one weight set shared by the batch);
        an ``int`` ``n >= 1`` -> ``(n, E)`` (``n`` weight sets);
        a tensor ``(E,)`` or ``(n, E)`` with ``n >= 1`` -> itself (codes drawn
        elsewhere, e.g. fixed for evaluation; of the source's dtype and
        device). An optional ``generator`` makes draws reproducible.
    """

    _anchor: torch.Tensor  # a buffer: dtype and device of the conditioner

    @renamed(dim="embedding_dim")
    def __init__(self, embedding_dim: int, std: float = 1.0):
        super().__init__()
        self.out_features = check_positive_int("embedding_dim", embedding_dim)
        self.std = check_float("std", std, low=0.0, low_open=True)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def config(self) -> dict:
        return {"embedding_dim": self.out_features, "std": self.std}

    def sample(
        self, n: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``n`` codes ``(n, E)``, or one ``(E,)`` when ``n`` is None."""
        shape = (self.out_features,) if n is None else (check_int("n", n), self.out_features)
        a = self._anchor
        return torch.randn(*shape, generator=generator, device=a.device, dtype=a.dtype) * self.std

    def forward(
        self, condition: int | torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if condition is None or (isinstance(condition, int) and not isinstance(condition, bool)):
            if condition is not None and condition < 1:
                raise HypercoreError(
                    f"condition: expected a number of noise samples >= 1, got {condition}"
                )
            return self.sample(condition, generator)
        if isinstance(condition, torch.Tensor):
            e = self.out_features
            if condition.shape[-1:] != (e,) or condition.dim() > 2 or condition.numel() == 0:
                raise ShapeError(
                    f"condition: expected noise codes of shape ({e},) or (n, {e}) with n >= 1, "
                    f"got {shape_str(condition.shape)}"
                )
            check_like("condition", condition, self._anchor)
            return condition
        raise HypercoreTypeError(
            f"condition: expected None, an int or a tensor of codes, got {type(condition).__name__}"
        )

    def example_condition(self, n: int) -> int:
        return n
