"""What a hypernetwork must generate: the names, shapes and roles of target tensors.

A :class:`WeightSpec` is the contract between a hypernetwork's head (which
produces numbers) and a :class:`~hypercore.Target` (which consumes named
tensors). It knows, for every generated tensor, its shape, its place in one flat
vector, and the fan-in / fan-out of the layer it belongs to (what principled
initialisation needs).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from hypercore.errors import ShapeError, WeightsMismatchError, shape_str


@dataclass(frozen=True)
class ParamInfo:
    """One generated tensor of the target.

    Attributes:
        name: the parameter's name in the target module, e.g. ``"0.weight"``.
        shape: its shape, e.g. ``(64, 64)``.
        role: ``"weight"`` (a layer's weight matrix or kernel, 2-D or more),
            ``"bias"`` (the 1-D bias of a layer with a weight) or ``"other"``
            (e.g. a LayerNorm gain).
        module_type: class name of the module owning it, e.g. ``"Linear"``.
        fan_in: inputs per output unit of the owning layer (``in_features``,
            or ``in_channels/groups * kh * kw``); 0 when unknown.
        fan_out: outputs per input unit (``out_features`` or
            ``out_channels * kh * kw``); 0 when unknown.
        layer_has_bias: True when the owning layer's bias is generated too
            (initialisation then splits the output variance between the two).
        offset: where the tensor starts in the flat vector of all generated
            numbers.
    """

    name: str
    shape: tuple[int, ...]
    role: str
    module_type: str
    fan_in: int
    fan_out: int
    layer_has_bias: bool
    offset: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class WeightSpec:
    """An ordered set of :class:`ParamInfo`, laid out in one flat vector.

    ``spec.total`` numbers describe one complete set of target weights; a batch
    of ``N`` sets is a ``(N, total)`` matrix.
    """

    def __init__(self, params: list[ParamInfo]):
        if not params:
            raise WeightsMismatchError("a WeightSpec needs at least one tensor")
        self.params: tuple[ParamInfo, ...] = tuple(params)
        self.by_name: dict[str, ParamInfo] = {p.name: p for p in params}
        self.total: int = sum(p.numel for p in params)
        self._sizes = [p.numel for p in params]

    def __iter__(self) -> Iterator[ParamInfo]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {p.name: p.shape for p in self.params}

    def __repr__(self) -> str:
        rows = ", ".join(f"{p.name}{shape_str(p.shape)}" for p in self.params)
        return f"WeightSpec(total={self.total}: {rows})"

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``(N, total)`` numbers into ``{name: (N, *shape)}`` views."""
        if flat.dim() != 2 or flat.shape[1] != self.total:
            raise ShapeError(
                f"flat weights: expected shape (N, {self.total}), got {shape_str(flat.shape)}"
            )
        n = flat.shape[0]
        pieces = flat.split(self._sizes, dim=1)
        return {
            p.name: piece.reshape(n, *p.shape) for p, piece in zip(self.params, pieces, strict=True)
        }

    def flatten(self, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`unflatten`: ``{name: (N, *shape)}`` -> ``(N, total)``."""
        missing = [n for n in self.names if n not in weights]
        if missing:
            raise WeightsMismatchError(f"weights: missing {missing}")
        first = weights[self.params[0].name]
        n = first.shape[0]
        return torch.cat([weights[p.name].reshape(n, p.numel) for p in self.params], dim=1)
