"""Batched layers with per-sample weights: one weight set per row of the batch.

With per-sample weights, sample ``b`` of a batch goes through its own layer
``y_b = W_b x_b + c_b``. Looping over ``b`` in Python launches ``B`` tiny
kernels; these functions do the whole batch in one:

* linear: ``y = baddbmm(c, x, W^T)`` with ``W`` of shape ``(B, out, in)``;
* 2-D convolution: the batch is folded into channels, ``(1, B*C, H, W)``,
  and convolved with ``groups = B * groups`` so that every sample only meets
  its own kernels.

Either argument (weight or bias) may also be shared by the batch (no leading
batch dimension); ``None`` bias means no bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def linear_per_sample(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``y[b] = x[b] @ weight[b].T + bias[b]``, for every sample at once.

    Args:
        x: ``(B, *, in)``: any number of middle dimensions (tokens, time).
        weight: ``(B, out, in)`` per sample or ``(out, in)`` shared.
        bias: ``(B, out)`` per sample, ``(out,)`` shared, or ``None``.

    Returns:
        ``(B, *, out)``.
    """
    batch = x.shape[0]
    if weight.dim() == 2:  # shared weight, per-sample bias
        y = F.linear(x, weight)
        if bias is None:
            return y
        if bias.dim() == 1:
            return y + bias
        return y + bias.view(batch, *([1] * (x.dim() - 2)), -1)
    x3 = x.unsqueeze(1) if x.dim() == 2 else x.reshape(batch, -1, x.shape[-1])  # (B, T, in)
    if bias is not None and bias.dim() == 2:
        y = torch.baddbmm(bias.unsqueeze(1), x3, weight.transpose(1, 2))  # (B, T, out)
    else:
        y = torch.bmm(x3, weight.transpose(1, 2))
        if bias is not None:
            y = y + bias
    if x.dim() == 2:
        return y.squeeze(1)  # (B, out)
    return y.reshape(*x.shape[:-1], weight.shape[1])


def conv2d_per_sample(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv: nn.Conv2d
) -> torch.Tensor:
    """``nn.Conv2d`` with a kernel per sample, as one grouped convolution.

    Args:
        x: ``(B, C, H, W)``.
        weight: ``(B, O, C/groups, kh, kw)`` per sample or ``(O, C/groups, kh, kw)``.
        bias: ``(B, O)``, ``(O,)`` or ``None``.
        conv: the module whose stride, padding, dilation, groups and padding mode apply.

    Returns:
        ``(B, O, H', W')``.
    """
    padding = conv.padding
    if conv.padding_mode != "zeros":
        x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
        padding = 0
    batch = x.shape[0]
    if weight.dim() == 4:  # shared kernel, per-sample bias
        y = F.conv2d(x, weight, None, conv.stride, padding, conv.dilation, conv.groups)
    else:
        out_channels = weight.shape[1]
        y = F.conv2d(
            x.reshape(1, batch * x.shape[1], *x.shape[2:]),  # (1, B*C, H, W)
            weight.reshape(batch * out_channels, *weight.shape[2:]),  # (B*O, C/g, kh, kw)
            None,
            conv.stride,
            padding,
            conv.dilation,
            batch * conv.groups,
        )  # (1, B*O, H', W')
        y = y.view(batch, out_channels, y.shape[-2], y.shape[-1])
    if bias is None:
        return y
    if bias.dim() == 1:
        return y + bias.view(1, -1, 1, 1)
    return y + bias.view(batch, -1, 1, 1)


def _weight_and_bias(module: nn.Module, weights: dict[str, torch.Tensor]):
    # Look the module's own attributes up only when needed (nn.Module.__getattr__
    # is slow, and inside functional_call they are the substituted tensors).
    weight = weights["weight"] if "weight" in weights else module.weight  # noqa: SIM401
    bias = weights["bias"] if "bias" in weights else module.bias  # noqa: SIM401
    return weight, bias


def _linear_forward(module: nn.Linear, weights: dict[str, torch.Tensor]):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return linear_per_sample(x, *_weight_and_bias(module, weights))

    return forward


def _conv2d_forward(module: nn.Conv2d, weights: dict[str, torch.Tensor]):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return conv2d_per_sample(x, *_weight_and_bias(module, weights), module)

    return forward


#: Modules whose per-sample weights have a batched fast path: type -> forward factory.
FAST_PATHS = {nn.Linear: _linear_forward, nn.Conv2d: _conv2d_forward}


def has_fast_path(module: nn.Module) -> bool:
    """True when ``module``'s per-sample weights can skip ``vmap``."""
    return type(module) in FAST_PATHS
