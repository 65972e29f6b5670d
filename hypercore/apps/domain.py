r"""Domain generalisation with a hypernetwork conditioned on unlabelled samples of the domain.

The setting: labelled data from several *source* domains :math:`d = 1..K`; at
test time an unseen *target* domain of which only a small set of unlabelled
samples :math:`U = \{x_1, \dots, x_S\}` is available. Example-based
hypernetworks (Volk et al., 2022) map what is seen of a domain to a signature
and let a hypernetwork write the classifier for it. Here the signature is
computed from the unlabelled set with a permutation-invariant encoder
(DeepSets, Zaheer et al., 2017):

.. math::

    z(U) = \rho\Big(\frac{1}{|U|} \sum_{x \in U} \phi(x)\Big), \qquad
    \theta(U) = h\big(z(U)\big), \qquad \hat y = f\big(x;\ \theta(U)\big),

trained end to end on the sources with the cross-entropy of each source's
labelled batch under the weights written from an unlabelled set of the same
source (:func:`fit_set_hypernetwork`).

Baselines in the same scenario (the same unlabelled target samples where a
method uses them):

* **ERM**: one network trained on the pooled sources (:func:`fit_erm`, the same
  labelled batches, the same number of steps);
* **AdaBN** (Li et al., 2016): the ERM network with every batch-norm layer's
  statistics recomputed on the unlabelled target samples
  (:func:`adapt_batchnorm`): :math:`\mu_t = \frac1S\sum_i a_i`,
  :math:`\sigma_t^2 = \frac1{S-1}\sum_i (a_i - \mu_t)^2` per unit;
* **fine-tuning** on a few *labelled* target samples (:func:`fine_tune`): an
  upper reference, since it is given labels the others are not.

Only torch (and hypercore) are imported here.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from hypercore.bodies.mlp import mlp_layers
from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_choice,
    check_float,
    check_int_sequence,
    check_like,
    check_positive_int,
    check_tensor,
    shape_str,
)
from hypercore.inputs.base import Conditioner

__all__ = [
    "SetEncoder",
    "adapt_batchnorm",
    "domain_batches",
    "fine_tune",
    "fit_erm",
    "fit_set_hypernetwork",
    "mlp_parameter_count",
    "width_for_parameters",
]


class SetEncoder(Conditioner):
    r"""A domain descriptor from a set of unlabelled samples (mean-pooled DeepSets encoder).

    .. math:: z(U) = \rho\Big(\frac{1}{|U|} \sum_{x \in U} \phi(x)\Big)

    with :math:`\phi` an MLP applied to every sample (``hidden`` widths, each
    followed by the activation) and :math:`\rho` a linear map to
    ``embedding_dim``. The mean makes :math:`z` invariant to the order of the
    samples and defined for any set size :math:`S \ge 1`; with :math:`S = 1` it
    is an example-based signature of the single input.

    Args:
        in_features: features per sample ``F`` (images are flattened).
        embedding_dim: descriptor size ``E``.
        hidden: widths of :math:`\phi`'s layers (``()``: :math:`\phi` is the identity).
        activation: :math:`\phi`'s activation.
        example_set_size: set size of the random example sets used to
            initialise a hypernetwork (:meth:`example_condition`).

    Call with:
        ``(S, F)`` (one set) -> ``(E,)``: one weight set for the whole batch;
        ``(K, S, F)`` (``K`` sets of equal size) -> ``(K, E)``. Trailing image
        dimensions are flattened: ``(S, C, H, W)`` is read as ``(S, C*H*W)``
        when ``C*H*W == in_features``.
    """

    _anchor: torch.Tensor

    def __init__(
        self,
        in_features: int,
        embedding_dim: int,
        hidden: Sequence[int] = (64,),
        activation: str = "relu",
        example_set_size: int = 32,
    ):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("embedding_dim", embedding_dim)
        self.hidden = check_int_sequence("hidden", hidden)
        self.activation = activation
        self.example_set_size = check_positive_int("example_set_size", example_set_size)
        self.phi = nn.Sequential(*mlp_layers(in_features, self.hidden, activation))
        self.rho = nn.Linear(self.hidden[-1] if self.hidden else in_features, embedding_dim)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def config(self) -> dict:
        return {
            "in_features": self.in_features,
            "embedding_dim": self.out_features,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "example_set_size": self.example_set_size,
        }

    def _as_sets(self, condition: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """``(K, S, F)`` and whether the input was a single set."""
        f = self.in_features
        expected = f"a set (S, {f}) or K sets (K, S, {f}) of unlabelled samples with S >= 1"
        if condition.dim() >= 2 and math.prod(condition.shape[1:]) == f:
            sets, single = condition.reshape(1, condition.shape[0], f), True
        elif condition.dim() >= 3 and math.prod(condition.shape[2:]) == f:
            sets, single = condition.reshape(*condition.shape[:2], f), False
        else:
            raise ShapeError(f"condition: expected {expected}, got {shape_str(condition.shape)}")
        if sets.shape[0] == 0 or sets.shape[1] == 0:
            raise ShapeError(f"condition: expected {expected}, got {shape_str(condition.shape)}")
        return sets, single

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        check_tensor("condition", condition)
        sets, single = self._as_sets(condition)
        check_like("condition", sets, self._anchor_like())
        pooled = self.phi(sets).mean(dim=1)  # (K, hidden)
        z = self.rho(pooled)  # (K, E)
        return z[0] if single else z

    def example_condition(self, n: int) -> torch.Tensor:
        like = self._anchor_like()
        return torch.randn(
            n, self.example_set_size, self.in_features, device=like.device, dtype=like.dtype
        )


# --------------------------------------------------------------------------- data


def _check_domains(
    domains: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if (
        isinstance(domains, tuple | list)
        and domains
        and all(isinstance(d, tuple | list) and len(d) == 2 for d in domains)
    ):
        out = []
        for k, (x, y) in enumerate(domains):
            check_tensor(f"domains[{k}][0]", x)
            check_tensor(f"domains[{k}][1]", y)
            if x.shape[0] != y.shape[0] or x.shape[0] == 0:
                raise ShapeError(
                    f"domains[{k}]: expected x (n, ...) and y (n,) with the same n >= 1, got "
                    f"{shape_str(x.shape)} and {shape_str(y.shape)}"
                )
            out.append((x, y))
        return out
    raise HypercoreTypeError(
        "domains: expected a non-empty list of (x, y) tensor pairs, one per source domain, "
        f"got {type(domains).__name__}"
    )


def domain_batches(
    domains: Sequence[tuple[torch.Tensor, torch.Tensor]],
    batch_size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One labelled batch per domain, drawn without replacement within each domain.

    Returns:
        ``x (K, B, ...)`` and ``y (K, B)`` for ``K`` domains and ``B = batch_size``
        (each domain needs at least ``B`` samples).
    """
    domains = _check_domains(domains)
    batch_size = check_positive_int("batch_size", batch_size)
    xs, ys = [], []
    for k, (x, y) in enumerate(domains):
        if len(x) < batch_size:
            raise ShapeError(
                f"domains[{k}]: has {len(x)} samples, fewer than batch_size={batch_size}"
            )
        idx = torch.randperm(len(x), generator=generator)[:batch_size].to(x.device)
        xs.append(x[idx])
        ys.append(y[idx])
    return torch.stack(xs), torch.stack(ys)


def _optimizer(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=check_float("lr", lr, low=0.0, low_open=True))


# --------------------------------------------------------------------------- training


def fit_set_hypernetwork(
    hnet: nn.Module,
    domains: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    batch_size: int = 32,
    set_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    r"""Train a set-conditioned hypernetwork on labelled source domains.

    Each step draws, for every source domain :math:`k`, a labelled batch
    :math:`(X_k, Y_k)` (the same draws as :func:`fit_erm` with the same
    ``seed``) and, independently, an unlabelled set :math:`U_k` of
    ``set_size`` samples of that domain (labels unused), and minimises

    .. math:: \frac1K \sum_k \mathrm{CE}\big(f(X_k;\ \theta(U_k)),\ Y_k\big)

    with Adam. ``hnet(x, U)`` must accept a set ``(S, F)`` as its condition
    (a hypernetwork with a :class:`SetEncoder`).

    Returns:
        The loss of every step.
    """
    domains = _check_domains(domains)
    steps = check_positive_int("steps", steps)
    set_size = check_positive_int("set_size", set_size)
    for k, (x, _) in enumerate(domains):
        if len(x) < set_size:
            raise ShapeError(f"domains[{k}]: has {len(x)} samples, fewer than set_size={set_size}")
    optimizer = _optimizer([p for p in hnet.parameters() if p.requires_grad], lr)
    batches = torch.Generator().manual_seed(seed)
    sets = torch.Generator().manual_seed(seed + 7919)
    losses = []
    hnet.train()
    for _ in range(steps):
        x, y = domain_batches(domains, batch_size, batches)
        loss = x.new_zeros(())
        for k, (xk, _) in enumerate(domains):
            idx = torch.randperm(len(xk), generator=sets)[:set_size].to(xk.device)
            loss = loss + F.cross_entropy(hnet(x[k], xk[idx]), y[k])
        loss = loss / len(domains)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    hnet.eval()
    return losses


def fit_erm(
    model: nn.Module,
    domains: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    batchnorm: str = "pooled",
) -> list[float]:
    r"""Empirical risk minimisation on the pooled source domains.

    Each step takes the same labelled batches as :func:`fit_set_hypernetwork`
    (``batch_size`` per domain, the same ``seed``) and minimises the mean
    cross-entropy over all ``K * batch_size`` samples with Adam.

    Args:
        batchnorm: ``"pooled"`` (one forward pass of the pooled batch: batch norm
            normalises with the statistics of the mixture of domains, plain ERM)
            or ``"per-domain"`` (one forward pass per domain's batch: every source
            is normalised with its own statistics, as AdaBN will normalise the
            target with its own; the running statistics average over domains).

    Returns:
        The loss of every step.
    """
    domains = _check_domains(domains)
    steps = check_positive_int("steps", steps)
    batchnorm = check_choice("batchnorm", batchnorm, ["pooled", "per-domain"])
    optimizer = _optimizer([p for p in model.parameters() if p.requires_grad], lr)
    batches = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(steps):
        x, y = domain_batches(domains, batch_size, batches)
        if batchnorm == "pooled":
            logits = model(x.flatten(0, 1))
        else:
            logits = torch.cat([model(xk) for xk in x])
        loss = F.cross_entropy(logits, y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


# --------------------------------------------------------------------------- adaptation


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    r"""AdaBN (Li et al., 2016): a copy of ``model`` whose batch-norm statistics are the
    target's.

    Every batch-norm layer's running mean and variance are replaced by the
    mean and variance (unbiased, as batch norm stores it) of its input over
    the unlabelled target samples ``x``: one forward pass of the whole set in
    training mode with a cumulative average, so the layers that follow see
    already-adapted inputs. The learned scale and shift are kept. The copy is returned in
    eval mode; ``model`` is not changed.

    Args:
        model: a network with at least one ``nn.BatchNorm*`` layer.
        x: unlabelled target samples ``(S, ...)``, ``S >= 2``.
    """
    check_tensor("x", x)
    if not isinstance(model, nn.Module):
        raise HypercoreTypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not norms:
        raise HypercoreError(
            f"model: AdaBN needs batch-norm layers to re-estimate, {type(model).__name__} has none"
        )
    if x.dim() == 0 or x.shape[0] < 2:
        raise ShapeError(
            f"x: expected at least 2 unlabelled target samples (S, ...), got {shape_str(x.shape)}"
        )
    adapted = copy.deepcopy(model)
    saved = {}
    for m in adapted.modules():
        if isinstance(m, _BatchNorm):
            if not m.track_running_stats:
                raise HypercoreError(
                    "model: a batch-norm layer without running statistics "
                    "(track_running_stats=False) normalises with batch statistics already"
                )
            saved[m] = m.momentum
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch -> exactly its statistics
    adapted.train()
    adapted(x)
    for m, momentum in saved.items():
        m.momentum = momentum
    adapted.eval()
    return adapted


def fine_tune(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float = 1e-3,
) -> nn.Module:
    """A copy of ``model`` fine-tuned on a few labelled target samples (full batch, Adam).

    Every parameter is trained; batch-norm layers stay in eval mode (their
    statistics, e.g. from :func:`adapt_batchnorm`, are kept: a handful of
    samples would estimate them poorly). ``model`` is not changed.

    Args:
        x, y: the labelled target samples ``(n, ...)`` and ``(n,)``.
        steps: full-batch Adam steps.
    """
    check_tensor("x", x)
    check_tensor("y", y)
    if x.dim() == 0 or y.dim() != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ShapeError(
            f"x, y: expected x (n, ...) and y (n,) with the same n >= 1, got "
            f"{shape_str(x.shape)} and {shape_str(y.shape)}"
        )
    steps = check_positive_int("steps", steps)
    tuned = copy.deepcopy(model)
    tuned.eval()  # batch norm keeps its statistics; dropout off
    optimizer = _optimizer([p for p in tuned.parameters() if p.requires_grad], lr)
    for _ in range(steps):
        loss = F.cross_entropy(tuned(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return tuned


# --------------------------------------------------------------------------- sizes


def mlp_parameter_count(widths: Sequence[int], batchnorm: bool = False) -> int:
    """Trainable parameters of ``Linear`` layers ``widths[0] -> ... -> widths[-1]``,
    plus a scale and a shift per hidden unit with ``batchnorm``.

    >>> mlp_parameter_count([64, 32, 10])
    2410
    """
    widths = check_int_sequence("widths", widths)
    if len(widths) < 2:
        raise HypercoreError(f"widths: expected at least 2 widths (in, out), got {list(widths)}")
    linear = sum((a + 1) * b for a, b in itertools.pairwise(widths))
    return linear + (2 * sum(widths[1:-1]) if batchnorm else 0)


def width_for_parameters(
    budget: int, in_features: int, out_features: int, depth: int = 1, batchnorm: bool = True
) -> int:
    """The hidden width ``w`` of an MLP ``in -> w (x depth) -> out`` whose trainable
    parameter count (:func:`mlp_parameter_count`) is closest to ``budget``."""
    budget = check_positive_int("budget", budget)
    depth = check_positive_int("depth", depth)

    def count(w: int) -> int:
        return mlp_parameter_count([in_features, *[w] * depth, out_features], batchnorm)

    w = 1
    while count(w + 1) <= budget:
        w += 1
    return w if budget - count(w) <= count(w + 1) - budget else w + 1
