r"""Hyperparameter optimisation with a best-response hypernetwork, and its baselines.

The problem (bilevel): choose a hyperparameter :math:`\lambda` (here the strength of
an L2 penalty, searched on :math:`u = \log_{10}\lambda`) to minimise the validation
loss of the weights that minimise the regularised training loss,

.. math::

    u^\star = \arg\min_u\ L_V\bigl(w^\star(u)\bigr), \qquad
    w^\star(u) = \arg\min_w\ L_T(w) + 10^{u}\, \lVert w \rVert_2^2 .

Best-response hypernetwork (Lorraine & Duvenaud 2018; MacKay et al. 2019)
    A hypernetwork :math:`w_\phi(u)` (a :class:`~hypercore.ScalarInput` conditioner
    on :math:`u`) approximates :math:`w^\star(u)` *near the current* :math:`u`.
    Training alternates two kinds of optimiser step (:class:`BestResponseTuner`):

    * a **weight step** on :math:`\phi`: draw :math:`\tilde u = \mathrm{clip}(u +
      \sigma\varepsilon)`, :math:`\varepsilon \sim \mathcal N(0, 1)` and descend
      :math:`L_T(w_\phi(\tilde u)) + 10^{\tilde u} \lVert w_\phi(\tilde u)\rVert^2`
      (:func:`regularised_loss`);
    * a **hyper step** on :math:`u`: descend the validation loss *through* the
      hypernetwork, :math:`\nabla_u L_V(w_\phi(u))` (no regulariser in
      :math:`L_V`), so the hyperparameter follows the approximate best response.

    Every step, of either kind, counts as one optimiser step of the compute budget.

Baselines (:func:`search`)
    ``optuna``'s TPE and random samplers over the same range of :math:`u`; each trial
    trains a plain network for ``k`` steps (:func:`train_network`) and returns its
    validation loss, so ``T`` trials cost ``T * k`` optimiser steps.

``optuna`` is imported inside :func:`search` only; the module imports only torch and
hypercore at module level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_choice,
    check_float,
    check_int,
    check_positive_int,
    check_tensor,
)
from hypercore.hypernetwork import HyperNetwork

__all__ = [
    "BestResponseTuner",
    "SearchResult",
    "best_so_far",
    "l2_penalty",
    "regularised_loss",
    "search",
    "train_network",
    "validation_loss",
]


def l2_penalty(weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
    r""":math:`\sum_j \lVert W_j \rVert_2^2` over the weight matrices (names ending in
    ``"weight"``; biases are not penalised). ``weights``: ``{name: tensor}`` (e.g.
    ``dict(module.named_parameters())`` or :meth:`HyperNetwork.generate`'s output).
    Returns a 0-d tensor."""
    if not isinstance(weights, Mapping):
        raise HypercoreTypeError(
            f"weights: expected a mapping {{name: tensor}}, got {type(weights).__name__}"
        )
    terms = [w.pow(2).sum() for name, w in weights.items() if name.endswith("weight")]
    if not terms:
        raise HypercoreError(
            f"weights: expected at least one entry whose name ends in 'weight', got {list(weights)}"
        )
    return torch.stack(terms).sum()


def regularised_loss(
    logits: torch.Tensor, y: torch.Tensor, weights: Mapping[str, torch.Tensor], log_lam: float
) -> torch.Tensor:
    r"""Training objective :math:`\mathrm{CE}(\text{logits}, y) + 10^{u} \sum_j \lVert W_j
    \rVert^2` with :math:`u` = ``log_lam``. ``logits``: ``(B, C)``; ``y``: ``(B,)`` class
    ids. Returns a 0-d tensor."""
    logits, y = check_tensor("logits", logits), check_tensor("y", y)
    if logits.dim() != 2 or y.shape != logits.shape[:1]:
        raise ShapeError(
            f"logits, y: expected (B, C) and (B,), got {tuple(logits.shape)} and {tuple(y.shape)}"
        )
    return F.cross_entropy(logits, y) + 10.0 ** float(log_lam) * l2_penalty(weights)


def validation_loss(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> float:
    """Mean cross-entropy of ``module`` on ``(x, y)`` (``(N, F)``, ``(N,)``), with its own
    parameters or with ``weights`` (a generated set). No gradient."""
    with torch.no_grad():
        logits = module(x) if weights is None else functional_call(module, dict(weights), (x,))
        return float(F.cross_entropy(logits, y))


def train_network(
    make: Callable[[], nn.Module],
    log_lam: float,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    seed: int,
) -> nn.Module:
    r"""One trial: a fresh ``make()`` network (initialised from ``seed``) trained for
    ``steps`` full-batch Adam steps on :func:`regularised_loss` at
    :math:`\lambda = 10^{u}`, ``u = log_lam``. ``x``: ``(N, F)``, ``y``: ``(N,)``.
    Deterministic for a given seed (the same seed gives the same initialisation for
    every trial, so trials differ by :math:`\lambda` only)."""
    log_lam = check_float("log_lam", log_lam)
    steps = check_positive_int("steps", steps)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    torch.manual_seed(seed)
    net = make()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = regularised_loss(net(x), y, dict(net.named_parameters()), log_lam)
        loss.backward()
        opt.step()
    return net.eval()


def best_so_far(values: torch.Tensor | list[float]) -> list[float]:
    """The running minimum: ``out[i] = min(values[: i + 1])``."""
    out: list[float] = []
    for v in torch.as_tensor(values, dtype=torch.float64).reshape(-1).tolist():
        out.append(v if not out else min(out[-1], v))
    return out


@dataclass
class SearchResult:
    """A search's trajectory and choice.

    ``steps[i]``: optimiser steps spent when ``values[i]`` (a validation loss) was
    measured; ``log_lams[i]``: the :math:`u` it was measured at; ``chosen``: the
    :math:`u` the method returns (the best trial for a search, the final :math:`u` for
    the tuner)."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    log_lams: list[float] = field(default_factory=list)
    chosen: float = math.nan

    @property
    def best(self) -> list[float]:
        """Best-so-far validation loss at each entry of ``steps``."""
        return best_so_far(self.values)


def search(
    sampler: str,
    objective: Callable[[float], float],
    trials: int,
    steps_per_trial: int,
    low: float,
    high: float,
    seed: int,
) -> SearchResult:
    r"""Black-box search of :math:`u \in [\text{low}, \text{high}]` with ``optuna``.

    ``sampler``: ``"tpe"`` (``optuna.samplers.TPESampler``, its default start-up of
    10 random trials) or ``"random"`` (``RandomSampler``), seeded with ``seed``.
    ``objective(u)`` trains a network for ``steps_per_trial`` steps and returns its
    validation loss. Returns the trials in order, at ``steps = (i + 1) *
    steps_per_trial``, and the best trial's :math:`u` as ``chosen``."""
    sampler = check_choice("sampler", sampler, ("tpe", "random"))
    trials = check_positive_int("trials", trials)
    steps_per_trial = check_positive_int("steps_per_trial", steps_per_trial)
    low, high = check_float("low", low), check_float("high", high)
    if not high > low:
        raise HypercoreError(f"search: need high > low, got low={low}, high={high}")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    chooser = (
        optuna.samplers.TPESampler(seed=seed)
        if sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    study = optuna.create_study(direction="minimize", sampler=chooser)
    result = SearchResult()

    def run(trial: optuna.Trial) -> float:
        u = trial.suggest_float("log10_lambda", low, high)
        value = float(objective(u))
        result.steps.append((trial.number + 1) * steps_per_trial)
        result.values.append(value)
        result.log_lams.append(u)
        return value

    study.optimize(run, n_trials=trials)
    result.chosen = float(study.best_params["log10_lambda"])
    return result


class BestResponseTuner:
    r"""Alternating best-response training (self-tuning networks, MacKay et al. 2019).

    Args:
        hnet: a :class:`~hypercore.HyperNetwork` whose conditioner is a
            :class:`~hypercore.ScalarInput` on :math:`u = \log_{10}\lambda` over
            ``[low, high]``; it generates every parameter of ``module``.
        module: the target network (its own parameters are not used: weights come
            from ``hnet.generate(u)`` and are applied with ``torch.func.functional_call``).
        low, high: the search range of :math:`u` (the conditioner's range).
        init: the starting :math:`u`.
        sigma: the perturbation scale of :math:`\tilde u = \mathrm{clip}(u +
            \sigma\varepsilon)` in weight steps (decades).
        lr, hyper_lr: Adam learning rates of the hypernetwork and of :math:`u`.
        seed: seeds the perturbations.

    :meth:`weight_step` and :meth:`hyper_step` are one optimiser step each;
    :meth:`run` alternates them on a step budget. ``u`` (a 0-d tensor) is the current
    hyperparameter.
    """

    def __init__(
        self,
        hnet: HyperNetwork,
        module: nn.Module,
        low: float,
        high: float,
        init: float,
        sigma: float = 0.5,
        lr: float = 1e-3,
        hyper_lr: float = 0.03,
        seed: int = 0,
    ):
        if not isinstance(hnet, HyperNetwork):
            raise HypercoreTypeError(
                f"hnet: expected a hypercore.HyperNetwork, got {type(hnet).__name__}"
            )
        self.low, self.high = check_float("low", low), check_float("high", high)
        if not self.high > self.low:
            raise HypercoreError(f"BestResponseTuner: need high > low, got {low}, {high}")
        init = check_float("init", init, low=self.low, high=self.high)
        self.sigma = check_float("sigma", sigma, low=0.0)
        self.hnet, self.module = hnet, module
        self.u = torch.tensor(init, requires_grad=True)
        self.opt = torch.optim.Adam(hnet.parameters(), lr=check_float("lr", lr, low=0.0))
        self.hyper_opt = torch.optim.Adam([self.u], lr=check_float("hyper_lr", hyper_lr, low=0.0))
        self.generator = torch.Generator().manual_seed(seed)

    def _clip(self, u: torch.Tensor) -> torch.Tensor:
        return u.clamp(self.low, self.high)

    def weights(self, u: torch.Tensor | float | None = None) -> dict[str, torch.Tensor]:
        """The generated weights at ``u`` (default: the current hyperparameter)."""
        u = self.u if u is None else torch.as_tensor(u, dtype=torch.float32)
        return self.hnet.generate(self._clip(u).reshape(()))

    def weight_step(self, x: torch.Tensor, y: torch.Tensor, uniform: bool = False) -> float:
        r"""One Adam step on the hypernetwork: the regularised training loss at a
        perturbed :math:`\tilde u` (:math:`u` itself is not updated), or, with
        ``uniform``, at :math:`\tilde u \sim U[\text{low}, \text{high}]` (the warm-up:
        a global best response first). Returns the loss."""
        if uniform:
            r = torch.rand((), generator=self.generator)
            u_tilde = self.low + (self.high - self.low) * r
        else:
            eps = torch.randn((), generator=self.generator)
            u_tilde = self._clip(self.u.detach() + self.sigma * eps)
        w = self.weights(u_tilde)
        loss = regularised_loss(functional_call(self.module, w, (x,)), y, w, float(u_tilde))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def hyper_step(self, x_val: torch.Tensor, y_val: torch.Tensor) -> float:
        r"""One Adam step on :math:`u` along :math:`\nabla_u L_V(w_\phi(u))`, clipped to
        the range afterwards. Returns the validation loss before the step."""
        w = self.weights()
        loss = F.cross_entropy(functional_call(self.module, w, (x_val,)), y_val)
        self.hyper_opt.zero_grad()
        self.hnet.zero_grad(set_to_none=True)
        loss.backward()
        self.hyper_opt.step()
        with torch.no_grad():
            self.u.clamp_(self.low, self.high)
        return float(loss.detach())

    def run(
        self,
        train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor],
        total_steps: int,
        warmup: int,
        weight_steps_per_cycle: int = 4,
        record_every: int = 1,
    ) -> SearchResult:
        """Spend ``total_steps`` optimiser steps: ``warmup`` weight steps with
        :math:`\tilde u` uniform over the range, then cycles of
        ``weight_steps_per_cycle`` weight steps and one hyper step.
        Records the validation loss of the current weights (measured in the hyper
        step) every ``record_every`` cycles; ``chosen`` is the final ``u``."""
        total_steps = check_positive_int("total_steps", total_steps)
        warmup = check_int("warmup", warmup, 0)
        if warmup >= total_steps:
            raise HypercoreError(
                f"warmup: expected fewer than total_steps={total_steps} steps, got {warmup}"
            )
        per_cycle = check_positive_int("weight_steps_per_cycle", weight_steps_per_cycle)
        record_every = check_positive_int("record_every", record_every)
        (x, y), (x_val, y_val) = train, val
        result = SearchResult()
        for _ in range(warmup):
            self.weight_step(x, y, uniform=True)
        spent, cycle = warmup, 0
        while spent < total_steps:
            for _ in range(min(per_cycle, total_steps - spent - 1)):
                self.weight_step(x, y)
                spent += 1
            u_before = float(self.u.detach())
            value = self.hyper_step(x_val, y_val)
            spent += 1
            if cycle % record_every == 0 or spent >= total_steps:
                result.steps.append(spent)
                result.values.append(value)
                result.log_lams.append(u_before)
            cycle += 1
        result.chosen = float(self.u.detach())
        return result
