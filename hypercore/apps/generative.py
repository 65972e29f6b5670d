r"""Generative implicit neural representations: a hypernetwork writes a SIREN per image.

An image is a function :math:`f: [-1, 1]^2 \to [0, 1]` (pixel value at a point),
represented by a small coordinate network, a SIREN (Sitzmann et al., 2020):

.. math:: f_\theta(x) = W_L\, \phi_{L-1} \circ \dots \circ \phi_1(x) + b_L, \qquad
          \phi_l(h) = \sin\big(\omega_0 (W_l h + b_l)\big),

initialised as in the paper (:func:`siren_init`): the first layer uniform in
:math:`\pm 1/n`, the others in :math:`\pm\sqrt{6/n}/\omega_0` (:math:`n` the fan-in).

The generative model is an **auto-decoder** (Park et al., 2019, DeepSDF): one
learned latent code :math:`z_i \in \mathbb{R}^E` per training image
(:class:`LatentCodes`) and a hypernetwork :math:`h_\phi` that writes the SIREN's
weights from it, :math:`\theta_i = h_\phi(z_i)`. Codes and hypernetwork are
trained together (:func:`fit_auto_decoder`) on

.. math:: \min_{\phi,\ z_{1..N}} \ \frac1N \sum_i \Big[ \frac1P \sum_p
          \big(f_{h_\phi(z_i)}(x_p) - y_{ip}\big)^2 + \lambda \lVert z_i \rVert^2 \Big],

the :math:`\lambda \lVert z \rVert^2` term being DeepSDF's zero-mean Gaussian prior on
codes. A new image gets its code by **test-time optimisation** with the
hypernetwork frozen (:func:`fit_codes`): the same objective in :math:`z` alone.
New images are **sampled** by drawing codes from a Gaussian fitted to the
training codes (:func:`fit_gaussian`, :func:`sample_gaussian`). Because
:math:`f` is a function of continuous coordinates, an image fitted on a
:math:`16 \times 16` grid can be queried on a :math:`64 \times 64` one (:func:`pixel_grid`).

The baseline is one SIREN per image, fitted from scratch (:func:`fit_per_image`):
a :class:`~hypercore.baselines.TaskWeightTable` re-initialised with
:func:`siren_init`, all images trained at once. With Adam this is *exactly* the
same as fitting each image separately: the loss is a sum over images, so each
image's gradient touches only its own weights, and Adam's update is
element-wise.

The data (:func:`render_shapes`) are anti-aliased discs, ellipses and rectangles,
rendered by supersampling the exact indicator functions and box-filtered to
the high resolution, then box-downsampled (:func:`box_downsample`) for
training; :func:`psnr` and :func:`upsample` (bilinear/bicubic) complete the
comparison. Shapes: images are ``(N, H, W)`` in ``[0, 1]``; coordinate grids
``(H * W, 2)``; pixel vectors ``(N, H * W)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from hypercore.baselines import TaskWeightTable
from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_int,
    check_positive_int,
    shape_str,
)
from hypercore.hypernetwork import HyperNetwork
from hypercore.inputs.base import Conditioner
from hypercore.target import Target

__all__ = [
    "LatentCodes",
    "Sine",
    "box_downsample",
    "fit_auto_decoder",
    "fit_codes",
    "fit_gaussian",
    "fit_per_image",
    "per_image_table",
    "pixel_grid",
    "psnr",
    "render",
    "render_shapes",
    "sample_gaussian",
    "siren",
    "siren_init",
    "upsample",
]


# --------------------------------------------------------------------------- the SIREN


class Sine(nn.Module):
    r""":math:`\sin(\omega_0 x)`, element-wise (any shape)."""

    def __init__(self, w0: float = 30.0):
        super().__init__()
        self.w0 = check_float("w0", w0, low=0.0, low_open=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x)

    def extra_repr(self) -> str:
        return f"w0={self.w0:g}"


def siren_init(
    shape: tuple[int, ...],
    first: bool,
    w0: float,
    count: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""SIREN's initialisation of one weight or bias tensor of ``shape``.

    Weights ``(out, in)`` and biases ``(out,)`` of the first layer are uniform in
    :math:`\pm 1/n`, those of later layers in :math:`\pm\sqrt{6/n}/\omega_0`, with
    :math:`n` the layer's fan-in (``in``; for a bias, pass the weight's fan-in via
    ``shape=(out, in)`` and slice). Returns ``(*shape)`` or, with ``count``,
    ``(count, *shape)`` independent draws.
    """
    if len(shape) != 2:
        raise ShapeError(f"shape: expected a weight shape (out, in), got {shape_str(shape)}")
    fan_in = shape[1]
    bound = 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / w0
    full = shape if count is None else (count, *shape)
    return (torch.rand(full, generator=generator) * 2.0 - 1.0) * bound


def siren(
    hidden: int = 32, depth: int = 2, w0: float = 30.0, in_features: int = 2, out_features: int = 1
) -> nn.Sequential:
    """A SIREN ``in -> hidden (x depth, sine) -> out`` (linear output), SIREN-initialised.

    ``depth`` is the number of sine layers; the module maps ``(P, in)`` to ``(P, out)``.
    """
    depth = check_positive_int("depth", depth)
    hidden = check_positive_int("hidden", hidden)
    layers: list[nn.Module] = []
    widths = [in_features] + [hidden] * depth
    for i in range(depth):
        layers += [nn.Linear(widths[i], widths[i + 1]), Sine(w0)]
    layers.append(nn.Linear(hidden, out_features))
    with torch.no_grad():
        for i, layer in enumerate(m for m in layers if isinstance(m, nn.Linear)):
            w = siren_init(tuple(layer.weight.shape), first=i == 0, w0=w0)
            layer.weight.copy_(w)
            layer.bias.copy_(siren_init(tuple(layer.weight.shape), i == 0, w0)[:, 0])
    return nn.Sequential(*layers)


def _linear_layers(target: Target) -> list[str]:
    """Names of the generated weights, in order (each must be ``(out, in)``)."""
    names = [p.name for p in target.spec if p.role == "weight"]
    if not names or any(len(target.spec.by_name[n].shape) != 2 for n in names):
        raise HypercoreError(f"target: expected linear layers only, got {target.spec.shapes}")
    return names


def per_image_table(target: Target, num_images: int, w0: float, seed: int = 0) -> TaskWeightTable:
    """One independently SIREN-initialised weight set per image (no hypernetwork).

    A :class:`~hypercore.baselines.TaskWeightTable` whose tables hold
    ``num_images`` draws of :func:`siren_init` (``num_images * target.num_generated``
    trainable numbers).
    """
    table = TaskWeightTable(target, num_images)
    weights = _linear_layers(target)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for info, t in zip(target.spec, table.tables, strict=True):
            base = info.name.rsplit(".", 1)[0] + ".weight"
            first = base == weights[0]
            shape = tuple(target.spec.by_name[base].shape)
            draw = siren_init(shape, first, w0, count=num_images, generator=gen)
            t.copy_(draw if info.role == "weight" else draw[:, :, 0])
    return table


# --------------------------------------------------------------------------- latent codes


class LatentCodes(Conditioner):
    r"""The auto-decoder's codes: one learned :math:`z_i \in \mathbb{R}^E` per training image.

    Call with integer image ids (an ``int`` -> ``(E,)``, a ``(B,)`` tensor -> ``(B, E)``),
    or with a floating-point ``(K, E)`` tensor of codes, returned as given (codes
    found by test-time optimisation, or sampled ones).

    Args:
        num_images: how many training images (codes).
        code_dim: ``E``.
        init_std: standard deviation of the initial codes (DeepSDF: 0.01).
    """

    def __init__(self, num_images: int, code_dim: int, init_std: float = 0.01):
        super().__init__()
        self.num_images = check_positive_int("num_images", num_images)
        self.out_features = check_positive_int("code_dim", code_dim)
        self.init_std = check_float("init_std", init_std, low=0.0)
        self.weight = nn.Parameter(torch.randn(num_images, code_dim) * init_std)

    def config(self) -> dict:
        return {
            "num_images": self.num_images,
            "code_dim": self.out_features,
            "init_std": self.init_std,
        }

    def forward(self, condition: int | torch.Tensor) -> torch.Tensor:
        if isinstance(condition, torch.Tensor) and condition.dtype.is_floating_point:
            if condition.dim() != 2 or condition.shape[1] != self.out_features:
                raise ShapeError(
                    f"condition: expected codes of shape (K, {self.out_features}), got "
                    f"{shape_str(condition.shape)}"
                )
            return condition
        if isinstance(condition, bool) or not isinstance(condition, int | torch.Tensor):
            raise HypercoreTypeError(
                f"condition: expected image ids (int or integer tensor) or a float tensor of "
                f"codes, got {type(condition).__name__}"
            )
        ids = torch.as_tensor(condition, device=self.weight.device)
        if ids.dim() > 1 or (ids.numel() and (ids.min() < 0 or ids.max() >= self.num_images)):
            raise HypercoreError(
                f"condition: expected image ids in 0..{self.num_images - 1} of shape () or "
                f"(B,), got {shape_str(ids.shape)} tensor"
            )
        return self.weight[ids]

    def example_condition(self, n: int) -> torch.Tensor:
        return torch.arange(n, device=self.weight.device) % self.num_images


# --------------------------------------------------------------------------- data


def pixel_grid(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Pixel centres of a ``size x size`` image in ``[-1, 1]^2``, row-major: ``(size**2, 2)``.

    Pixel ``(r, c)`` sits at ``(-1 + (2c + 1)/size, -1 + (2r + 1)/size)`` as ``(x, y)``,
    so grids of different sizes cover the same square (a 16-pixel grid's centres
    are the centres of 4 x 4 blocks of the 64-pixel grid).
    """
    size = check_positive_int("size", size)
    t = (torch.arange(size, device=device, dtype=torch.float32) * 2 + 1) / size - 1
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1)


def box_downsample(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor x factor`` blocks: ``(N, H, W) -> (N, H/factor, W/factor)``."""
    factor = check_positive_int("factor", factor)
    if images.dim() != 3 or images.shape[1] % factor or images.shape[2] % factor:
        raise ShapeError(
            f"images: expected (N, H, W) with H and W divisible by factor={factor}, got "
            f"{shape_str(images.shape)}"
        )
    return F.avg_pool2d(images.unsqueeze(1), factor).squeeze(1)


def render_shapes(
    num_images: int, size: int = 64, seed: int = 0, supersample: int = 4, max_shapes: int = 3
) -> torch.Tensor:
    """Anti-aliased random shapes on a dark background: ``(num_images, size, size)`` in [0, 1].

    Each image has a background level uniform in [0, 0.2] and 1 to ``max_shapes``
    shapes painted in order (each with an intensity uniform in [0.35, 1]): a disc, an
    ellipse or a rectangle (chosen uniformly; ellipses and rectangles rotated by a
    uniform angle), centred uniformly in [-0.6, 0.6]^2, with half-axes uniform in
    [0.15, 0.5]. A pixel's value is the exact indicator of each shape averaged over
    ``supersample x supersample`` evenly spaced points of the pixel (box-filtered
    anti-aliasing). Deterministic given ``seed`` (a CPU ``torch.Generator``).
    """
    num_images = check_positive_int("num_images", num_images)
    size = check_positive_int("size", size)
    supersample = check_positive_int("supersample", supersample)
    max_shapes = check_positive_int("max_shapes", max_shapes)
    gen = torch.Generator().manual_seed(seed)

    def u(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=gen)

    fine = pixel_grid(size * supersample)  # (S^2, 2)
    x, y = fine[:, 0], fine[:, 1]
    out = torch.empty(num_images, size, size)
    for i in range(num_images):
        canvas = torch.full_like(x, float(u(0.0, 0.2)))
        count = int(torch.randint(1, max_shapes + 1, (1,), generator=gen))
        for _ in range(count):
            kind = int(torch.randint(0, 3, (1,), generator=gen))
            cx, cy = u(-0.6, 0.6, 2).tolist()
            a, b = u(0.15, 0.5, 2).tolist()
            angle = float(u(0.0, math.pi))
            value = float(u(0.35, 1.0))
            dx, dy = x - cx, y - cy
            if kind == 0:  # disc
                inside = dx**2 + dy**2 <= a**2
            else:
                ca, sa = math.cos(angle), math.sin(angle)
                px, py = ca * dx + sa * dy, -sa * dx + ca * dy
                inside = (
                    (px / a) ** 2 + (py / b) ** 2 <= 1
                    if kind == 1
                    else (px.abs() <= a) & (py.abs() <= b * 0.6)
                )
            canvas = torch.where(inside, torch.full_like(canvas, value), canvas)
        fine_img = canvas.view(1, size * supersample, size * supersample)
        out[i] = F.avg_pool2d(fine_img, supersample)[0]
    return out


def upsample(images: torch.Tensor, size: int, mode: str = "bicubic") -> torch.Tensor:
    """Classical upsampling ``(N, h, w) -> (N, size, size)``, clipped to [0, 1].

    ``mode`` is ``"bilinear"`` or ``"bicubic"`` (``F.interpolate``, ``align_corners=False``:
    pixel centres as in :func:`pixel_grid`).
    """
    if mode not in ("bilinear", "bicubic"):
        raise HypercoreError(f"mode: expected 'bilinear' or 'bicubic', got {mode!r}")
    if images.dim() != 3:
        raise ShapeError(f"images: expected (N, h, w), got {shape_str(images.shape)}")
    up = F.interpolate(images.unsqueeze(1), size=(size, size), mode=mode, align_corners=False)
    return up.squeeze(1).clamp(0.0, 1.0)


def psnr(prediction: torch.Tensor, truth: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    r"""Peak signal-to-noise ratio per image, :math:`10 \log_{10}(\mathrm{peak}^2 / \mathrm{MSE})`.

    ``prediction`` and ``truth`` of the same shape ``(N, ...)``; returns ``(N,)`` in dB
    (the prediction is clipped to ``[0, peak]`` first, as an image would be).
    """
    if prediction.shape != truth.shape or prediction.dim() < 2:
        raise ShapeError(
            f"prediction: expected the shape of truth, {shape_str(truth.shape)} (N, ...), got "
            f"{shape_str(prediction.shape)}"
        )
    err = (prediction.clamp(0.0, peak) - truth).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(peak**2 / err.clamp_min(1e-12))


# --------------------------------------------------------------------------- training


def _check_pixels(coords: torch.Tensor, pixels: torch.Tensor) -> None:
    if coords.dim() != 2 or pixels.dim() != 2 or pixels.shape[1] != coords.shape[0]:
        raise ShapeError(
            f"pixels: expected (N, P) with P = {coords.shape[0]} coordinates, got "
            f"{shape_str(pixels.shape)} (coords {shape_str(coords.shape)})"
        )


def render(model: Any, coords: torch.Tensor, condition: Any) -> torch.Tensor:
    """``(K, P)`` pixel values of ``K`` images at ``coords`` ``(P, 2)``.

    ``model`` is a :class:`~hypercore.HyperNetwork` (``condition``: ids or codes) or a
    :class:`~hypercore.baselines.TaskWeightTable` (``condition``: ids).
    """
    if isinstance(model, HyperNetwork):
        return model.forward_sets(coords, condition).squeeze(-1)
    if isinstance(model, TaskWeightTable):
        weights = model.generate(condition)
        return vmap(lambda w: model.target(coords, w))(weights).squeeze(-1)
    raise HypercoreTypeError(
        f"model: expected a HyperNetwork or a TaskWeightTable, got {type(model).__name__}"
    )


def fit_auto_decoder(
    hnet: HyperNetwork,
    coords: torch.Tensor,
    pixels: torch.Tensor,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    code_reg: float = 1e-4,
    seed: int = 0,
) -> list[float]:
    r"""Train a hypernetwork and its :class:`LatentCodes` jointly (the auto-decoder).

    Each of ``steps`` Adam steps draws ``batch_size`` images (an epoch-wise
    permutation, so every image is used ``steps * batch_size / N`` times, rounded)
    and minimises their mean squared pixel error plus ``code_reg`` times the mean
    squared norm of their codes.

    Args:
        hnet: a hypernetwork whose conditioner is :class:`LatentCodes` for ``N`` images.
        coords: ``(P, 2)`` pixel coordinates; ``pixels``: ``(N, P)`` their values.

    Returns:
        the per-step training loss (pixel MSE only).
    """
    if not isinstance(hnet, HyperNetwork) or not isinstance(hnet.conditioner, LatentCodes):
        raise HypercoreTypeError("hnet: expected a HyperNetwork whose conditioner is LatentCodes")
    _check_pixels(coords, pixels)
    n = pixels.shape[0]
    if n != hnet.conditioner.num_images:
        raise ShapeError(f"pixels: expected {hnet.conditioner.num_images} images, got {n}")
    steps = check_int("steps", steps, minimum=0)
    batch_size = min(check_positive_int("batch_size", batch_size), n)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(hnet.parameters(), lr=check_float("lr", lr, low=0.0, low_open=True))
    order = torch.randperm(n, generator=gen)
    cursor, losses = 0, []
    for _ in range(steps):
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        ids = order[cursor : cursor + batch_size].to(pixels.device)
        cursor += batch_size
        pred = render(hnet, coords, ids)  # (B, P)
        mse = (pred - pixels[ids]).pow(2).mean()
        loss = mse + code_reg * hnet.conditioner(ids).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(mse.detach()))
    return losses


def fit_codes(
    hnet: HyperNetwork,
    coords: torch.Tensor,
    pixels: torch.Tensor,
    steps: int,
    lr: float = 1e-2,
    code_reg: float = 1e-4,
    init: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Test-time optimisation: codes for new images, the hypernetwork frozen.

    Minimises, for each image independently (a sum over images, Adam), its mean
    squared pixel error plus ``code_reg`` :math:`\lVert z \rVert^2`, starting from
    ``init`` (``(E,)`` or ``(N, E)``; default: the mean of the training codes).
    Only the codes are updated; ``hnet``'s parameters are left exactly as they were.

    Returns:
        ``(N, E)`` codes (detached).
    """
    if not isinstance(hnet, HyperNetwork) or not isinstance(hnet.conditioner, LatentCodes):
        raise HypercoreTypeError("hnet: expected a HyperNetwork whose conditioner is LatentCodes")
    _check_pixels(coords, pixels)
    steps = check_int("steps", steps, minimum=0)
    n, dim = pixels.shape[0], hnet.conditioner.out_features
    start = hnet.conditioner.weight.detach().mean(0) if init is None else init.detach()
    codes = start.expand(n, dim).clone().to(pixels.device).requires_grad_(True)
    opt = torch.optim.Adam([codes], lr=check_float("lr", lr, low=0.0, low_open=True))
    frozen = [p for p in hnet.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            pred = render(hnet, coords, codes)
            per_image = (pred - pixels).pow(2).mean(1) + code_reg * codes.pow(2).sum(1)
            opt.zero_grad()
            per_image.sum().backward()
            opt.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return codes.detach()


def fit_per_image(
    table: TaskWeightTable, coords: torch.Tensor, pixels: torch.Tensor, steps: int, lr: float = 1e-3
) -> list[float]:
    """Fit one SIREN per image from its own initialisation, ``steps`` Adam steps each.

    All images train at once on the sum of their mean squared errors: with Adam
    this equals fitting each separately (disjoint weights, element-wise updates).

    Returns:
        the per-step mean (over images) pixel MSE.
    """
    if not isinstance(table, TaskWeightTable):
        raise HypercoreTypeError(f"table: expected a TaskWeightTable, got {type(table).__name__}")
    _check_pixels(coords, pixels)
    if pixels.shape[0] != table.num_tasks:
        raise ShapeError(f"pixels: expected {table.num_tasks} images, got {pixels.shape[0]}")
    steps = check_int("steps", steps, minimum=0)
    ids = torch.arange(table.num_tasks, device=pixels.device)
    opt = torch.optim.Adam(table.parameters(), lr=check_float("lr", lr, low=0.0, low_open=True))
    losses = []
    for _ in range(steps):
        per_image = (render(table, coords, ids) - pixels).pow(2).mean(1)
        opt.zero_grad()
        per_image.sum().backward()
        opt.step()
        losses.append(float(per_image.detach().mean()))
    return losses


# --------------------------------------------------------------------------- sampling


def fit_gaussian(codes: torch.Tensor, shrinkage: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean ``(E,)`` and covariance ``(E, E)`` of ``(N, E)`` codes (maximum likelihood,
    plus ``shrinkage`` times the identity so that it is positive definite)."""
    if codes.dim() != 2 or codes.shape[0] < 2:
        raise ShapeError(f"codes: expected (N, E) with N >= 2, got {shape_str(codes.shape)}")
    mean = codes.mean(0)
    centred = codes - mean
    cov = centred.T @ centred / codes.shape[0]
    return mean, cov + shrinkage * torch.eye(codes.shape[1], dtype=codes.dtype, device=codes.device)


def sample_gaussian(
    mean: torch.Tensor, cov: torch.Tensor, n: int, seed: int = 0, temperature: float = 1.0
) -> torch.Tensor:
    r"""``n`` draws :math:`\mu + \tau L \epsilon`, :math:`LL^\top = \Sigma`, :math:`\epsilon \sim
    \mathcal N(0, I)`: ``(n, E)`` (deterministic given ``seed``)."""
    n = check_positive_int("n", n)
    if mean.dim() != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
        raise ShapeError(
            f"cov: expected ({mean.shape[0]}, {mean.shape[0]}) for a mean of shape "
            f"{shape_str(mean.shape)}, got {shape_str(cov.shape)}"
        )
    chol = torch.linalg.cholesky(cov)
    eps = torch.randn(n, mean.shape[0], generator=torch.Generator().manual_seed(seed))
    return mean + temperature * eps.to(mean) @ chol.T
