"""Batched layers with per-sample weights: one weight set per row of the batch.

With per-sample weights, sample ``b`` of a batch goes through its own layer
``y_b = W_b x_b + c_b``. Looping over ``b`` in Python launches ``B`` tiny
kernels; these functions do the whole batch in one:

* linear: ``y = baddbmm(c, x, W^T)`` with ``W`` of shape ``(B, out, in)``;
* 2-D convolution: the batch is folded into channels, ``(1, B*C, H, W)``,
  and convolved with ``groups = B * groups`` so that every sample only meets
  its own kernels; or (on GPUs) the patches are unrolled with ``F.unfold``
  and multiplied by every sample's kernels in one batched matrix product.

Either argument (weight or bias) may also be shared by the batch (no leading
batch dimension); ``None`` bias means no bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

from hypercore.target.structured import LowRank, RowScaled, StructuredWeight


def _add_bias(y: torch.Tensor, bias: torch.Tensor | None, batch: int) -> torch.Tensor:
    """``y`` is ``(B, *, out)``; ``bias`` is ``(out,)``, ``(B, out)`` or ``None``."""
    if bias is None:
        return y
    if bias.dim() == 1:
        return y + bias
    return y + bias.view(batch, *([1] * (y.dim() - 2)), -1)


def linear_per_sample(
    x: torch.Tensor,
    weight: torch.Tensor | StructuredWeight,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """``y[b] = x[b] @ weight[b].T + bias[b]``, for every sample at once.

    Args:
        x: ``(B, *, in)``: any number of middle dimensions (tokens, time).
        weight: ``(B, out, in)`` per sample, ``(out, in)`` shared, or a
            :class:`~hypercore.target.structured.RowScaled` /
            :class:`~hypercore.target.structured.LowRank` weight, applied
            without building per-sample matrices.
        bias: ``(B, out)`` per sample, ``(out,)`` shared, or ``None``.

    Returns:
        ``(B, *, out)``.
    """
    batch = x.shape[0]
    if isinstance(weight, RowScaled):  # y = s * (W0 x)
        y = F.linear(x, weight.base)
        scale = weight.scale
        y = y * (scale if scale.dim() == 1 else scale.view(batch, *([1] * (x.dim() - 2)), -1))
        return _add_bias(y, bias, batch)
    if isinstance(weight, LowRank):  # y = W0 x + U (V^T x)
        y = F.linear(x, weight.base)
        if weight.u.dim() == 2:
            low = (x @ weight.v) @ weight.u.T
        else:
            x3 = x.reshape(batch, -1, x.shape[-1])  # (B, T, in)
            low = torch.bmm(torch.bmm(x3, weight.v), weight.u.transpose(1, 2))  # (B, T, out)
            low = low.reshape(y.shape)
        return _add_bias(y + low, bias, batch)
    if isinstance(weight, StructuredWeight):  # any other structure: the full weights
        weight = weight.dense()
    if weight.dim() == 2:  # shared weight, per-sample bias
        return _add_bias(F.linear(x, weight), bias, batch)
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


#: How per-sample convolution kernels are applied: ``"grouped"`` (one grouped
#: convolution), ``"unfold"`` (im2col from strided views, then one batched matrix
#: product) or ``"auto"``: unfold on CUDA while the unfolded input stays below
#: :data:`UNFOLD_LIMIT` numbers, grouped otherwise. cuDNN's grouped convolutions
#: with thousands of groups are slow on GPUs, while on CPUs grouped convolution
#: is the faster of the two (measured in ``benchmarks/per_sample.py``).
conv_strategy = "auto"
UNFOLD_LIMIT = 2**27


def _conv_output_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _im2col(x, kh, kw, stride, padding, dilation) -> tuple[torch.Tensor, int, int]:
    """Unrolled patches ``(B, C*kh*kw, H'*W')`` from strided views and one copy.

    ``F.unfold`` launches one kernel per sample on CUDA; views of ``Tensor.unfold``
    cost nothing and the final reshape is a single copy for the whole batch.
    """
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    patches = x.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)
    if dh > 1 or dw > 1:
        patches = patches[..., ::dh, ::dw]  # (B, C, H', W', kh, kw)
    batch, channels, h_out, w_out = patches.shape[:4]
    cols = patches.permute(0, 1, 4, 5, 2, 3).reshape(batch, channels * kh * kw, h_out * w_out)
    return cols, h_out, w_out


def conv2d_per_sample(
    x: torch.Tensor,
    weight: torch.Tensor | StructuredWeight,
    bias: torch.Tensor | None,
    stride: int | tuple[int, int] = 1,
    padding: int | str | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    r"""``nn.Conv2d`` with a kernel per sample, for the whole batch in one call.

    Two equivalent strategies (see :data:`conv_strategy`):

    * grouped: the batch is folded into channels, ``(1, B*C, H, W)``, and
      convolved with ``groups = B * groups``, so sample ``b`` meets only its
      own kernels;
    * unfold: the input's patches are unrolled (im2col, one copy for the
      whole batch), ``(B, C k_h k_w, L)`` for
      ``L = H' W'`` output positions, and multiplied by each sample's kernel
      matrix ``(B, O, C k_h k_w)`` in one batched matrix product.

    Args:
        x: ``(B, C, H, W)``.
        weight: ``(B, O, C/groups, kh, kw)`` per sample, ``(O, C/groups, kh, kw)``
            shared, or a structured weight (:class:`RowScaled` scales the output
            channels of one shared convolution; others are made dense).
        bias: ``(B, O)``, ``(O,)`` or ``None``.
        stride, padding, dilation, groups: as in ``F.conv2d`` (zero padding; a
            layer with another ``padding_mode`` pads its input first, as
            ``nn.Conv2d`` does).

    Returns:
        ``(B, O, H', W')``.
    """
    stride2: tuple[int, int] = _pair(stride)
    dilation2: tuple[int, int] = _pair(dilation)
    padding = padding if isinstance(padding, str) else _pair(padding)
    batch = x.shape[0]
    if isinstance(weight, RowScaled):  # y = s * conv(x, W0), per output channel
        y = F.conv2d(x, weight.base, None, stride2, padding, dilation2, groups)
        scale = weight.scale
        y = y * (scale.view(1, -1, 1, 1) if scale.dim() == 1 else scale.view(batch, -1, 1, 1))
        if bias is None:
            return y
        return y + (bias.view(1, -1, 1, 1) if bias.dim() == 1 else bias.view(batch, -1, 1, 1))
    if isinstance(weight, StructuredWeight):
        weight = weight.dense()
    if weight.dim() == 4:  # shared kernel, per-sample bias
        y = F.conv2d(x, weight, None, stride2, padding, dilation2, groups)
        if bias is None:
            return y
        return y + (bias.view(1, -1, 1, 1) if bias.dim() == 1 else bias.view(batch, -1, 1, 1))
    out_channels, (kh, kw) = weight.shape[1], weight.shape[-2:]
    strategy = conv_strategy
    if strategy == "auto":
        strategy = "grouped"
        if x.is_cuda and not isinstance(padding, str):
            h_out = _conv_output_size(x.shape[2], kh, stride2[0], padding[0], dilation2[0])
            w_out = _conv_output_size(x.shape[3], kw, stride2[1], padding[1], dilation2[1])
            if batch * x.shape[1] * kh * kw * h_out * w_out <= UNFOLD_LIMIT:
                strategy = "unfold"
    if strategy == "unfold" and not isinstance(padding, str):
        cols, h_out, w_out = _im2col(x, kh, kw, stride2, padding, dilation2)
        kernels = weight.reshape(batch, groups, out_channels // groups, -1)  # (B, g, O/g, K)
        cols = cols.view(batch, groups, -1, cols.shape[-1])  # (B, g, K, L)
        y = torch.matmul(kernels, cols).view(batch, out_channels, h_out, w_out)
    else:
        fused_bias = bias.reshape(-1) if bias is not None and bias.dim() == 2 else None
        y = F.conv2d(
            x.reshape(1, batch * x.shape[1], *x.shape[2:]),  # (1, B*C, H, W)
            weight.reshape(batch * out_channels, *weight.shape[2:]),  # (B*O, C/g, kh, kw)
            fused_bias,  # (B*O,) or None
            stride2,
            padding,
            dilation2,
            batch * groups,
        )  # (1, B*O, H', W')
        y = y.view(batch, out_channels, y.shape[-2], y.shape[-1])
        if fused_bias is not None:
            return y
    if bias is None:
        return y
    return y + (bias.view(1, -1, 1, 1) if bias.dim() == 1 else bias.view(batch, -1, 1, 1))
