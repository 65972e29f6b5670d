r"""Pareto-front learning with a hypernetwork (Pareto HyperNetworks), and hypervolume.

A multi-objective problem has ``m`` losses :math:`\ell(\theta) = (\ell_1, \dots,
\ell_m)(\theta)` and no single best :math:`\theta`: the solutions are the
*Pareto front*, the loss vectors no other solution improves in every objective
at once. Navon, Shamsian, Chechik & Fetaya (ICLR 2021) learn the whole front
with one hypernetwork :math:`h_\phi` that reads a *preference ray*
:math:`r \in \Delta^{m-1}` (a point of the simplex, :math:`r_j \ge 0`,
:math:`\sum_j r_j = 1`) and generates the weights :math:`\theta = h_\phi(r)` of
the target network. PHN-LS, the variant implemented here, trains it by linear
scalarisation under rays drawn afresh at every step:

.. math::

    \min_\phi\ \mathbb{E}_{r \sim \mathrm{Dir}(\alpha)}\
        \sum_{j=1}^m r_j\, \ell_j\big(h_\phi(r)\big).

(The paper's other variant, PHN-EPO, replaces the weighted sum by the EPO
descent direction of Mahapatra & Rajan (2020), which needs each objective's
gradient and a linear programme per step; it is not implemented here.)

The baseline the paper compares with trains one network per ray,
:math:`\min_\theta \sum_j r_j \ell_j(\theta)`, for a few fixed rays.
:func:`train_scalarized` is the one loop both use: the condition passed to
``forward`` is a fresh ray per step for the hypernetwork, the fixed ray for a
separate network, so steps, batches and optimiser are the same.

The front is scored by its **hypervolume** (:func:`hypervolume`): the volume of
the region of loss space that the points dominate and that dominates a fixed
reference point :math:`\rho`,

.. math::

    \mathrm{HV}(P; \rho) = \lambda\Big(\bigcup_{p \in P,\ p < \rho}
        [p_1, \rho_1] \times \dots \times [p_m, \rho_m]\Big),

exact for two objectives (a sweep) and three (slices along the third).

The data of the book's chapter, :func:`overlapping_digits`, is a Multi-MNIST-like
problem built from scikit-learn's 8x8 digits: two digits overlap in one image,
and the two objectives are the cross-entropies of the two labels.

Only torch is imported at module level; NumPy and scikit-learn are imported by
the functions that need them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_int,
    check_positive_int,
    shape_str,
    type_name,
)

__all__ = [
    "MultiLabelSplit",
    "circle_rays",
    "dirichlet_rays",
    "hypervolume",
    "linear_scalarization",
    "non_dominated",
    "objective_losses",
    "overlapping_digits",
    "train_scalarized",
]

# --------------------------------------------------------------------------- points


def _points(points: Any, name: str = "points") -> torch.Tensor:
    """``points`` as a finite float64 ``(N, m)`` tensor on the CPU."""
    if isinstance(points, str | bytes) or points is None:
        raise HypercoreTypeError(
            f"{name}: expected an (N, m) tensor or nested sequence of losses, "
            f"got {type_name(points)}"
        )
    try:
        p = torch.as_tensor(points, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise HypercoreTypeError(
            f"{name}: expected an (N, m) tensor of numbers, got {type_name(points)} ({err})"
        ) from None
    if p.dim() != 2:
        raise ShapeError(f"{name}: expected shape (N, m), got {shape_str(p.shape)}")
    if p.numel() and not bool(torch.isfinite(p).all()):
        raise HypercoreError(f"{name}: expected finite losses, got {p[~torch.isfinite(p)][0]}")
    return p


def non_dominated(points: Any) -> torch.Tensor:
    """Mask of the points no other point dominates (minimisation).

    ``q`` dominates ``p`` when ``q <= p`` in every objective and ``q < p`` in one.
    Duplicates do not dominate each other (both are kept).

    Args:
        points: ``(N, m)`` losses.

    Returns:
        ``(N,)`` bool tensor.
    """
    p = _points(points)
    if p.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    le = (p[:, None, :] <= p[None, :, :]).all(-1)  # le[q, p]: q <= p everywhere
    lt = (p[:, None, :] < p[None, :, :]).any(-1)
    dominated = (le & lt).any(0)
    return ~dominated


def _hv2(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Exact 2-D hypervolume: sweep in increasing first objective."""
    volume, best = 0.0, ref[1]
    for x, y in sorted(points):
        if y < best:
            volume += (ref[0] - x) * (best - y)
            best = y
    return volume


def hypervolume(points: Any, reference: Any) -> float:
    r"""The exact hypervolume of a set of loss vectors (minimisation), 2 or 3 objectives.

    The Lebesgue measure of :math:`\bigcup_p [p, \rho]` over the points ``p``
    strictly better than the reference :math:`\rho` in every objective (the
    others add nothing). Two objectives: sort by the first and sum the
    rectangles of the staircase, :math:`O(N \log N)`. Three: between consecutive
    values :math:`z_i < z_{i+1}` of the third objective (the last slab ends at
    :math:`\rho_3`) the dominated region's cross-section is the 2-D
    hypervolume of the points with :math:`p_3 \le z_i`, so
    :math:`\mathrm{HV} = \sum_i \mathrm{HV}_2(\{p : p_3 \le z_i\})\,(z_{i+1} -
    z_i)`, :math:`O(N^2 \log N)`.

    Args:
        points: ``(N, m)`` losses, ``m`` in {2, 3}, finite; ``N = 0`` gives 0.
        reference: ``(m,)`` the reference point :math:`\rho` (worse than any
            solution worth counting, e.g. ``(2, 2)`` for two cross-entropies).

    Returns:
        The hypervolume, a Python float.
    """
    p = _points(points)
    try:
        ref = torch.as_tensor(reference, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise HypercoreTypeError(
            f"reference: expected an (m,) sequence of numbers, got {type_name(reference)} ({err})"
        ) from None
    m = p.shape[1]
    if m not in (2, 3):
        raise ShapeError(
            f"points: hypervolume is implemented for 2 or 3 objectives, got shape "
            f"{shape_str(p.shape)} ({m} objectives)"
        )
    if ref.shape != (m,):
        raise ShapeError(
            f"reference: expected shape ({m},) to match points {shape_str(p.shape)}, "
            f"got {shape_str(ref.shape)}"
        )
    if not bool(torch.isfinite(ref).all()):
        raise HypercoreError(f"reference: expected finite values, got {ref.tolist()}")
    inside = p[(p < ref).all(1)]
    if inside.shape[0] == 0:
        return 0.0
    r = tuple(float(v) for v in ref)
    if m == 2:
        return _hv2([(float(a), float(b)) for a, b in inside.tolist()], (r[0], r[1]))
    rows = sorted((float(c), float(a), float(b)) for a, b, c in inside.tolist())
    volume = 0.0
    for i, (z, _, _) in enumerate(rows):
        upper = rows[i + 1][0] if i + 1 < len(rows) else r[2]
        if upper > z:
            slab = [(a, b) for _, a, b in rows[: i + 1]]
            volume += _hv2(slab, (r[0], r[1])) * (upper - z)
    return volume


# --------------------------------------------------------------------------- rays


def dirichlet_rays(
    n: int, num_objectives: int = 2, alpha: float = 0.2, seed: int = 0
) -> torch.Tensor:
    r"""``n`` preference rays drawn from a symmetric Dirichlet :math:`\mathrm{Dir}(\alpha)`.

    PHN draws one ray per training step with :math:`\alpha = 0.2` (mass near
    the corners of the simplex as well as inside). Drawn with NumPy's
    generator seeded by ``seed``, so a run is reproducible whatever torch's
    global state.

    Returns:
        ``(n, num_objectives)`` float32 tensor, rows on the simplex.
    """
    import numpy as np

    n = check_positive_int("n", n)
    num_objectives = check_int("num_objectives", num_objectives, minimum=2)
    alpha = check_float("alpha", alpha, low=0.0, low_open=True)
    rays = np.random.default_rng(seed).dirichlet([alpha] * num_objectives, size=n)
    rays = np.clip(rays, 0.0, None)
    rays = rays / rays.sum(axis=1, keepdims=True)
    return torch.as_tensor(rays, dtype=torch.float32)


def circle_rays(k: int, min_angle: float = 0.1, max_angle: float | None = None) -> torch.Tensor:
    r"""``k`` evenly spread rays for two objectives (PHN's test rays).

    Angles :math:`\varphi_i` evenly spaced in ``[min_angle, max_angle]`` (default
    :math:`[0.1, \pi/2 - 0.1]`), each direction :math:`(\cos\varphi_i,
    \sin\varphi_i)` normalised to sum 1. ``k = 1`` gives the middle angle.

    Returns:
        ``(k, 2)`` float32 tensor; the first ray weighs objective 1 most.
    """
    k = check_positive_int("k", k)
    max_angle = math.pi / 2 - min_angle if max_angle is None else max_angle
    low = check_float("min_angle", min_angle, low=0.0)
    high = check_float("max_angle", max_angle, high=math.pi / 2)
    if not high >= low:
        raise HypercoreError(f"max_angle: expected >= min_angle ({low}), got {high}")
    angles = (
        torch.linspace(low, high, k, dtype=torch.float64)
        if k > 1
        else torch.tensor([(low + high) / 2], dtype=torch.float64)
    )
    rays = torch.stack([angles.cos(), angles.sin()], dim=1)
    return (rays / rays.sum(1, keepdim=True)).float()


def linear_scalarization(losses: torch.Tensor, ray: torch.Tensor) -> torch.Tensor:
    r"""The weighted sum :math:`\sum_j r_j \ell_j` (PHN-LS's objective).

    Args:
        losses: ``(m,)`` loss vector (or ``(..., m)``: one per row).
        ray: ``(m,)`` preference (or ``(..., m)`` matching ``losses``).

    Returns:
        ``losses @ ray`` over the last dimension: a scalar for ``(m,)`` inputs.
    """
    for name, value in (("losses", losses), ("ray", ray)):
        if not isinstance(value, torch.Tensor):
            raise HypercoreTypeError(f"{name}: expected a torch.Tensor, got {type_name(value)}")
        if value.dim() == 0:
            raise ShapeError(f"{name}: expected shape (m,) or (..., m), got a 0-d tensor")
    if losses.shape[-1] != ray.shape[-1]:
        raise ShapeError(
            f"ray: expected {losses.shape[-1]} weights (one per objective in losses "
            f"{shape_str(losses.shape)}), got {shape_str(ray.shape)}"
        )
    return (losses * ray.to(losses.dtype)).sum(-1)


# --------------------------------------------------------------------------- training

#: ``objectives(output, *targets) -> (m,) loss vector`` for one batch.
Objectives = Callable[..., torch.Tensor]


def objective_losses(num_classes: Sequence[int]) -> Objectives:
    """Objectives for a network whose output concatenates one logit block per label.

    Args:
        num_classes: classes per objective, e.g. ``(10, 10)``: the output's first
            10 columns score label 0, the next 10 label 1.

    Returns:
        ``objectives(logits, y) -> (m,)``: the cross-entropy of each label, ``y``
        of shape ``(B, m)`` (int64). Logits with a leading ray dimension
        ``(K, B, C)`` (from ``forward_sets``) give ``(K, m)``.
    """
    sizes = [check_positive_int("num_classes", c) for c in num_classes]
    if len(sizes) < 2:
        raise HypercoreError(f"num_classes: expected at least 2 objectives, got {sizes}")
    total = sum(sizes)

    def objectives(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != total:
            raise ShapeError(
                f"logits: expected {total} columns ({' + '.join(map(str, sizes))}), "
                f"got {shape_str(logits.shape)}"
            )
        if y.dim() != 2 or y.shape[1] != len(sizes) or y.shape[0] != logits.shape[-2]:
            raise ShapeError(
                f"y: expected shape (B={logits.shape[-2]}, {len(sizes)}), got {shape_str(y.shape)}"
            )
        blocks = torch.split(logits, sizes, dim=-1)
        out = []
        for j, block in enumerate(blocks):
            flat = block.reshape(-1, block.shape[-1])
            target = y[:, j].expand(*block.shape[:-1]).reshape(-1)
            loss = nn.functional.cross_entropy(flat, target, reduction="none")
            out.append(loss.view(block.shape[:-1]).mean(-1))
        return torch.stack(out, dim=-1)

    return objectives


def train_scalarized(
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    parameters: Sequence[nn.Parameter] | Any,
    objectives: Objectives,
    data: Sequence[torch.Tensor],
    rays: torch.Tensor,
    *,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> torch.Tensor:
    r"""Adam on :math:`\sum_j r^{(t)}_j \ell_j`, one step per row of ``rays``.

    The one training loop of the chapter: a Pareto hypernetwork gets a fresh
    ray per step (``rays = dirichlet_rays(steps)``, ``forward = hnet``); a
    network trained for one preference gets that ray repeated
    (``rays = ray.expand(steps, -1)``, ``forward = lambda x, r: net(x)``). Both
    then take the same number of steps on the same kind of batches.

    Args:
        forward: ``forward(x, ray) -> output`` for a batch ``x`` and an ``(m,)`` ray.
        parameters: what Adam optimises.
        objectives: ``objectives(output, *targets) -> (m,)`` losses of the batch.
        data: ``(x, *targets)`` tensors with the same first dimension, on the
            training device.
        rays: ``(steps, m)``, one ray per step (moved to the data's device).
        batch_size: samples per step; batches are drawn without replacement
            within an epoch from a generator seeded by ``seed``.
        lr: Adam's learning rate.
        weight_decay: decoupled weight decay (AdamW) when > 0.
        seed: seed of the batch order.

    Returns:
        ``(steps, m)`` training losses (detached, on the CPU).
    """
    if not isinstance(rays, torch.Tensor) or rays.dim() != 2:
        raise ShapeError(
            f"rays: expected a (steps, m) tensor, got "
            f"{shape_str(rays.shape) if isinstance(rays, torch.Tensor) else type_name(rays)}"
        )
    if len(data) < 1 or not all(isinstance(t, torch.Tensor) for t in data):
        raise HypercoreTypeError("data: expected a sequence of tensors (x, *targets)")
    n = data[0].shape[0]
    if any(t.shape[0] != n for t in data):
        raise ShapeError(
            f"data: expected tensors with the same first dimension, got "
            f"{[shape_str(t.shape) for t in data]}"
        )
    batch_size = check_positive_int("batch_size", batch_size)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    weight_decay = check_float("weight_decay", weight_decay, low=0.0)
    params = list(parameters)
    if not params:
        raise HypercoreError("parameters: expected at least one parameter to optimise, got none")
    device = data[0].device
    rays = rays.to(device)
    optimizer = (
        torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        if weight_decay > 0
        else torch.optim.Adam(params, lr=lr)
    )
    generator = torch.Generator(device="cpu").manual_seed(seed)
    history = torch.empty(rays.shape[0], rays.shape[1])
    order, position = torch.randperm(n, generator=generator), 0
    for step in range(rays.shape[0]):
        if position + batch_size > n:
            order, position = torch.randperm(n, generator=generator), 0
        index = order[position : position + batch_size].to(device)
        position += batch_size
        batch = [t[index] for t in data]
        losses = objectives(forward(batch[0], rays[step]), *batch[1:])
        if losses.shape != rays.shape[1:]:
            raise ShapeError(
                f"objectives: expected a ({rays.shape[1]},) loss vector, got "
                f"{shape_str(losses.shape)}"
            )
        loss = linear_scalarization(losses, rays[step])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history[step] = losses.detach().cpu()
    return history


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class MultiLabelSplit:
    """Images with several labels each (one objective per label).

    Attributes:
        x_train, x_val, x_test: ``(n, features)`` float32 (``x_val`` may have 0 rows).
        y_train, y_val, y_test: ``(n, m)`` int64, column ``j`` the label of objective ``j``.
        info: how the data was built.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    info: dict

    def to(self, device: str | torch.device) -> MultiLabelSplit:
        """A copy with every tensor on ``device``."""
        return MultiLabelSplit(
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_val=self.x_val.to(device),
            y_val=self.y_val.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
            info=self.info,
        )


def overlapping_digits(
    n_train: int = 6000,
    n_val: int = 0,
    n_test: int = 2000,
    shift: int = 3,
    seed: int = 0,
) -> MultiLabelSplit:
    """A Multi-MNIST-like problem from scikit-learn's 8x8 digits (no download).

    Construction: the 1,797 digits are split (stratified, by ``seed``) into
    disjoint pools, 60% for training, 15% for validation and 25% for testing
    (without validation pairs, 75% / 25%), so no validation or test image
    shares a digit with a training image. Each image puts one digit of its pool
    at the top left and another at the bottom right of an ``(8 + shift)``-pixel
    square canvas and keeps the brighter pixel where they overlap (an
    ``(8 - shift)``-pixel square); pixels are scaled to [0, 1], then standardised
    with the training images' mean and standard deviation. The two labels are
    the two digits' classes (top left first), drawn independently (pairs drawn
    with NumPy's generator seeded by ``seed``).

    Returns:
        A :class:`MultiLabelSplit` with ``(n, (8 + shift)**2)`` images and ``(n, 2)`` labels.
    """
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    n_train, n_test = check_positive_int("n_train", n_train), check_positive_int("n_test", n_test)
    n_val = check_int("n_val", n_val, minimum=0)
    shift = check_int("shift", shift, minimum=0)
    if shift > 8:
        raise HypercoreError(f"shift: expected 0..8 (how far the second digit moves), got {shift}")
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    labels = digits.target.astype(np.int64)
    index = np.arange(len(labels))
    pool_train, pool_test = train_test_split(
        index, test_size=0.25, random_state=seed, stratify=labels
    )
    pool_val = pool_train[:0]
    if n_val:
        pool_train, pool_val = train_test_split(
            pool_train, test_size=0.2, random_state=seed, stratify=labels[pool_train]
        )
    rng = np.random.default_rng(seed)
    side = 8 + shift

    def compose(pool: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n == 0:
            return np.zeros((0, side * side), np.float32), np.zeros((0, 2), np.int64)
        first, second = rng.choice(pool, size=n), rng.choice(pool, size=n)
        canvas = np.zeros((n, side, side), dtype=np.float32)
        canvas[:, :8, :8] = images[first]
        canvas[:, shift:, shift:] = np.maximum(canvas[:, shift:, shift:], images[second])
        return canvas.reshape(n, -1), np.stack([labels[first], labels[second]], axis=1)

    x_tr, y_tr = compose(pool_train, n_train)
    x_va, y_va = compose(pool_val, n_val)
    x_te, y_te = compose(pool_test, n_test)
    mean, std = x_tr.mean(0), x_tr.std(0)
    std[std == 0] = 1.0
    x_tr, x_va, x_te = ((x - mean) / std for x in (x_tr, x_va, x_te))
    return MultiLabelSplit(
        x_train=torch.as_tensor(x_tr),
        y_train=torch.as_tensor(y_tr),
        x_val=torch.as_tensor(x_va),
        y_val=torch.as_tensor(y_va),
        x_test=torch.as_tensor(x_te),
        y_test=torch.as_tensor(y_te),
        info={
            "canvas": f"{side}x{side}",
            "overlap": f"{max(0, 8 - shift)}x{max(0, 8 - shift)}",
            "training digits": len(pool_train),
            "validation digits": len(pool_val),
            "test digits": len(pool_test),
            "pairs (train / val / test)": f"{n_train} / {n_val} / {n_test}",
        },
    )
