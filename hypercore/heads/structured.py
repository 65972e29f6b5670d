r"""Structured outputs: modulate learned base weights instead of generating them whole.

A :class:`ModulationHead` keeps a learned base :math:`W_0` for every weight
matrix or kernel of the target (initialised to the target's own standard
initialisation) and generates, per condition, only a few numbers that modulate
it:

* :class:`ScalingHead`: one scale per output unit or channel,
  :math:`W(c) = \operatorname{diag}(s(c))\, W_0` (HyperLSTM's weight scaling,
  Ha et al., 2017; FiLM-like);
* :class:`LowRankHead`: a rank-``r`` update,
  :math:`W(c) = W_0 + U(c) V(c)^\top` (LoRA-style factors, Hu et al., 2022).

Biases and other small tensors are generated whole. The generated weights are
:mod:`structured weights <hypercore.target.structured>`, which the target
applies without building per-sample matrices: per sample, a scaling head
produces ``out`` numbers per layer where a full head produces ``out * in``.

At init, every condition gets the target's standard initialisation
(:math:`s = 1`; :math:`U V^\top` small) plus a small condition-dependent part
(relative standard deviation 0.1); the init method applies to the tensors
generated whole.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hypercore.errors import check_positive_int
from hypercore.heads.base import Head
from hypercore.init import SMALL, check_method, element_targets, init_rows_
from hypercore.target.spec import ParamInfo, WeightSpec
from hypercore.target.structured import LowRank, RowScaled, StructuredWeight


class ModulationHead(Head):
    """Base of structured heads: learned bases, one linear layer for all generated numbers.

    Subclasses say how many numbers modulate one base (:meth:`factor_size`),
    how to build the structured weight from them (:meth:`structure`) and their
    initial mean and variance (:meth:`factor_init`).
    """

    def __init__(self, in_features: int, spec: WeightSpec):
        super().__init__(in_features, spec)
        self.modulated = [p for p in spec if p.role == "weight"]
        self.whole = [p for p in spec if p.role != "weight"]
        self.base = nn.ParameterList(nn.Parameter(torch.zeros(p.shape)) for p in self.modulated)
        self.slices: dict[str, slice] = {}
        start = 0
        for p in self.modulated:
            self.slices[p.name] = slice(start, start + self.factor_size(p))
            start += self.factor_size(p)
        for p in self.whole:
            self.slices[p.name] = slice(start, start + p.numel)
            start += p.numel
        self.linear = nn.Linear(in_features, start)

    @property
    def numbers_per_condition(self) -> int:
        """How many numbers the head generates for one condition."""
        return self.linear.out_features

    def factor_size(self, info: ParamInfo) -> int:
        raise NotImplementedError

    def structure(self, base: torch.Tensor, numbers: torch.Tensor) -> StructuredWeight:
        """Build the structured weight from ``(N, factor_size)`` numbers."""
        raise NotImplementedError

    def factor_init(self, info: ParamInfo, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Wanted ``(variance, mean)`` of the factor numbers at init, each ``(factor_size,)``."""
        raise NotImplementedError

    def generate(self, h: torch.Tensor) -> dict:
        out = self.linear(h)  # (N, numbers_per_condition)
        n = h.shape[0]
        weights: dict = {
            p.name: self.structure(base, out[:, self.slices[p.name]])
            for p, base in zip(self.modulated, self.base, strict=True)
        }
        for p in self.whole:
            weights[p.name] = out[:, self.slices[p.name]].reshape(n, *p.shape)
        return weights

    @torch.no_grad()
    def initialize_(self, method, gain, template, features):
        check_method(method)
        for p, base in zip(self.modulated, self.base, strict=True):
            base.copy_(template[p.name])
        if method == "default":
            self.linear.reset_parameters()
            return
        variance = torch.empty(self.numbers_per_condition)
        mean = torch.empty(self.numbers_per_condition)
        whole_var, whole_mean = element_targets(self.spec, method, gain, template)
        for p, base in zip(self.modulated, self.base, strict=True):
            variance[self.slices[p.name]], mean[self.slices[p.name]] = self.factor_init(p, base)
        for p in self.whole:
            source = slice(p.offset, p.offset + p.numel)
            variance[self.slices[p.name]] = whole_var[source]
            mean[self.slices[p.name]] = whole_mean[source]
        init_rows_(
            self.linear.weight, self.linear.bias, variance, mean, float(features.pow(2).mean())
        )


class ScalingHead(ModulationHead):
    r"""Generate one scale per output unit (row) or output channel of each weight.

    :math:`W_j(c) = \operatorname{diag}(s_j(c))\, W_{0,j}` with a learned base
    :math:`W_{0,j}`. Per condition it generates ``out_j`` numbers per weight
    (plus the biases), so per-sample weights cost almost nothing to generate or
    apply.

    Shapes:
        ``(N, in_features) -> {name: RowScaled with scale (N, out) | (N, *shape)}``.
    """

    def config(self) -> dict:
        return {}

    def factor_size(self, info):
        return info.shape[0]

    def structure(self, base, numbers):
        return RowScaled(base, numbers)  # scale: (N, out)

    def factor_init(self, info, base):
        size = self.factor_size(info)
        return torch.full((size,), SMALL**2), torch.ones(size)


class LowRankHead(ModulationHead):
    r"""Generate a rank-``r`` update of each weight: :math:`W_j(c) = W_{0,j} + U_j(c) V_j(c)^\top`.

    Per condition it generates ``r (out_j + in_j)`` numbers per weight, with
    ``in_j`` the product of the weight's other dimensions.

    Args:
        in_features: body feature size.
        spec: the target's weight spec.
        rank: ``r``.

    Shapes:
        ``(N, in_features) -> {name: LowRank with u (N, out, r), v (N, in, r) | (N, *shape)}``.
    """

    def __init__(self, in_features: int, spec: WeightSpec, rank: int = 4):
        self.rank = check_positive_int("rank", rank)
        super().__init__(in_features, spec)

    def config(self) -> dict:
        return {"rank": self.rank}

    def factor_size(self, info):
        return self.rank * (info.shape[0] + math.prod(info.shape[1:]))

    def structure(self, base, numbers):
        n, out, r = numbers.shape[0], base.shape[0], self.rank
        u = numbers[:, : out * r].reshape(n, out, r)
        v = numbers[:, out * r :].reshape(n, -1, r)
        return LowRank(base, u, v)

    def factor_init(self, info, base):
        out, in_flat, r = info.shape[0], math.prod(info.shape[1:]), self.rank
        # V: a fixed random basis (the head's bias) with a small condition-dependent part;
        # U: zero mean, sized so that U V^T has SMALL times the spread of W0.
        v_mean = torch.randn(in_flat * r) / math.sqrt(in_flat)
        v_var = torch.full((in_flat * r,), SMALL**2 / in_flat)
        u_var = torch.full((out * r,), SMALL**2 * float(base.var()) * in_flat / r)
        return torch.cat([u_var, v_var]), torch.cat([torch.zeros(out * r), v_mean])
