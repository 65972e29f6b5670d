r"""Zero-shot learning: classifiers for unseen classes generated from class descriptors.

A zero-shot classifier is trained on *seen* classes only and must also recognise
*unseen* classes, for which it is given nothing but a descriptor (an attribute
vector, a text embedding) :math:`a_c \in \mathbb{R}^{A}` per class.

The hypernetwork view (Lei Ba et al., 2015)
    A hypernetwork :math:`h_\phi` reads a class's descriptor and writes that
    class's classifier, :math:`\theta_c = h_\phi(a_c)`; the score of class
    :math:`c` for an input :math:`x` is :math:`s_c(x) = f(x;\ \theta_c)` (a
    linear unit :math:`w_c^\top x + b_c` or a small per-class network). Training
    minimises the cross-entropy of :math:`\mathrm{softmax}_c\, s_c(x)` over the
    seen classes; at test time the descriptors of unseen classes are simply
    added to the list. With hypercore this is ``hnet.forward_sets(x, A)`` for
    the ``(K, A)`` descriptor matrix ``A``: ``K`` generated classifiers on the
    same batch, :func:`class_scores`.

The linear baseline (ESZSL, Romera-Paredes & Torr, 2015)
    A bilinear score :math:`s_c(x) = x^\top V a_c` with the closed form

    .. math:: V = (X X^\top + \gamma I)^{-1}\, X Y S^\top\, (S S^\top + \lambda I)^{-1},

    where :math:`X \in \mathbb{R}^{d \times m}` holds the ``m`` training inputs
    as columns, :math:`Y \in \{-1, 1\}^{m \times z}` their labels over the ``z``
    seen classes and :math:`S \in \mathbb{R}^{A \times z}` the seen classes'
    descriptors as columns (:func:`eszsl_fit`, :func:`eszsl_scores`).

Evaluation (generalised zero-shot, Xian et al.)
    Every test input is classified over the *joint* label space (seen and
    unseen classes). :math:`S` is the per-class mean accuracy over the seen
    classes' test inputs, :math:`U` the same over the unseen classes', and
    :math:`H = 2 S U / (S + U)` their harmonic mean (:func:`gzsl_accuracy`).
    Conventional zero-shot accuracy classifies unseen test inputs among the
    unseen classes only (:func:`zsl_accuracy`).

Synthetic data with a known ground truth (:class:`AttributeWorld`)
    Each class's descriptor is drawn at random, independently of its label;
    its inputs are Gaussian around a mean that is a fixed nonlinear function of
    the descriptor. Unseen classes are therefore predictable from their
    descriptors only through that function, and the Bayes classifier (which
    knows the function) gives the attainable accuracy.

Only torch is imported here; nothing else is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_int_sequence,
    check_positive_int,
    check_tensor,
    shape_str,
)
from hypercore.inputs.base import Conditioner

__all__ = [
    "AttributeEncoder",
    "AttributeWorld",
    "CompatibilityMLP",
    "class_scores",
    "eszsl_fit",
    "eszsl_scores",
    "fit_scores",
    "gzsl_accuracy",
    "harmonic_mean",
    "zsl_accuracy",
]


# --------------------------------------------------------------------------- checks


def _matrix(name: str, value: Any, columns: int | None = None) -> torch.Tensor:
    value = check_tensor(name, value)
    if value.dim() != 2 or value.shape[0] == 0:
        raise ShapeError(f"{name}: expected a non-empty 2-D tensor, got {shape_str(value.shape)}")
    if columns is not None and value.shape[1] != columns:
        raise ShapeError(f"{name}: expected {columns} columns, got {shape_str(value.shape)}")
    if not value.is_floating_point():
        raise HypercoreTypeError(f"{name}: expected a floating-point tensor, got {value.dtype}")
    return value


def _labels(name: str, value: Any, n: int, num_classes: int) -> torch.Tensor:
    value = check_tensor(name, value)
    if value.dim() != 1 or value.shape[0] != n:
        raise ShapeError(f"{name}: expected shape ({n},), got {shape_str(value.shape)}")
    if value.is_floating_point() or value.dtype == torch.bool:
        raise HypercoreTypeError(f"{name}: expected integer class labels, got {value.dtype}")
    if n and (int(value.min()) < 0 or int(value.max()) >= num_classes):
        raise HypercoreError(
            f"{name}: expected labels in [0, {num_classes}), got values in "
            f"[{int(value.min())}, {int(value.max())}]"
        )
    return value


# --------------------------------------------------------------------------- ESZSL


def eszsl_fit(
    x: torch.Tensor, y: torch.Tensor, attributes: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    r"""ESZSL's closed-form bilinear map (Romera-Paredes & Torr, 2015).

    .. math:: V = (X X^\top + \gamma I)^{-1}\, X Y S^\top\, (S S^\top + \lambda I)^{-1}

    Args:
        x: ``(m, d)`` training inputs (rows; :math:`X = x^\top`).
        y: ``(m,)`` integer labels in ``[0, z)``, indices into ``attributes``.
        attributes: ``(z, A)`` descriptors of the training classes (rows;
            :math:`S = \text{attributes}^\top`).
        gamma: ridge on the input side, > 0.
        lam: ridge on the descriptor side, > 0.

    Returns:
        ``V`` of shape ``(d, A)``; scores are ``x @ V @ attributes.T``
        (:func:`eszsl_scores`). :math:`Y` is ``+1`` at the label, ``-1`` elsewhere.
    """
    x = _matrix("x", x)
    attributes = _matrix("attributes", attributes)
    y = _labels("y", y, x.shape[0], attributes.shape[0])
    gamma = check_float("gamma", gamma, low=0.0, low_open=True)
    lam = check_float("lam", lam, low=0.0, low_open=True)
    d, a = x.shape[1], attributes.shape[1]
    targets = -torch.ones(x.shape[0], attributes.shape[0], dtype=x.dtype, device=x.device)
    targets[torch.arange(x.shape[0], device=x.device), y] = 1.0
    xs = x.T  # (d, m)
    s = attributes.T.to(x.dtype)  # (A, z)
    left = xs @ xs.T + gamma * torch.eye(d, dtype=x.dtype, device=x.device)
    middle = xs @ targets @ s.T  # (d, A)
    right = s @ s.T + lam * torch.eye(a, dtype=x.dtype, device=x.device)
    # V = left^{-1} middle right^{-1}; both inverses as solves (right is symmetric)
    return torch.linalg.solve(right, torch.linalg.solve(left, middle).T).T


def eszsl_scores(x: torch.Tensor, v: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Bilinear scores ``x V aᵀ``: ``(B, d)``, ``(d, A)``, ``(K, A)`` -> ``(B, K)``."""
    x = _matrix("x", x)
    v = _matrix("v", v)
    attributes = _matrix("attributes", attributes, columns=v.shape[1])
    if x.shape[1] != v.shape[0]:
        raise ShapeError(
            f"x: expected {v.shape[0]} features (the rows of v), got {shape_str(x.shape)}"
        )
    return x @ v @ attributes.T


# --------------------------------------------------------------------------- hypernetwork side


class AttributeEncoder(Conditioner):
    r"""A hypernetwork's input for class descriptors: ``(K, A)`` -> ``(K, E)``.

    One row per class; each row yields one generated classifier. A linear map
    (``hidden=()``) or an MLP; ``embedding_dim == in_features`` with
    ``hidden=()`` and ``identity=True`` passes the descriptors through.

    Args:
        in_features: descriptor size ``A``.
        embedding_dim: ``E``.
        hidden: hidden widths of the MLP encoder (default none: one linear layer).
        identity: no parameters, ``E = A`` (the descriptor itself is the embedding).
    """

    _anchor: torch.Tensor

    def __init__(
        self,
        in_features: int,
        embedding_dim: int | None = None,
        hidden: Sequence[int] = (),
        identity: bool = False,
    ):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        if identity:
            if embedding_dim not in (None, in_features) or tuple(hidden):
                raise HypercoreError(
                    f"identity: passes the descriptors through, so embedding_dim must be "
                    f"{in_features} (or None) and hidden empty, got embedding_dim="
                    f"{embedding_dim!r}, hidden={tuple(hidden)!r}"
                )
            embedding_dim = in_features
        if embedding_dim is None:
            raise HypercoreError("embedding_dim: expected a positive int (or identity=True)")
        self.out_features = check_positive_int("embedding_dim", embedding_dim)
        self.hidden = check_int_sequence("hidden", hidden, minimum=1) if tuple(hidden) else ()
        self.identity = bool(identity)
        layers: list[nn.Module] = []
        width = in_features
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        if not identity:
            layers.append(nn.Linear(width, self.out_features))
        self.encoder = nn.Sequential(*layers)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def config(self) -> dict:
        return {
            "in_features": self.in_features,
            "embedding_dim": self.out_features,
            "hidden": list(self.hidden),
            "identity": self.identity,
        }

    def forward(self, attributes: torch.Tensor) -> torch.Tensor:
        attributes = check_tensor("attributes", attributes)
        if attributes.dim() not in (1, 2) or attributes.shape[-1] != self.in_features:
            raise ShapeError(
                f"attributes: expected (K, {self.in_features}) or ({self.in_features},), got "
                f"{shape_str(attributes.shape)}"
            )
        return self.encoder(attributes.to(self._anchor.dtype))

    def example_condition(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.in_features, device=self._anchor.device)


def class_scores(
    hnet: Any, x: torch.Tensor, attributes: torch.Tensor, *, fast: bool = True
) -> torch.Tensor:
    r"""Scores of every class for every input: ``(B, K)``, :math:`s_{bk} = f(x_b;\ h(a_k))`.

    ``hnet`` generates one classifier per row of ``attributes`` (``(K, A)``),
    whose target returns one score per input. In general the ``K`` classifiers
    run on the same batch in one call, ``hnet.forward_sets(x, attributes)``.
    When the target is a single ``nn.Linear(d, 1)`` and ``fast`` is true, the
    generated weights ``(K, 1, d)`` and biases ``(K, 1)`` are applied as one
    matrix product, :math:`S = X W^\top + b^\top` (the same numbers, several
    times faster than the vmapped call).
    """
    x = check_tensor("x", x)
    attributes = _matrix("attributes", attributes)
    if not hasattr(hnet, "forward_sets") or not hasattr(hnet, "target"):
        raise HypercoreTypeError(
            f"hnet: expected a hypercore HyperNetwork, got {type(hnet).__name__}"
        )
    module = hnet.target.module
    names = {info.name for info in hnet.target.spec}
    if fast and isinstance(module, nn.Linear) and module.out_features == 1 and x.dim() == 2:
        weights = hnet.generate(attributes)
        w = weights["weight"] if "weight" in names else module.weight.expand(len(attributes), 1, -1)
        b = weights["bias"] if "bias" in names else (
            module.bias.expand(len(attributes), 1) if module.bias is not None
            else torch.zeros(len(attributes), 1, dtype=x.dtype, device=x.device)
        )  # fmt: skip
        if isinstance(w, torch.Tensor) and isinstance(b, torch.Tensor) and w.dim() == 3:
            return x @ w[:, 0, :].T + b[:, 0]
    out = hnet.forward_sets(x, attributes)  # (K, B, 1)
    if out.dim() != 3 or out.shape[-1] != 1 or out.shape[0] != attributes.shape[0]:
        raise ShapeError(
            f"hnet: the target must give one score per input, (B, 1); the {attributes.shape[0]} "
            f"generated classifiers gave {shape_str(out.shape)}"
        )
    return out[..., 0].T


class CompatibilityMLP(nn.Module):
    r"""A nonlinear two-tower compatibility baseline: :math:`s_c(x) = f(x)^\top g(a_c) + b(a_c)`.

    ``f`` (inputs) and ``g`` (descriptors, with one extra output for the bias
    ``b``) are MLPs with the given hidden widths; ``forward(x, attributes)``
    returns ``(B, K)`` like :func:`class_scores`.
    """

    def __init__(
        self,
        in_features: int,
        attribute_features: int,
        embedding_dim: int,
        x_hidden: Sequence[int] = (64,),
        a_hidden: Sequence[int] = (64,),
    ):
        super().__init__()
        check_positive_int("in_features", in_features)
        check_positive_int("attribute_features", attribute_features)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.f = _mlp(in_features, x_hidden, embedding_dim)
        self.g = _mlp(attribute_features, a_hidden, embedding_dim + 1)

    def forward(self, x: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        fx = self.f(_matrix("x", x))  # (B, E)
        ga = self.g(_matrix("attributes", attributes))  # (K, E + 1)
        return fx @ ga[:, :-1].T + ga[:, -1]


def _mlp(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    hidden = check_int_sequence("hidden", hidden, minimum=1) if tuple(hidden) else ()
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- metrics


def harmonic_mean(seen: float, unseen: float) -> float:
    """``2 S U / (S + U)``; 0 when both are 0. Both in ``[0, 1]``."""
    for name, v in (("seen", seen), ("unseen", unseen)):
        if not (isinstance(v, int | float) and 0.0 <= float(v) <= 1.0):
            raise HypercoreError(f"{name}: expected an accuracy in [0, 1], got {v!r}")
    total = seen + unseen
    return 0.0 if total == 0 else 2.0 * seen * unseen / total


def _per_class_accuracy(pred: torch.Tensor, y: torch.Tensor, classes: torch.Tensor) -> float:
    accs = []
    for c in classes.tolist():
        mask = y == c
        if not bool(mask.any()):
            raise HypercoreError(f"y: class {c} has no test input; cannot average per class")
        accs.append(float((pred[mask] == c).float().mean()))
    return sum(accs) / len(accs)


def gzsl_accuracy(
    scores: torch.Tensor, y: torch.Tensor, seen: Iterable[int], unseen: Iterable[int]
) -> dict[str, float]:
    r"""Generalised zero-shot accuracies over the joint label space.

    Args:
        scores: ``(N, C)`` scores of every class (seen and unseen) for every test input.
        y: ``(N,)`` true labels (column indices of ``scores``).
        seen, unseen: disjoint class indices; together they may not exceed ``C``
            columns, and every listed class needs at least one test input.

    Returns:
        ``{"seen": S, "unseen": U, "H": 2SU/(S+U)}``: per-class mean top-1
        accuracies of the seen and unseen classes' inputs, the prediction being
        the argmax over the classes in ``seen`` and ``unseen`` together.
    """
    scores = _matrix("scores", scores)
    y = _labels("y", y, scores.shape[0], scores.shape[1])
    seen_t = torch.as_tensor(list(seen), dtype=torch.long)
    unseen_t = torch.as_tensor(list(unseen), dtype=torch.long)
    if seen_t.numel() == 0 or unseen_t.numel() == 0:
        raise HypercoreError("seen, unseen: expected at least one class each")
    both = torch.cat([seen_t, unseen_t])
    if len(set(both.tolist())) != both.numel():
        raise HypercoreError("seen, unseen: expected disjoint class lists without repeats")
    if int(both.min()) < 0 or int(both.max()) >= scores.shape[1]:
        raise HypercoreError(f"seen, unseen: class indices must lie in [0, {scores.shape[1]})")
    pred = both.to(scores.device)[scores[:, both.to(scores.device)].argmax(1)]
    y_cpu, pred_cpu = y.cpu(), pred.cpu()
    s = _per_class_accuracy(pred_cpu, y_cpu, seen_t)
    u = _per_class_accuracy(pred_cpu, y_cpu, unseen_t)
    return {"seen": s, "unseen": u, "H": harmonic_mean(s, u)}


def zsl_accuracy(scores: torch.Tensor, y: torch.Tensor, unseen: Iterable[int]) -> float:
    """Conventional zero-shot accuracy: unseen inputs classified among the unseen classes only.

    ``scores`` ``(N, C)``, ``y`` ``(N,)``; only the rows whose label is in ``unseen``
    count (per-class mean top-1 accuracy).
    """
    scores = _matrix("scores", scores)
    y = _labels("y", y, scores.shape[0], scores.shape[1])
    unseen_t = torch.as_tensor(list(unseen), dtype=torch.long)
    if unseen_t.numel() == 0:
        raise HypercoreError("unseen: expected at least one class")
    rows = torch.isin(y.cpu(), unseen_t)
    sub = scores.detach().cpu()[rows][:, unseen_t]
    pred = unseen_t[sub.argmax(1)]
    return _per_class_accuracy(pred, y.cpu()[rows], unseen_t)


# --------------------------------------------------------------------------- training


def fit_scores(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    parameters: Iterable[torch.nn.Parameter],
    x: torch.Tensor,
    y: torch.Tensor,
    attributes: torch.Tensor,
    *,
    steps: int,
    lr: float,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    checkpoints: Sequence[int] = (),
    evaluate: Callable[[], dict[str, float]] | None = None,
) -> dict[int, dict[str, float]]:
    r"""Train a score model with Adam on the cross-entropy over the training classes.

    Minimises :math:`-\frac1m \sum_i \log \mathrm{softmax}_{c}\ s_c(x_i)\big|_{y_i}`,
    the softmax over the ``z`` rows of ``attributes`` (the seen classes).

    Args:
        score: ``score(x_batch, attributes)`` -> ``(B, z)`` (e.g.
            ``lambda x, a: class_scores(hnet, x, a)`` or a :class:`CompatibilityMLP`).
        parameters: what Adam updates.
        x, y: ``(m, d)`` inputs, ``(m,)`` labels in ``[0, z)``.
        attributes: ``(z, A)`` descriptors of the training classes.
        steps: optimiser steps (full batch when ``batch_size`` is None).
        lr: Adam's learning rate.
        generator: for the minibatch order (reproducible).
        checkpoints: steps after which ``evaluate()`` is called (one run gives
            the result of several step budgets, for tuning).

    Returns:
        ``{step: {**evaluate(), "train loss": loss}}`` for every checkpoint; without
        checkpoints, ``{steps: {"train loss": last loss}}``.
    """
    steps = check_positive_int("steps", steps)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    x = _matrix("x", x)
    attributes = _matrix("attributes", attributes)
    y = _labels("y", y, x.shape[0], attributes.shape[0])
    wanted = sorted({int(c) for c in checkpoints})
    if wanted and (wanted[0] < 1 or wanted[-1] > steps):
        raise HypercoreError(f"checkpoints: expected steps in [1, {steps}], got {wanted}")
    if wanted and evaluate is None:
        raise HypercoreError("evaluate: needed when checkpoints are given")
    params = list(parameters)
    optimizer = torch.optim.Adam(params, lr=lr)
    m = x.shape[0]
    results: dict[int, dict[str, float]] = {}
    loss_value = math.nan
    for step in range(1, steps + 1):
        if batch_size is None or batch_size >= m:
            xb, yb = x, y
        else:
            idx = torch.randint(0, m, (batch_size,), generator=generator).to(x.device)
            xb, yb = x[idx], y[idx]
        loss = nn.functional.cross_entropy(score(xb, attributes), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        if step in wanted:
            assert evaluate is not None
            with torch.no_grad():
                results[step] = {**evaluate(), "train loss": loss_value}
    if not wanted:
        results[steps] = {"train loss": loss_value}
    return results


# --------------------------------------------------------------------------- synthetic data


@dataclass
class AttributeWorld:
    r"""Classes whose inputs depend on random descriptors through a fixed nonlinear map.

    For ``C`` classes, descriptors :math:`a_c \sim \mathcal N(0, I_A)` are drawn
    independently of the labels; a random two-layer map gives each class's
    mean, :math:`m(a) = W_2 \tanh(\kappa W_1 a)` (``H`` hidden units, ``kappa``
    the nonlinearity: small is nearly linear), scaled onto a sphere,
    :math:`\mu(a) = r\, m(a) / \lVert m(a) \rVert` (equal norms: the Bayes
    classifier is the dot product :math:`\mu(a_c)^\top x`), and inputs are
    :math:`x \sim \mathcal N(\mu(a_c), \sigma^2 I_d)`. Built by
    :meth:`make`; :meth:`sample` draws inputs, :meth:`bayes_scores` is the
    classifier that knows :math:`\mu` (log-likelihoods, equal priors).

    Attributes:
        attributes: ``(C, A)``.
        means: ``(C, d)``, :math:`\mu(a_c)`.
        noise: :math:`\sigma`.
    """

    attributes: torch.Tensor
    means: torch.Tensor
    noise: float

    @classmethod
    def make(
        cls,
        num_classes: int,
        attribute_dim: int,
        input_dim: int,
        *,
        hidden: int = 32,
        nonlinearity: float = 2.0,
        noise: float = 1.0,
        radius: float = 4.0,
        seed: int = 0,
    ) -> AttributeWorld:
        """Draw ``num_classes`` descriptors and the map ``mu`` from ``seed`` (float32)."""
        for name, v in (
            ("num_classes", num_classes),
            ("attribute_dim", attribute_dim),
            ("input_dim", input_dim),
            ("hidden", hidden),
        ):
            check_positive_int(name, v)
        nonlinearity = check_float("nonlinearity", nonlinearity, low=0.0, low_open=True)
        noise = check_float("noise", noise, low=0.0, low_open=True)
        radius = check_float("radius", radius, low=0.0, low_open=True)
        g = torch.Generator().manual_seed(seed)
        attributes = torch.randn(num_classes, attribute_dim, generator=g)
        attributes = attributes / attributes.norm(dim=1, keepdim=True)  # unit descriptors
        w1 = torch.randn(hidden, attribute_dim, generator=g)
        w2 = torch.randn(input_dim, hidden, generator=g)
        means = torch.tanh(nonlinearity * attributes @ w1.T) @ w2.T
        # every class mean on the sphere of radius `radius`: equal norms make the Bayes
        # classifier the dot product mu(a_c)^T x (no class-dependent bias)
        means = radius * means / means.norm(dim=1, keepdim=True)
        return cls(attributes, means, noise)

    @property
    def num_classes(self) -> int:
        return self.attributes.shape[0]

    def sample(
        self, classes: Sequence[int] | torch.Tensor, per_class: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``per_class`` inputs of each class in ``classes``: ``(n, d)`` inputs, ``(n,)`` labels."""
        per_class = check_positive_int("per_class", per_class)
        classes_t = torch.as_tensor(classes, dtype=torch.long)
        if classes_t.dim() != 1 or classes_t.numel() == 0:
            raise ShapeError(f"classes: expected a non-empty list, got {list(classes_t.shape)}")
        if int(classes_t.min()) < 0 or int(classes_t.max()) >= self.num_classes:
            raise HypercoreError(f"classes: expected indices in [0, {self.num_classes})")
        y = classes_t.repeat_interleave(per_class)
        x = self.means[y] + self.noise * torch.randn(
            len(y), self.means.shape[1], generator=generator
        )
        return x, y

    def bayes_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Log-likelihood (up to a constant) of every class for every input: ``(N, C)``."""
        x = _matrix("x", x, columns=self.means.shape[1])
        return -torch.cdist(x, self.means).pow(2) / (2 * self.noise**2)
