"""What a head is: the output strategy that turns features into target weights."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from hypercore.config import Configurable
from hypercore.errors import HypercoreTypeError, check_features, check_positive_int
from hypercore.init import check_method, element_targets, init_rows_
from hypercore.target.spec import WeightSpec


class Head(Configurable, nn.Module):
    """Maps body features ``(N, in_features)`` to ``{name: (N, *shape)}`` for a :class:`WeightSpec`.

    Subclasses implement :meth:`generate` and :meth:`initialize_`.
    """

    def __init__(self, in_features: int, spec: WeightSpec):
        super().__init__()
        if not isinstance(spec, WeightSpec):
            raise HypercoreTypeError(
                f"spec: expected a WeightSpec (target.spec), got {type(spec).__name__}"
            )
        self.in_features = check_positive_int("in_features", in_features)
        self.spec = spec

    @classmethod
    def options(cls) -> list[str] | None:
        """The constructor's keyword options besides ``in_features`` and ``spec`` (what
        :meth:`HyperNetwork.build <hypercore.HyperNetwork.build>` passes on), or
        ``None`` when it takes ``**kwargs``."""
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # no self
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [p.name for p in params if p.kind in named and p.name not in ("in_features", "spec")]

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        check_features("head input", h, self.in_features)
        return self.generate(h)

    def generate(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def initialize_(
        self, method: str, gain: float, template: dict[str, torch.Tensor], features: torch.Tensor
    ) -> None:
        """Set the head's parameters for init ``method`` (see :mod:`hypercore.init`).

        Args:
            method: one of :data:`hypercore.init.INIT_METHODS`.
            gain: the target's activation gain (``sqrt(2)`` for ReLU).
            template: the target's own parameter values (for bias-HyperInit).
            features: body outputs for example conditions, ``(n, in_features)``.
        """
        raise NotImplementedError


class RowwiseHead(Head):
    """A head whose output layers have one row per generated number (once, multiple)."""

    def output_layers(self) -> list[tuple[nn.Linear, slice]]:
        """Each output ``nn.Linear`` with the slice of the flat weight vector it produces."""
        raise NotImplementedError

    @torch.no_grad()
    def initialize_(self, method, gain, template, features):
        check_method(method)
        if method == "default":
            for layer, _ in self.output_layers():
                layer.reset_parameters()
            return
        variance, mean = element_targets(self.spec, method, gain, template)
        q = float(features.pow(2).mean())
        for layer, sl in self.output_layers():
            init_rows_(layer.weight, layer.bias, variance[sl], mean[sl], q)
