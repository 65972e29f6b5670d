r"""Treatment-effect estimation: HyperITE, TARNet, meta-learners, synthetic data and metrics.

Potential outcomes (binary treatment)
    A unit has covariates :math:`x \in \mathbb{R}^d`, a treatment :math:`t \in \{0, 1\}`
    and potential outcomes :math:`Y(0), Y(1)`; only the factual :math:`y = Y(t)` is
    observed. The conditional average treatment effect (CATE) is
    :math:`\tau(x) = \mu_1(x) - \mu_0(x)` with :math:`\mu_t(x) = E[Y(t) \mid x]`.
    Every neural model here maps ``x`` of shape ``(B, d)`` to both potential-outcome
    predictions, shape ``(2, B)`` (row ``t`` is :math:`\hat\mu_t`), is trained on the
    factual squared error :math:`\frac1n\sum_i (\hat\mu_{t_i}(x_i) - y_i)^2`
    (:func:`factual_mse`, :func:`fit_outcome_model`), and estimates
    :math:`\hat\tau = \hat\mu_1 - \hat\mu_0` (:func:`cate`).

HyperITE (:class:`HyperITE`; Chauhan et al., 2024)
    The HyperTLearner variant: each arm's outcome network is an MLP
    :math:`f(x; \theta_t)` whose weights are written by one hypernetwork from a learned
    embedding of the treatment, :math:`\theta_t = h_\phi(e_t)`, so the two arms share
    :math:`\phi` (soft weight sharing) and both arms' data train it.

TARNet (:class:`TARNet`; Shalit et al., 2017)
    A shared representation :math:`\Phi(x)` and one head per arm,
    :math:`\hat\mu_t(x) = g_t(\Phi(x))` (hard sharing; no balancing penalty).

Meta-learners (:func:`fit_meta_learner`; Künzel et al., 2019), on any scikit-learn regressor
    S: one model :math:`\hat\mu(x, t)`; T: one model per arm; X: the T-learner's
    models, imputed effects :math:`D^1_i = y_i - \hat\mu_0(x_i)` (treated),
    :math:`D^0_i = \hat\mu_1(x_i) - y_i` (controls), one model :math:`\hat\tau_t` per
    arm on them, combined with a propensity :math:`\hat e(x)` (logistic regression):
    :math:`\hat\tau = \hat e\,\hat\tau_0 + (1 - \hat e)\,\hat\tau_1`.

Metrics
    :math:`\mathrm{PEHE} = \sqrt{\frac1n\sum_i (\hat\tau(x_i) - \tau(x_i))^2}` (:func:`pehe`)
    and :math:`|\hat{\mathrm{ATE}} - \mathrm{ATE}|` with both averaged over the
    evaluation units (:func:`ate_error`).

Data (:func:`simulate`): setups A, C and D of Nie & Wager (2021), which know
:math:`\mu_0, \mu_1` exactly. Only torch is imported at module level; NumPy and
scikit-learn are imported inside :func:`fit_meta_learner`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_choice,
    check_float,
    check_int,
    check_positive_int,
    shape_str,
)
from hypercore.hypernetwork import HyperNetwork
from hypercore.inputs import TaskEmbedding

__all__ = [
    "SETUPS",
    "CausalData",
    "HyperITE",
    "MetaLearner",
    "TARNet",
    "ate_error",
    "cate",
    "factual_mse",
    "fit_meta_learner",
    "fit_outcome_model",
    "mlp",
    "num_params",
    "pehe",
    "simulate",
]

#: The simulation setups of :func:`simulate` (Nie & Wager, 2021, Section 6).
SETUPS = ("A", "C", "D")


@dataclass(frozen=True)
class CausalData:
    """A simulated observational data set; every field is a float tensor of length ``n``
    except ``x`` ``(n, d)``. ``mu0``, ``mu1`` (hence ``tau``) and ``e`` are the truth."""

    x: torch.Tensor
    t: torch.Tensor
    y: torch.Tensor
    mu0: torch.Tensor
    mu1: torch.Tensor
    e: torch.Tensor

    @property
    def tau(self) -> torch.Tensor:
        """The true CATE at each unit, ``mu1 - mu0``, shape ``(n,)``."""
        return self.mu1 - self.mu0

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: torch.Tensor) -> CausalData:
        """The units at ``index`` (a long tensor or a boolean mask)."""
        return CausalData(*(getattr(self, f)[index] for f in ("x", "t", "y", "mu0", "mu1", "e")))


def simulate(setup: str, n: int, d: int = 6, sigma: float = 0.5, seed: int = 0) -> CausalData:
    r"""``n`` units of setup ``"A"``, ``"C"`` or ``"D"`` of Nie & Wager (2021).

    Outcomes are :math:`y = b(x) + (t - \tfrac12)\tau(x) + \sigma\varepsilon`, so
    :math:`\mu_t = b + (t - \frac12)\tau`, and :math:`t \sim \mathrm{Bernoulli}(e(x))`:

    * **A** (confounded; complicated baseline, simple effect): :math:`x \sim U[0,1]^d`,
      :math:`e = \mathrm{clip}(\sin(\pi x_1x_2), 0.1, 0.9)`,
      :math:`b = \sin(\pi x_1 x_2) + 2(x_3-\frac12)^2 + x_4 + \frac12 x_5`,
      :math:`\tau = (x_1 + x_2)/2`.
    * **C** (confounded; hard baseline, constant effect): :math:`x \sim N(0, I_d)`,
      :math:`e = 1/(1+e^{x_2+x_3})`, :math:`b = 2\log(1+e^{x_1+x_2+x_3})`, :math:`\tau = 1`.
    * **D** (confounded; unrelated arms, complex effect): :math:`x \sim N(0, I_d)`,
      :math:`e = 1/(1+e^{-x_1}+e^{-x_2})`,
      :math:`b = (\max(x_1{+}x_2{+}x_3, 0) + \max(x_4{+}x_5, 0))/2`,
      :math:`\tau = \max(x_1{+}x_2{+}x_3, 0) - \max(x_4{+}x_5, 0)`.

    Args:
        setup: ``"A"``, ``"C"`` or ``"D"``.
        n: number of units (>= 2).
        d: number of covariates (>= 5; the extra ones are noise).
        sigma: noise standard deviation (>= 0).
        seed: seeds a private generator (the global RNG is untouched).
    """
    check_choice("setup", setup, SETUPS)
    n = check_int("n", n, 2)
    d = check_int("d", d, 5)
    sigma = check_float("sigma", sigma, low=0.0)
    g = torch.Generator().manual_seed(int(seed))
    if setup == "A":
        x = torch.rand(n, d, generator=g)
        s = torch.sin(math.pi * x[:, 0] * x[:, 1])
        e = s.clamp(0.1, 0.9)
        b = s + 2 * (x[:, 2] - 0.5) ** 2 + x[:, 3] + 0.5 * x[:, 4]
        tau = (x[:, 0] + x[:, 1]) / 2
    else:
        x = torch.randn(n, d, generator=g)
        if setup == "C":
            e = 1 / (1 + torch.exp(x[:, 1] + x[:, 2]))
            b = 2 * torch.log1p(torch.exp(x[:, 0] + x[:, 1] + x[:, 2]))
            tau = torch.ones(n)
        else:
            e = 1 / (1 + torch.exp(-x[:, 0]) + torch.exp(-x[:, 1]))
            r1 = (x[:, 0] + x[:, 1] + x[:, 2]).clamp(min=0)
            r2 = (x[:, 3] + x[:, 4]).clamp(min=0)
            b, tau = (r1 + r2) / 2, r1 - r2
    t = (torch.rand(n, generator=g) < e).float()
    mu0, mu1 = b - 0.5 * tau, b + 0.5 * tau
    y = torch.where(t > 0, mu1, mu0) + sigma * torch.randn(n, generator=g)
    return CausalData(x, t, y, mu0, mu1, e)


# --------------------------------------------------------------------------- neural models


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """``in_dim -> hidden... -> out_dim`` with ELU between layers (none after the last)."""
    dims = (check_positive_int("in_dim", in_dim), *hidden, check_positive_int("out_dim", out_dim))
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


def num_params(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _check_x(x: Any, in_dim: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise HypercoreTypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != in_dim:
        raise ShapeError(f"x: expected shape (B, {in_dim}), got {shape_str(x.shape)}")
    return x


class TARNet(nn.Module):
    r"""TARNet: :math:`\hat\mu_t(x) = g_t(\Phi(x))`, shared :math:`\Phi`, a head per arm.

    Args:
        in_dim: covariates ``d``.
        width: width of the representation's two layers and of each head's hidden layer.

    ``forward(x)``: ``(B, d)`` -> ``(2, B)``.
    """

    def __init__(self, in_dim: int, width: int) -> None:
        super().__init__()
        self.in_dim = check_positive_int("in_dim", in_dim)
        width = check_positive_int("width", width)
        self.phi = nn.Sequential(mlp(in_dim, (width,), width), nn.ELU())
        self.heads = nn.ModuleList([mlp(width, (width,), 1) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.phi(_check_x(x, self.in_dim))
        return torch.stack([h(r).squeeze(-1) for h in self.heads])


class HyperITE(nn.Module):
    r"""HyperTLearner: each arm's outcome MLP written by a treatment-conditioned hypernetwork.

    :math:`\hat\mu_t(x) = f(x;\ h_\phi(e_t))`, :math:`t \in \{0, 1\}`: a learned
    embedding :math:`e_t \in \mathbb{R}^E` per arm (:class:`~hypercore.TaskEmbedding`),
    an MLP body and a ``once`` head (:meth:`hypercore.HyperNetwork.build`) that writes
    all weights of the target MLP ``d -> hidden -> hidden -> 1`` (ELU). Both arms run
    in one call (:meth:`~hypercore.HyperNetwork.forward_sets`).

    Args:
        in_dim: covariates ``d``.
        hidden: width of the target MLP's two hidden layers.
        embedding_dim: ``E``.
        body_hidden: the hypernetwork body's hidden widths.

    ``forward(x)``: ``(B, d)`` -> ``(2, B)``.
    """

    def __init__(
        self, in_dim: int, hidden: int, embedding_dim: int = 8, body_hidden: tuple[int, ...] = (8,)
    ) -> None:
        super().__init__()
        self.in_dim = check_positive_int("in_dim", in_dim)
        hidden = check_positive_int("hidden", hidden)
        target = mlp(in_dim, (hidden, hidden), 1)
        self.hnet = HyperNetwork.build(
            target,
            TaskEmbedding(2, check_positive_int("embedding_dim", embedding_dim)),
            head="once",
            body_hidden=tuple(body_hidden),
            gain=1.0,
        )
        self.register_buffer("arms", torch.arange(2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.hnet.forward_sets(_check_x(x, self.in_dim), self.arms)
        return out.squeeze(-1)


def _check_factual(mu: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> None:
    if mu.dim() != 2 or mu.shape[0] != 2:
        raise ShapeError(f"mu: expected shape (2, B), got {shape_str(mu.shape)}")
    for name, v in (("t", t), ("y", y)):
        if v.shape != mu.shape[1:]:
            raise ShapeError(
                f"{name}: expected shape ({mu.shape[1]},) to match mu {shape_str(mu.shape)}, "
                f"got {shape_str(v.shape)}"
            )


def factual_mse(mu: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r""":math:`\frac1B\sum_i (\mu_{t_i, i} - y_i)^2`: the error on the observed arm only.

    Args:
        mu: ``(2, B)`` potential-outcome predictions.
        t: ``(B,)`` treatments in {0, 1} (any dtype).
        y: ``(B,)`` factual outcomes.
    """
    _check_factual(mu, t, y)
    factual = mu.gather(0, t.long().unsqueeze(0)).squeeze(0)
    return ((factual - y) ** 2).mean()


def cate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\hat\tau(x) = \hat\mu_1(x) - \hat\mu_0(x)`, shape ``(B,)``, without gradients."""
    with torch.no_grad():
        mu = model(x)
    return mu[1] - mu[0]


def fit_outcome_model(
    model: nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    weight_decay: float = 0.0,
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    eval_every: int = 25,
) -> dict[str, Any]:
    """Full-batch Adam on :func:`factual_mse` for ``steps`` steps (the same for every model).

    With ``val = (x_val, t_val, y_val)``, the factual validation error is measured every
    ``eval_every`` steps and the model is left at the best of these checkpoints (early
    stopping chosen on factual outcomes only: the true effects are never read).

    Returns:
        a dict: ``"losses"``, every step's training loss; ``"val_mse"``, the best
        validation error (nan without ``val``); ``"best_step"``, its step (``steps``
        without ``val``).
    """
    steps = check_positive_int("steps", steps)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    weight_decay = check_float("weight_decay", weight_decay, low=0.0)
    eval_every = check_positive_int("eval_every", eval_every)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses: list[float] = []
    best, best_step, best_state = math.inf, steps, None

    def evaluate(step: int) -> None:
        nonlocal best, best_step, best_state
        if val is None:
            return
        model.eval()
        with torch.no_grad():
            err = float(factual_mse(model(val[0]), val[1], val[2]))
        model.train()
        if err < best:
            best, best_step = err, step
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model.train()
    for step in range(1, steps + 1):
        loss = factual_mse(model(x), t, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step % eval_every == 0 or step == steps:
            evaluate(step)
    if not math.isfinite(losses[-1]):
        raise HypercoreError(f"fit_outcome_model: the loss diverged (lr={lr}); try a smaller lr")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {
        "losses": losses,
        "val_mse": best if val is not None else math.nan,
        "best_step": best_step,
    }


# --------------------------------------------------------------------------- metrics


def _pair(tau_hat: torch.Tensor, tau: torch.Tensor) -> None:
    if tau_hat.shape != tau.shape or tau.dim() != 1:
        raise ShapeError(
            f"tau_hat: expected the shape of tau, a vector {shape_str(tau.shape)}, "
            f"got {shape_str(tau_hat.shape)}"
        )


def pehe(tau_hat: torch.Tensor, tau: torch.Tensor) -> float:
    r"""Precision in estimating heterogeneous effects (PEHE).

    :math:`\sqrt{\mathrm{mean}_i(\hat\tau_i - \tau_i)^2}`.

    Args:
        tau_hat: ``(n,)`` estimated effects; tau: ``(n,)`` true effects.
    """
    _pair(tau_hat, tau)
    return float(((tau_hat - tau) ** 2).mean().sqrt())


def ate_error(tau_hat: torch.Tensor, tau: torch.Tensor) -> float:
    r""":math:`|\mathrm{mean}(\hat\tau) - \mathrm{mean}(\tau)|` over the same units."""
    _pair(tau_hat, tau)
    return float((tau_hat.mean() - tau.mean()).abs())


# --------------------------------------------------------------------------- meta-learners


@dataclass
class MetaLearner:
    """A fitted S-, T- or X-learner (:func:`fit_meta_learner`).

    ``outcomes(x)`` -> ``(2, B)`` predicted potential outcomes (the first-stage models:
    what the factual validation error scores); ``cate(x)`` -> ``(B,)``.
    """

    kind: str
    outcome_fn: Callable[[torch.Tensor], torch.Tensor]
    cate_fn: Callable[[torch.Tensor], torch.Tensor]

    def outcomes(self, x: torch.Tensor) -> torch.Tensor:
        return self.outcome_fn(x)

    def cate(self, x: torch.Tensor) -> torch.Tensor:
        return self.cate_fn(x)


def fit_meta_learner(
    kind: str,
    make_regressor: Callable[[], Any],
    x: torch.Tensor,
    t: torch.Tensor,
    y: torch.Tensor,
) -> MetaLearner:
    """Fit an ``"S"``, ``"T"`` or ``"X"`` learner (Künzel et al., 2019) on factual data.

    Args:
        kind: ``"S"``, ``"T"`` or ``"X"``.
        make_regressor: returns a fresh scikit-learn regressor (``fit``/``predict``).
        x: ``(n, d)`` covariates; t: ``(n,)`` treatments in {0, 1}; y: ``(n,)`` outcomes.

    The X-learner's propensity model is scikit-learn's ``LogisticRegression``.
    """
    import numpy as np

    check_choice("kind", kind, ("S", "T", "X"))
    if x.dim() != 2 or t.shape != (x.shape[0],) or y.shape != (x.shape[0],):
        raise ShapeError(
            f"x, t, y: expected (n, d), (n,), (n,), got {shape_str(x.shape)}, "
            f"{shape_str(t.shape)}, {shape_str(y.shape)}"
        )
    xn, tn, yn = (v.detach().cpu().double().numpy() for v in (x, t, y))
    treated = tn > 0.5
    if treated.all() or not treated.any():
        raise HypercoreError("t: both arms need units to fit a meta-learner, got one arm only")

    def as_tensor(a: Any, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=like.dtype, device=like.device)

    def np_x(xq: torch.Tensor) -> Any:
        return xq.detach().cpu().double().numpy()

    if kind == "S":
        s = make_regressor().fit(np.column_stack([xn, tn]), yn)

        def outcomes_s(xq: torch.Tensor) -> torch.Tensor:
            a = np_x(xq)
            rows = [s.predict(np.column_stack([a, np.full(len(a), v)])) for v in (0.0, 1.0)]
            return as_tensor(np.stack(rows), xq)

        return MetaLearner("S", outcomes_s, lambda xq: outcomes_s(xq)[1] - outcomes_s(xq)[0])

    m0 = make_regressor().fit(xn[~treated], yn[~treated])
    m1 = make_regressor().fit(xn[treated], yn[treated])

    def outcomes_t(xq: torch.Tensor) -> torch.Tensor:
        a = np_x(xq)
        return as_tensor(np.stack([m0.predict(a), m1.predict(a)]), xq)

    if kind == "T":
        return MetaLearner("T", outcomes_t, lambda xq: outcomes_t(xq)[1] - outcomes_t(xq)[0])

    from sklearn.linear_model import LogisticRegression

    d1 = yn[treated] - m0.predict(xn[treated])
    d0 = m1.predict(xn[~treated]) - yn[~treated]
    tau1 = make_regressor().fit(xn[treated], d1)
    tau0 = make_regressor().fit(xn[~treated], d0)
    prop = LogisticRegression().fit(xn, treated.astype(int))

    def cate_x(xq: torch.Tensor) -> torch.Tensor:
        a = np_x(xq)
        e = prop.predict_proba(a)[:, 1]
        return as_tensor(e * tau0.predict(a) + (1 - e) * tau1.predict(a), xq)

    return MetaLearner("X", outcomes_t, cate_x)
