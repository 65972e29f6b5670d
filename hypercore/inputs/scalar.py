r"""Continuous conditions (e.g. a hyperparameter), with a magnitude-invariant encoding.

A hypernetwork conditioned on a scalar :math:`\gamma \in [\text{low}, \text{high}]`
usually reads it directly. Ortiz, Guttag and Dalca (ICLR 2024) show that this
makes the *magnitude* of the generated weights track the magnitude of the
input (a zero input can only produce the head's biases), which destabilises
training. Their magnitude-invariant encoding maps :math:`u = (\gamma -
\text{low})/(\text{high} - \text{low}) \in [0, 1]` onto the unit circle,

.. math::

    e(u) = \big[\cos(\tfrac{\pi}{2} u),\ \sin(\tfrac{\pi}{2} u)\big],
    \qquad \lVert e \rVert = 1,

so every condition has the same norm. (The other half of their recipe,
residual base weights, is :class:`~hypercore.heads.ResidualHead`.)
"""

from __future__ import annotations

import math

import torch

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_choice,
    check_finite,
    check_float,
    check_in_range,
    check_positive_int,
    shape_str,
    type_name,
)
from hypercore.inputs.base import Conditioner

ENCODINGS = ("cos_sin", "identity")


class ScalarInput(Conditioner):
    """One or more continuous conditions in ``[low, high]``, encoded.

    Args:
        num_scalars: how many scalars form one condition.
        low, high: their range (mapped to ``[0, 1]``); finite, ``low < high``.
        encoding: ``"cos_sin"`` (magnitude invariant, default) or ``"identity"``
            (the rescaled value itself).

    Call with:
        a float or 0-d tensor (one scalar, shared weights), a ``(num_scalars,)``
        tensor (shared), ``(B,)`` when ``num_scalars == 1`` or ``(B,
        num_scalars)`` (one condition per sample), ``B >= 1``. NaN and
        infinite values raise :class:`~hypercore.HypercoreError`, and so do
        values outside ``[low, high]`` with the ``"cos_sin"`` encoding, which
        would wrap around the circle there (5.0 on ``[0, 1]`` would give the
        weights of 1.0). The ``"identity"`` encoding extrapolates linearly.
    """

    _anchor: torch.Tensor  # a buffer: dtype and device of the conditioner

    def __init__(
        self, num_scalars: int = 1, low: float = 0.0, high: float = 1.0, encoding: str = "cos_sin"
    ):
        super().__init__()
        encoding = check_choice("encoding", encoding, ENCODINGS)
        num_scalars = check_positive_int("num_scalars", num_scalars)
        low, high = check_float("low", low), check_float("high", high)
        if not high > low:
            raise HypercoreError(f"ScalarInput: need high > low, got low={low}, high={high}")
        self.num_scalars, self.low, self.high, self.encoding = num_scalars, low, high, encoding
        self.out_features = num_scalars * (2 if encoding == "cos_sin" else 1)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def config(self) -> dict:
        return {
            "num_scalars": self.num_scalars,
            "low": self.low,
            "high": self.high,
            "encoding": self.encoding,
        }

    def forward(self, value: float | torch.Tensor) -> torch.Tensor:
        a = self._anchor
        if isinstance(value, bool | str | bytes) or value is None:
            raise HypercoreTypeError(
                f"condition: expected a float, a sequence of floats or a tensor, "
                f"got {type_name(value)} {value!r}"
            )
        v = torch.as_tensor(value, dtype=a.dtype, device=a.device)
        k = self.num_scalars
        if v.dim() == 0 and k == 1:
            v = v.reshape(1)  # shared
        elif v.dim() == 1 and k == 1:
            v = v.unsqueeze(1)  # (B, 1): per sample
        elif not (v.dim() in (1, 2) and v.shape[-1] == k):
            raise ShapeError(
                f"condition: expected shape (), (B,) or (B, 1) for one scalar, or "
                f"({k},) / (B, {k}); got {shape_str(v.shape)}"
            )
        if v.numel() == 0:
            raise ShapeError(f"condition: expected at least one value, got {shape_str(v.shape)}")
        if self.encoding == "cos_sin":
            check_in_range("condition", v, self.low, self.high)
        else:
            check_finite("condition", v)
        u = (v - self.low) / (self.high - self.low)
        if self.encoding == "identity":
            return u
        angle = 0.5 * math.pi * u
        return torch.cat([angle.cos(), angle.sin()], dim=-1)

    def example_condition(self, n: int) -> torch.Tensor:
        a = self._anchor
        u = torch.rand(n, self.num_scalars, device=a.device, dtype=a.dtype)
        return self.low + (self.high - self.low) * u
