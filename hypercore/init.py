r"""Principled initialisation of a hypernetwork's output: what scale should generated weights have?

A head's last layer maps features :math:`h \in \mathbb{R}^{d_k}` to a target
weight :math:`w_i = \sum_k H_{ik} h_k + \beta_i`. With the head's biases
:math:`\beta = 0` and zero-mean :math:`H`,

.. math:: \operatorname{Var}(w_i) = d_k \operatorname{Var}(H_{i\cdot})\, \mathbb{E}[h^2].

A standard (Kaiming/Xavier) init of :math:`H` therefore gives target weights of
the wrong scale; Chang et al. (ICLR 2020) choose :math:`\operatorname{Var}(H)`
so that :math:`\operatorname{Var}(w_i)` is what a standard init of the *target*
would give. With gain :math:`c` (2 for ReLU targets, 1 for linear/tanh):

* **hyperfan-in** (preserves the forward signal): a weight of a layer with fan-in
  :math:`d_j` gets :math:`\operatorname{Var}(w) = c / (s\, d_j)`, where
  :math:`s = 2` when the layer's bias is generated too (the variance budget is
  split between weight and bias) and 1 otherwise; a generated bias gets
  :math:`c/2`.
* **hyperfan-out** (preserves the backward signal): a weight gets
  :math:`c / d_i` with the layer's fan-out :math:`d_i`; a bias gets
  :math:`\max(0, c\,(1 - d_j/d_i))`.
* **bias-HyperInit** (Beck et al., 2022): the head's bias is set to a standard
  initialisation of the target (the values the target module was constructed
  with) and its weight is small, so that every condition starts near one
  standard target and still has a gradient path: the condition-dependent part
  of each generated tensor has 0.1 times the standard deviation of the
  module's own values of it.
* **default**: PyTorch's own init of the head (the baseline Chang et al. show
  to be badly scaled).

Tensors that are neither a layer's weight nor its bias (e.g. a LayerNorm gain)
start at the module's own value with a small condition-dependent part.

:func:`init_module_` draws a module's *own* weights at the variance a method
generates (for a learned residual base, or a plain baseline, that should start
at the same scale as the generated weights).

:math:`\mathbb{E}[h^2]` is measured, not assumed: the hypernetwork runs its
body on a batch of example conditions (:meth:`Conditioner.example_condition`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hypercore.errors import HypercoreError
from hypercore.target.selection import select_parameters
from hypercore.target.spec import ParamInfo, WeightSpec

INIT_METHODS = ("hyperfan_in", "hyperfan_out", "bias_hyperinit", "default")
DEFAULT_INIT = "hyperfan_in"
#: Scale of the condition-dependent part for bias-HyperInit and "other" tensors,
#: relative to the standard deviation of the module's own values (or 1 for constants).
SMALL = 0.1


def check_method(method: str) -> str:
    if method not in INIT_METHODS:
        raise HypercoreError(f"init: expected one of {list(INIT_METHODS)}, got {method!r}")
    return method


def target_variance(info: ParamInfo, method: str, gain: float, own_std: float) -> float:
    """Variance a generated tensor should have at init (see the module docstring).

    ``own_std`` is the standard deviation of the module's own values of the tensor.
    """
    c = gain**2
    if method == "bias_hyperinit" or info.role == "other":
        return (SMALL * (own_std if own_std > 0 else 1.0)) ** 2
    if info.role == "weight":
        if method == "hyperfan_out":
            return c / info.fan_out
        return c / ((2 if info.layer_has_bias else 1) * info.fan_in)
    if info.role == "bias" and method == "hyperfan_out":
        return max(0.0, c * (1.0 - info.fan_in / info.fan_out))
    return c / 2


def element_targets(
    spec: WeightSpec, method: str, gain: float, template: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per generated number: the wanted variance and the wanted mean at init.

    Returns:
        ``(variance, mean)``, each ``(spec.total,)``. The mean is the module's
        own value for bias-HyperInit and for "other" tensors, else zero.
    """
    variance = torch.empty(spec.total)
    mean = torch.zeros(spec.total)
    for info in spec:
        sl = slice(info.offset, info.offset + info.numel)
        own = template[info.name].detach().reshape(-1).float().cpu()
        own_std = float(own.std()) if own.numel() > 1 else 0.0
        variance[sl] = target_variance(info, method, gain, own_std)
        if method == "bias_hyperinit" or info.role == "other":
            mean[sl] = own
    return variance, mean


@torch.no_grad()
def init_rows_(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    variance: torch.Tensor,
    mean: torch.Tensor,
    feature_sq_mean: float,
) -> None:
    r"""Initialise a linear layer whose output row ``i`` is generated number ``i``.

    Row ``i`` of ``weight`` (shape ``(n, d_k)``) is drawn uniformly with
    variance ``variance[i] / (d_k * feature_sq_mean)``; ``bias`` is set to ``mean``.
    """
    d_k = weight.shape[1]
    std = (variance / (d_k * max(feature_sq_mean, 1e-12))).sqrt().to(weight)
    bound = math.sqrt(3.0) * std.unsqueeze(1)  # uniform(-a, a) has variance a^2 / 3
    weight.uniform_(-1.0, 1.0).mul_(bound)
    if bias is not None:
        bias.copy_(mean.to(bias))


@torch.no_grad()
def init_module_(
    module: nn.Module, method: str = DEFAULT_INIT, gain: float = math.sqrt(2.0)
) -> nn.Module:
    """Redraw a module's own weights and biases at the variance ``method`` gives generated ones.

    Every layer weight and bias is drawn uniformly with zero mean and the variance
    :func:`target_variance` gives it (other tensors, e.g. a LayerNorm gain, are
    left alone). A learned base that starts at the module's own values (a
    :class:`~hypercore.heads.ResidualHead`) or a plain baseline then starts at the
    scale of the weights a hypernetwork initialised with ``method`` generates, so
    that comparisons between them are not comparisons of initial scale.

    Args:
        module: the target module (changed in place).
        method: ``"hyperfan_in"`` or ``"hyperfan_out"`` (``"bias_hyperinit"`` and
            ``"default"`` prescribe no variance for the target's own values).
        gain: the target's activation gain (``sqrt(2)`` for ReLU).

    Returns:
        ``module``.
    """
    if check_method(method) not in ("hyperfan_in", "hyperfan_out"):
        raise HypercoreError(
            f"init_module_: method must set a scale of its own ('hyperfan_in' or "
            f"'hyperfan_out'), got {method!r}"
        )
    for info in select_parameters(module):
        if info.role == "other":
            continue
        param = module.get_parameter(info.name)
        std = math.sqrt(target_variance(info, method, gain, 0.0))
        param.uniform_(-1.0, 1.0).mul_(math.sqrt(3.0) * std)
    return module
