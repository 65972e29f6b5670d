r"""Dynamic outputs: one hypernetwork for target networks whose shape varies.

A :class:`CoordinateHyperNetwork` generates every weight of a stack of linear
layers from the weight's *coordinates* rather than from its index in a fixed
output vector, so it can write layers of any width, including widths it never
saw in training. Row :math:`i` of a layer with :math:`R` rows sits at
:math:`u_i = (i + \tfrac12)/R \in (0, 1)`, column :math:`j` of :math:`C`
columns at :math:`v_j = (j + \tfrac12)/C`, and

.. math::

    W_l[i, j] = \frac{a_l}{C}\, g\big(\gamma(u_i), \gamma(v_j), e_l, c\big), \qquad
    b_l[i] = g_b\big(\gamma(u_i), e_l, c\big),

with Fourier features :math:`\gamma(u) = [\sin(2^k \pi u), \cos(2^k \pi u)]_k`,
a learned embedding :math:`e_l` and gain :math:`a_l` per layer, an optional
condition :math:`c`, and small MLPs :math:`g, g_b`. The gains start where a
layer with 64 inputs gets weights of the Kaiming variance :math:`2/64`, and
the biases start at zero. The :math:`1/C` factor is the mean-field
parametrisation: a layer's output :math:`\frac1C \sum_j g(\cdot, v_j)\, h(v_j)`
is an average over its inputs, which converges as the width grows, so a
network written at width 48 behaves like one written at widths 32 or 64. In
the review's terms this is a hypernetwork with *dynamic outputs* (the target's
architecture varies); combined with a per-sample condition it also has
dynamic inputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hypercore.errors import HypercoreError, ShapeError, check_int, check_positive_int, shape_str
from hypercore.target.spec import WeightSpec

#: The fan-in at which the initial gains give generated weights the Kaiming variance.
REFERENCE_FAN_IN = 64


def fourier_features(u: torch.Tensor, frequencies: int) -> torch.Tensor:
    r"""``(n,) -> (n, 2 * frequencies)``: :math:`\sin(2^k \pi u), \cos(2^k \pi u)`."""
    scales = math.pi * 2.0 ** torch.arange(frequencies, device=u.device, dtype=u.dtype)
    angles = u.unsqueeze(-1) * scales  # (n, F)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def coordinates(count: int, like: torch.Tensor) -> torch.Tensor:
    """Centres of ``count`` equal cells of ``(0, 1)``: ``(i + 0.5) / count``."""
    return (torch.arange(count, device=like.device, dtype=like.dtype) + 0.5) / count


class CoordinateHyperNetwork(nn.Module):
    """Write the weights of linear layers of any width from their coordinates.

    Args:
        num_layers: how many linear layers the targets have (their widths may vary).
        frequencies: Fourier frequencies per coordinate.
        hidden: width of the generators ``g`` and ``g_b``.
        layer_dim: size of each layer embedding.
        condition_dim: size of an optional condition vector (0: none).

    Call :meth:`generate` with a target's :class:`~hypercore.target.WeightSpec`
    (its tensors must be the weights and biases of ``num_layers`` linear
    layers, in order).
    """

    def __init__(
        self,
        num_layers: int,
        frequencies: int = 6,
        hidden: int = 64,
        layer_dim: int = 8,
        condition_dim: int = 0,
    ):
        super().__init__()
        for name, value in (("hidden", hidden), ("layer_dim", layer_dim)):
            check_positive_int(name, value)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.frequencies = check_positive_int("frequencies", frequencies)
        self.condition_dim = check_int("condition_dim", condition_dim, minimum=0)
        features = 2 * frequencies
        self.layer_embeddings = nn.Parameter(torch.randn(num_layers, layer_dim))
        self.from_row = nn.Linear(features, hidden)
        self.from_col = nn.Linear(features, hidden, bias=False)
        self.from_layer = nn.Linear(layer_dim, hidden, bias=False)
        self.weight_out = nn.Sequential(
            nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )
        self.bias_in = nn.Linear(features + layer_dim, hidden)
        self.bias_out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, 1))
        self.from_condition = (
            nn.Linear(condition_dim, hidden, bias=False) if condition_dim else None
        )
        last = self.bias_out[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.gains = nn.Parameter(torch.ones(num_layers))
        with torch.no_grad():  # gains: Kaiming variance 2/64 at fan-in 64 (a 32 x 64 probe)
            probe = fourier_features(coordinates(64, self.gains), frequencies)
            for layer in range(num_layers):
                raw = self._raw_weight(probe[::2], probe, layer, None)  # (32, 64)
                self.gains[layer] = math.sqrt(2.0 * REFERENCE_FAN_IN / raw.pow(2).mean())

    def _raw_weight(self, row_f, col_f, layer, shift):
        """``g`` on a grid: ``(R, F), (C, F) -> (..., R, C)``."""
        pre = (
            self.from_row(row_f)[:, None]
            + self.from_col(col_f)[None]
            + self.from_layer(self.layer_embeddings[layer])
        )  # (R, C, hidden)
        if shift is not None:
            pre = pre + (shift if shift.dim() == 1 else shift[:, None, None])
        return self.weight_out(pre).squeeze(-1)

    def _layers(self, spec: WeightSpec) -> list[tuple[str, tuple[int, int], str | None]]:
        weights = [p for p in spec if p.role == "weight"]
        if len(weights) != self.num_layers or any(len(p.shape) != 2 for p in weights):
            raise HypercoreError(
                f"CoordinateHyperNetwork writes {self.num_layers} linear layers; the target "
                f"generates {spec.shapes}"
            )
        out: list[tuple[str, tuple[int, int], str | None]] = []
        for p in weights:
            bias = p.name.rsplit(".", 1)[0] + ".bias"
            out.append((p.name, (p.shape[0], p.shape[1]), bias if bias in spec.by_name else None))
        extra = set(spec.names) - {n for n, _, _ in out} - {b for _, _, b in out if b}
        if extra:
            raise HypercoreError(f"CoordinateHyperNetwork cannot generate {sorted(extra)}")
        return out

    def generate(self, spec: WeightSpec, condition: torch.Tensor | None = None) -> dict:
        """Weights for the target described by ``spec``.

        Args:
            spec: the target's weight spec (any widths).
            condition: ``(condition_dim,)`` for shared weights, ``(B, condition_dim)``
                for per-sample weights, or ``None`` when ``condition_dim == 0``.

        Returns:
            ``{name: (*shape)}`` or, with a batch of conditions, ``{name: (B, *shape)}``.
        """
        shift = self._condition_shift(condition)  # None, (hidden,) or (B, hidden)
        like = self.layer_embeddings
        weights: dict[str, torch.Tensor] = {}
        for layer, (name, (rows, cols), bias) in enumerate(self._layers(spec)):
            row_f = fourier_features(coordinates(rows, like), self.frequencies)  # (R, F)
            col_f = fourier_features(coordinates(cols, like), self.frequencies)  # (C, F)
            e = self.layer_embeddings[layer]
            raw = self._raw_weight(row_f, col_f, layer, shift)  # (..., R, C)
            weights[name] = raw * (self.gains[layer] / cols)
            if bias is not None:
                b_pre = self.bias_in(torch.cat([row_f, e.expand(rows, -1)], dim=1))  # (R, h)
                if shift is not None:
                    b_pre = b_pre + (shift if shift.dim() == 1 else shift[:, None])
                weights[bias] = self.bias_out(b_pre).squeeze(-1)  # (..., R)
        return weights

    def _condition_shift(self, condition: torch.Tensor | None) -> torch.Tensor | None:
        if self.from_condition is None:
            if condition is not None:
                raise HypercoreError(
                    "condition given, but this CoordinateHyperNetwork has condition_dim=0"
                )
            return None
        if condition is None or condition.shape[-1] != self.condition_dim or condition.dim() > 2:
            got = None if condition is None else shape_str(condition.shape)
            raise ShapeError(
                f"condition: expected shape ({self.condition_dim},) or "
                f"(B, {self.condition_dim}), got {got}"
            )
        return self.from_condition(condition)
