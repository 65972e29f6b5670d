r"""White-box attacks for stochastic and deterministic models: FGSM, PGD and EOT.

All attacks work on a **per-example loss** ``loss_fn(x, y) -> (B,)`` (a closure
over the model: a plain network's cross-entropy, or a hypernetwork's
cross-entropy under freshly drawn weights), so the gradient flows through
whatever the model computes, including the weights a hypernetwork generates.

EOT (expectation over transformation, Athalye et al., 2018)
    A stochastic model has a random loss :math:`\ell(x, y; \theta)`,
    :math:`\theta \sim q`. Attacking one draw follows noise; EOT follows the
    gradient of the *expected* loss, estimated by averaging over :math:`S`
    independent calls (each drawing its own randomness):

    .. math:: g(x) = \frac1S \sum_{s=1}^S \nabla_x \sum_b \ell(x_b, y_b; \theta_s).

    :func:`eot_gradient`; with a deterministic loss and ``samples=1`` it is the
    plain input gradient.

FGSM (Goodfellow et al., 2015)
    One step of size :math:`\epsilon` along the gradient's sign, projected back
    onto the valid input range :math:`[l, h]` (``bounds``):

    .. math:: x' = \mathrm{clip}_{[l, h]}\big(x + \epsilon\, \mathrm{sign}(g(x))\big).

PGD (Madry et al., 2018), :math:`L_\infty`
    From a uniform random start in the :math:`\epsilon`-ball, ``steps`` signed
    gradient steps of size :math:`\alpha` (default :math:`2.5\,\epsilon /
    \text{steps}`, Madry et al.'s choice), each followed by the projection onto
    the ball and the input range:

    .. math:: x^{t+1} = \Pi_{B_\infty(x, \epsilon) \cap [l, h]^d}
        \big(x^t + \alpha\, \mathrm{sign}(g(x^t))\big).

    With ``restarts > 1`` every example keeps the restart with the highest loss.

:func:`fit_adversarial` trains any model on attacked batches (Madry et al.'s
adversarial training when the attack is PGD), or on clean ones without an
attack, with the batches of :func:`hypercore.fit` for the same ``seed``.

Only torch (and hypercore) is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_positive_int,
    check_tensor,
    shape_str,
)

#: ``loss_fn(x, y)``: per-example losses ``(B,)`` of inputs ``(B, ...)`` and labels ``(B,)``.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``attack(x, y)``: adversarial inputs of the shape of ``x``.
Attack = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_bounds(bounds: Sequence[float]) -> tuple[float, float]:
    if len(bounds) != 2:
        raise HypercoreError(f"bounds: expected (low, high), got {bounds!r}")
    low = check_float("bounds[0]", bounds[0])
    high = check_float("bounds[1]", bounds[1])
    if not low < high:
        raise HypercoreError(f"bounds: expected low < high, got ({low}, {high})")
    return low, high


def _check_xy(x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    xs = check_tensor("x", x)
    ys = check_tensor("y", y)
    if xs.dim() < 1 or ys.dim() != 1 or ys.shape[0] != xs.shape[0]:
        raise ShapeError(
            f"y: expected labels of shape ({xs.shape[0] if xs.dim() else 'B'},) for x of shape "
            f"{shape_str(xs.shape)}, got {shape_str(ys.shape)}"
        )
    if not xs.is_floating_point():
        raise HypercoreTypeError(f"x: expected a floating-point tensor, got dtype {xs.dtype}")
    return xs, ys


def _losses(loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = loss_fn(x, y)
    if not isinstance(out, torch.Tensor) or out.shape != (x.shape[0],):
        got = shape_str(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeError(
            f"loss_fn: expected per-example losses of shape ({x.shape[0]},), got {got}"
        )
    return out


def eot_gradient(
    loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor, samples: int = 1
) -> torch.Tensor:
    r"""The input gradient of the summed per-example loss, averaged over ``samples`` calls.

    Each call of ``loss_fn`` draws its own randomness (a stochastic model's
    weights), so this is the EOT estimate :math:`\frac1S\sum_s \nabla_x \sum_b
    \ell_s(x_b, y_b)` (module docstring). Shapes: ``x`` ``(B, ...)``, ``y``
    ``(B,)`` -> ``(B, ...)``. ``x`` itself is not modified and needs no grad.
    """
    xs, ys = _check_xy(x, y)
    s = check_positive_int("samples", samples)
    total = torch.zeros_like(xs)
    for _ in range(s):
        xg = xs.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = _losses(loss_fn, xg, ys).sum()
            (grad,) = torch.autograd.grad(loss, xg)
        total += grad
    return total / s


def fgsm(
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    eot_samples: int = 1,
    bounds: Sequence[float] = (0.0, 1.0),
) -> torch.Tensor:
    r"""The fast gradient sign method: :math:`\mathrm{clip}(x + \epsilon\,\mathrm{sign}(g))`.

    Args:
        loss_fn: per-example losses ``(B,)`` (:data:`LossFn`).
        x, y: inputs ``(B, ...)`` inside ``bounds`` and labels ``(B,)``.
        eps: the :math:`L_\infty` budget :math:`\epsilon \ge 0`.
        eot_samples: gradient calls averaged per step (EOT; 1 for deterministic models).
        bounds: the valid input range ``(low, high)``.

    Returns:
        Adversarial inputs ``(B, ...)``, detached.
    """
    xs, ys = _check_xy(x, y)
    eps = check_float("eps", eps, low=0.0)
    low, high = _check_bounds(bounds)
    grad = eot_gradient(loss_fn, xs, ys, eot_samples)
    return (xs.detach() + eps * grad.sign()).clamp(low, high).detach()


def pgd(
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 20,
    step_size: float | None = None,
    random_start: bool = True,
    restarts: int = 1,
    eot_samples: int = 1,
    bounds: Sequence[float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Projected gradient descent in the :math:`L_\infty` ball (Madry et al., 2018).

    Args:
        loss_fn: per-example losses ``(B,)`` (:data:`LossFn`).
        x, y: inputs ``(B, ...)`` inside ``bounds`` and labels ``(B,)``.
        eps: the :math:`L_\infty` budget :math:`\epsilon \ge 0`.
        steps: gradient steps per restart.
        step_size: :math:`\alpha`; default ``2.5 * eps / steps``.
        random_start: start from a uniform draw in the ball (else from ``x``).
        restarts: independent runs; each example keeps the one of highest loss
            (the loss averaged over ``eot_samples`` calls).
        eot_samples: gradient calls averaged per step (EOT).
        bounds: the valid input range ``(low, high)``.
        generator: a CPU generator for the random starts (reproducible attacks).

    Returns:
        Adversarial inputs ``(B, ...)`` with :math:`\|x' - x\|_\infty \le \epsilon`
        and every entry in ``bounds``, detached.
    """
    xs, ys = _check_xy(x, y)
    eps = check_float("eps", eps, low=0.0)
    n_steps = check_positive_int("steps", steps)
    n_restarts = check_positive_int("restarts", restarts)
    check_positive_int("eot_samples", eot_samples)
    alpha = (
        2.5 * eps / n_steps if step_size is None else check_float("step_size", step_size, low=0.0)
    )
    low, high = _check_bounds(bounds)
    x0 = xs.detach()
    best = x0.clone()
    best_loss = torch.full((x0.shape[0],), -torch.inf, device=x0.device)
    for _ in range(n_restarts):
        if random_start and eps > 0:
            noise = torch.rand(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
            adv = (x0 + (2 * noise - 1) * eps).clamp(low, high)
        else:
            adv = x0.clone()
        for _ in range(n_steps):
            grad = eot_gradient(loss_fn, adv, ys, eot_samples)
            adv = adv + alpha * grad.sign()
            adv = torch.min(torch.max(adv, x0 - eps), x0 + eps).clamp(low, high).detach()
        if n_restarts == 1:
            return adv
        with torch.no_grad():
            loss = sum(_losses(loss_fn, adv, ys) for _ in range(eot_samples)) / eot_samples
        better = loss > best_loss
        shape = (-1,) + (1,) * (x0.dim() - 1)
        best = torch.where(better.view(shape), adv, best)
        best_loss = torch.where(better, loss, best_loss)
    return best.detach()


def accuracy(
    predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> float:
    """Share of ``argmax(predict(x), -1) == y``; ``predict`` gives scores ``(B, C)``
    (logits or probabilities), evaluated without gradients."""
    xs, ys = _check_xy(x, y)
    with torch.no_grad():
        scores = predict(xs)
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2 or scores.shape[0] != xs.shape[0]:
        got = shape_str(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ShapeError(f"predict: expected scores of shape ({xs.shape[0]}, C), got {got}")
    return float((scores.argmax(-1) == ys).float().mean())


def fit_adversarial(
    train_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    parameters: Sequence[torch.nn.Parameter],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    attack: Attack | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    r"""Adam on ``train_loss`` over attacked (or, with ``attack=None``, clean) batches.

    Each step takes a batch :math:`(x_b, y_b)`, replaces :math:`x_b` by
    ``attack(x_b, y_b)`` (PGD: Madry et al.'s adversarial training,
    :math:`\min_\phi \mathbb E \max_{\|\delta\|_\infty \le \epsilon} \ell(x + \delta, y;
    \phi)`), and takes one Adam step on ``train_loss(x_adv, y_b)`` (a scalar).
    The batches are those of :func:`hypercore.fit` with the same ``seed`` and
    ``batch_size`` (a fresh permutation per epoch from a CPU generator), so
    methods trained with the same seed see the same batches in the same order.

    Returns:
        The mean training loss of each epoch.
    """
    xs, ys = _check_xy(x, y)
    n_epochs = check_positive_int("epochs", epochs)
    bs = check_positive_int("batch_size", batch_size)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise HypercoreError("parameters: expected at least one trainable parameter, got none")
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    n = xs.shape[0]
    history: list[float] = []
    for _ in range(n_epochs):
        order = torch.randperm(n, generator=generator).to(xs.device)
        total, count = 0.0, 0
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            xb, yb = xs[idx], ys[idx]
            if attack is not None:
                xb = attack(xb, yb).detach()
            loss = train_loss(xb, yb)
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                raise ShapeError("train_loss: expected a scalar tensor")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            count += 1
        history.append(total / count)
    return history
