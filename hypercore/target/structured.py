r"""Structured weights: a generated weight described by a shared base and a few numbers.

Generating a full weight matrix per sample costs ``out * in`` numbers per
sample and a batched matrix product; generating only a *modulation* of a
shared base matrix :math:`W_0` is far cheaper, and the target can apply it
without ever building the per-sample matrices:

* :class:`RowScaled`: :math:`W_b = \operatorname{diag}(s_b)\, W_0`, one scale per
  output unit (row) or output channel, as in HyperLSTM (Ha et al., 2017).
  A linear layer computes :math:`y_b = s_b \odot (W_0 x_b)`: one shared matrix
  product and an elementwise scaling.
* :class:`LowRank`: :math:`W_b = W_0 + U_b V_b^\top` with rank-``r`` factors
  (as in LoRA, Hu et al., 2022). A linear layer computes
  :math:`y_b = W_0 x_b + U_b (V_b^\top x_b)`: ``r (out + in)`` numbers per sample.

Both hold their factors with a leading batch dimension (per sample) or
without it (shared by the batch). Where a module has no fast path for them,
:meth:`dense` builds the full weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hypercore.errors import ShapeError, check_like, shape_str


class StructuredWeight:
    """Base of structured weights: ``base`` plus factors, shared or per sample."""

    base: torch.Tensor

    def factors(self) -> dict[str, torch.Tensor]:
        """The generated tensors, by name (e.g. ``{"scale": ...}``)."""
        raise NotImplementedError

    def factor_shapes(self, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Expected shared shapes of the factors for a weight of ``shape``."""
        raise NotImplementedError

    def batch(self) -> int | None:
        """``B`` when the factors are per sample, ``None`` when shared."""
        first = next(iter(self.factors().values()))
        expected = next(iter(self.factor_shapes(tuple(self.base.shape)).values()))
        return first.shape[0] if first.dim() == len(expected) + 1 else None

    def dense(self) -> torch.Tensor:
        """The full weight: ``(*shape)`` shared or ``(B, *shape)`` per sample."""
        raise NotImplementedError

    def select(self, index: int | torch.Tensor) -> StructuredWeight:
        """The weight of sample ``index`` (an int drops the batch dimension; a tensor
        of indices gathers samples)."""
        return type(self)(self.base, *(f[index] for f in self.factors().values()))  # type: ignore[call-arg]

    def validate(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> int | None:
        """Check shapes, dtypes and devices against a target tensor; return ``batch()``."""
        if tuple(self.base.shape) != shape:
            raise ShapeError(
                f"{name}.base: expected shape {shape_str(shape)}, got {shape_str(self.base.shape)}"
            )
        check_like(f"{name}.base", self.base, like)
        expected = self.factor_shapes(shape)
        batch = None
        for (factor, value), want in zip(self.factors().items(), expected.values(), strict=True):
            check_like(f"{name}.{factor}", value, like)
            if tuple(value.shape) == want:
                b = None
            elif value.dim() == len(want) + 1 and tuple(value.shape[1:]) == want:
                b = value.shape[0]
            else:
                raise ShapeError(
                    f"{name}.{factor}: expected shape {shape_str(want)} (shared) or "
                    f"(B, {', '.join(map(str, want))}) (per sample), got {shape_str(value.shape)}"
                )
            if factor == next(iter(expected)):
                batch = b
            elif b != batch:
                raise ShapeError(
                    f"{name}: factors disagree on per-sample vs shared "
                    f"({', '.join(f'{k}{shape_str(v.shape)}' for k, v in self.factors().items())})"
                )
        return batch


@dataclass(frozen=True)
class RowScaled(StructuredWeight):
    r"""``W = diag(scale) @ base``: every output unit's (or channel's) weights scaled.

    Attributes:
        base: ``(out, *rest)``, e.g. ``(out, in)`` or ``(out, in/g, kh, kw)``.
        scale: ``(out,)`` shared or ``(B, out)`` per sample.
    """

    base: torch.Tensor
    scale: torch.Tensor

    def factors(self):
        return {"scale": self.scale}

    def factor_shapes(self, shape):
        return {"scale": (shape[0],)}

    def dense(self) -> torch.Tensor:
        lead = self.scale.shape
        return self.scale.reshape(*lead, *([1] * (self.base.dim() - 1))) * self.base


@dataclass(frozen=True)
class LowRank(StructuredWeight):
    r"""``W = base + U V^T`` with ``W`` viewed as ``(out, in_flat)``.

    Attributes:
        base: ``(out, *rest)``; ``in_flat = prod(rest)``.
        u: ``(out, r)`` shared or ``(B, out, r)`` per sample.
        v: ``(in_flat, r)`` shared or ``(B, in_flat, r)`` per sample.
    """

    base: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor

    def factors(self):
        return {"u": self.u, "v": self.v}

    def factor_shapes(self, shape):
        rank = self.u.shape[-1]
        return {"u": (shape[0], rank), "v": (math.prod(shape[1:]), rank)}

    def dense(self) -> torch.Tensor:
        update = self.u @ self.v.transpose(-1, -2)  # (..., out, in_flat)
        return self.base + update.reshape(*update.shape[:-1], *self.base.shape[1:])
