r"""Predictive uncertainty from sampled weight sets: HyperGAN and its baselines.

HyperGAN (Ratzlaff & Fuxin, 2019) turns a noise-conditioned hypernetwork into
a distribution over a target network's weights and keeps that distribution from
collapsing onto one network with an adversarial term on its latent codes:

* noise :math:`s \sim \mathcal N(0, I_E)` (:class:`~hypercore.inputs.NoiseSource`);
* a **mixer** :math:`Q` maps it to a latent code :math:`q = Q(s) \in \mathbb R^D`
  (:class:`Mixer`, the hypernetwork's body: a linear last layer, so the codes can
  match a Gaussian);
* a **generator** maps the code to the target's weights :math:`\theta = G(q)` (the
  hypernetwork's head);
* a **discriminator** :math:`D` (:class:`CodeDiscriminator`) tells the codes from
  samples of a high-entropy prior :math:`P = \mathcal N(0, I_D)`; the mixer is
  trained to fool it.

One training step on a batch :math:`(x, y)` draws :math:`K` codes and minimises

.. math::

    \mathcal L_{Q,G} = \frac1K \sum_{k=1}^K \mathrm{CE}\big(f(x;\ G(Q(s_k))),\ y\big)
        \;+\; \beta\, \frac1K\sum_k -\log \sigma\big(D(Q(s_k))\big),

    \mathcal L_D = -\frac1K\sum_k \Big[\log \sigma\big(D(p_k)\big)
        + \log\big(1 - \sigma(D(Q(s_k)))\big)\Big], \quad p_k \sim P,

alternately (the non-saturating GAN loss; :math:`\beta = 0` switches the
regulariser off, an ensemble that nothing keeps diverse). The :math:`K`
classification passes run as one batched call, ``hnet.forward_sets(x, codes)``.

Baselines for the same experiment: :class:`Ensemble` (independently initialised
members, a deep ensemble of Lakshminarayanan et al., 2017), :func:`mc_dropout_probs`
(Gal & Ghahramani, 2016), and :func:`matched_hidden_width` to shrink ensemble
members to a parameter budget. :func:`relative_spread` measures how far the
sampled weight sets are from collapse. Metrics are in :mod:`hypercore.apps.calibration`.

Only torch (and hypercore) is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
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
from hypercore.hypernetwork import HyperNetwork
from hypercore.inputs import NoiseSource
from hypercore.target import StructuredWeight


def _mlp(in_features: int, hidden: Sequence[int], out_features: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class Mixer(nn.Module):
    r"""HyperGAN's mixer :math:`Q`: noise ``(N, E)`` to latent codes ``(N, D)``.

    ``Linear -> ReLU`` for each hidden width, then a linear layer with no
    activation (so the codes can take any sign and match a Gaussian prior).
    Use it as a :class:`~hypercore.HyperNetwork`'s body.

    Args:
        in_features: noise size ``E``.
        out_features: code size ``D``.
        hidden: hidden widths, e.g. ``(32,)``.
    """

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (32,)):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.hidden = check_int_sequence("hidden", hidden) if len(hidden) else ()
        self.net = _mlp(self.in_features, self.hidden, self.out_features)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if s.shape[-1:] != (self.in_features,):
            raise ShapeError(
                f"s: expected noise of shape (N, {self.in_features}), got {shape_str(s.shape)}"
            )
        return self.net(s)


class CodeDiscriminator(nn.Module):
    """HyperGAN's discriminator :math:`D`: a code ``(N, D)`` to one logit ``(N,)``
    (positive: "drawn from the prior").

    Args:
        in_features: code size ``D``.
        hidden: hidden widths.
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (64,)):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.net = _mlp(self.in_features, check_int_sequence("hidden", hidden), 1)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        if q.dim() != 2 or q.shape[1] != self.in_features:
            raise ShapeError(
                f"q: expected codes of shape (N, {self.in_features}), got {shape_str(q.shape)}"
            )
        return self.net(q).squeeze(1)


def _check_noise_hnet(hnet: object) -> HyperNetwork:
    if not isinstance(hnet, HyperNetwork):
        raise HypercoreTypeError(
            f"hnet: expected a hypercore HyperNetwork, got {type(hnet).__name__}"
        )
    if not isinstance(hnet.conditioner, NoiseSource):
        raise HypercoreTypeError(
            "hnet: expected a noise-conditioned hypernetwork (conditioner NoiseSource), got "
            f"conditioner {type(hnet.conditioner).__name__}"
        )
    return hnet


def draw_noise(
    hnet: HyperNetwork, num_draws: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``num_draws`` noise vectors ``(K, E)`` from ``hnet``'s :class:`NoiseSource`
    (reproducible with a CPU ``generator``; moved to the hypernetwork's device)."""
    hnet = _check_noise_hnet(hnet)
    k = check_positive_int("num_draws", num_draws)
    source = hnet.conditioner
    assert isinstance(source, NoiseSource)
    anchor = source._anchor
    s = torch.randn(k, source.out_features, generator=generator, dtype=anchor.dtype) * source.std
    return s.to(anchor.device)


def latent_codes(hnet: HyperNetwork, noise: torch.Tensor) -> torch.Tensor:
    """The mixer's codes :math:`Q(s)`, ``hnet.body(hnet.conditioner(noise))``.

    Shapes: ``(K, E) -> (K, D)``.
    """
    hnet = _check_noise_hnet(hnet)
    return hnet.body(hnet.conditioner(noise))


def sample_probs(hnet: HyperNetwork, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Class probabilities under each weight draw: softmax of ``hnet.forward_sets(x, noise)``.

    Shapes: ``x`` ``(N, ...)``, ``noise`` ``(K, E)`` -> ``(K, N, C)``.
    """
    hnet = _check_noise_hnet(hnet)
    return hnet.forward_sets(x, noise).softmax(-1)


@dataclass
class HyperGANHistory:
    """Per-epoch means of the losses of :func:`fit_hypergan` (lists, one entry per epoch)."""

    classification: list[float] = field(default_factory=list)
    adversarial: list[float] = field(default_factory=list)
    discriminator: list[float] = field(default_factory=list)


def fit_hypergan(
    hnet: HyperNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    num_draws: int = 5,
    beta: float = 1.0,
    discriminator: CodeDiscriminator | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    discriminator_lr: float = 1e-3,
    prior_std: float = 1.0,
    seed: int = 0,
) -> HyperGANHistory:
    r"""Train a noise-conditioned hypernetwork with HyperGAN's objective (module docstring).

    Each step draws ``num_draws`` noise vectors, runs the target under the
    ``K`` generated weight sets on the batch (``forward_sets``), and takes one Adam
    step on the mixer and generator (classification + ``beta`` x adversarial)
    and, when ``beta > 0``, one on the discriminator. The batches are those of
    :func:`hypercore.fit` with the same ``seed`` and ``batch_size`` (a fresh
    permutation per epoch from a CPU generator seeded by ``seed``), so a baseline
    trained with :func:`hypercore.fit` sees the same batches in the same order.

    Args:
        hnet: a :class:`~hypercore.HyperNetwork` with a :class:`NoiseSource`
            conditioner and a body whose output is the code (e.g. :class:`Mixer`).
        x, y: training inputs ``(N, ...)`` and integer labels ``(N,)``, on the
            hypernetwork's device.
        epochs: passes over the data.
        num_draws: ``K``, weight sets per step.
        beta: weight of the adversarial term (``0``: none, no discriminator needed).
        discriminator: a :class:`CodeDiscriminator` for the code size (required
            when ``beta > 0``).
        batch_size, lr: mini-batch size and Adam's learning rate for the hypernetwork.
        discriminator_lr: Adam's learning rate for the discriminator.
        prior_std: standard deviation of the prior :math:`P` on the codes.
        seed: seed of the batch order and of the noise draws.
    """
    hnet = _check_noise_hnet(hnet)
    xs = check_tensor("x", x)
    ys = check_tensor("y", y)
    if ys.dim() != 1 or ys.shape[0] != xs.shape[0]:
        raise ShapeError(f"y: expected labels of shape ({xs.shape[0]},), got {shape_str(ys.shape)}")
    check_positive_int("epochs", epochs)
    k = check_positive_int("num_draws", num_draws)
    beta = check_float("beta", beta, low=0.0)
    check_positive_int("batch_size", batch_size)
    prior_std = check_float("prior_std", prior_std, low=0.0, low_open=True)
    if beta > 0:
        if not isinstance(discriminator, CodeDiscriminator):
            raise HypercoreTypeError(
                "discriminator: beta > 0 needs a CodeDiscriminator, got "
                f"{type(discriminator).__name__}"
            )
        code_size = getattr(hnet.body, "out_features", None)
        if discriminator.in_features != code_size:
            raise HypercoreError(
                f"discriminator: reads codes of size {discriminator.in_features}, but the "
                f"hypernetwork's body gives {code_size}"
            )
    optimizer = torch.optim.Adam([p for p in hnet.parameters() if p.requires_grad], lr=lr)
    d_optimizer = (
        torch.optim.Adam(discriminator.parameters(), lr=discriminator_lr)
        if beta > 0 and discriminator is not None
        else None
    )
    batches = torch.Generator(device="cpu").manual_seed(seed)
    draws = torch.Generator(device="cpu").manual_seed(seed + 7919)
    history = HyperGANHistory()
    n = xs.shape[0]
    hnet.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=batches).to(xs.device)
        sums = [0.0, 0.0, 0.0]
        steps = 0
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            xb, yb = xs[idx], ys[idx]
            noise = draw_noise(hnet, k, draws)
            logits = hnet.forward_sets(xb, noise)  # (K, B, C)
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(k))
            loss = ce
            adv = torch.zeros((), device=xs.device)
            d_loss = torch.zeros((), device=xs.device)
            if d_optimizer is not None and discriminator is not None:
                codes = latent_codes(hnet, noise)
                fooled = discriminator(codes)
                adv = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
                loss = ce + beta * adv
            optimizer.zero_grad(set_to_none=True)
            if d_optimizer is not None:
                d_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if d_optimizer is not None and discriminator is not None:
                d_optimizer.zero_grad(set_to_none=True)
                codes = codes.detach()
                prior = torch.randn(codes.shape, generator=draws).to(codes) * prior_std
                real, fake = discriminator(prior), discriminator(codes)
                d_loss = F.binary_cross_entropy_with_logits(
                    real, torch.ones_like(real)
                ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
                d_loss.backward()
                d_optimizer.step()
            sums[0] += ce.item()
            sums[1] += adv.item()
            sums[2] += d_loss.item()
            steps += 1
        history.classification.append(sums[0] / steps)
        history.adversarial.append(sums[1] / steps)
        history.discriminator.append(sums[2] / steps)
    hnet.eval()
    return history


class Ensemble(nn.Module):
    """A deep ensemble: ``K`` independently initialised copies of a network.

    ``forward_sets(x)`` gives every member's output ``(K, B, ...)``, like a
    hypernetwork's. Training with one Adam optimiser on the *sum* of the members'
    losses is exactly training each member alone on the same batches (Adam's
    update is per parameter, and a member's gradient only involves its own loss):
    see :meth:`loss`.

    Args:
        make: builds one member (called ``K`` times: seed before for reproducible inits).
        num_members: ``K``.
    """

    def __init__(self, make: Callable[[], nn.Module], num_members: int):
        super().__init__()
        k = check_positive_int("num_members", num_members)
        if not callable(make):
            raise HypercoreTypeError(
                f"make: expected a callable building an nn.Module, got {type(make).__name__}"
            )
        self.members = nn.ModuleList(make() for _ in range(k))

    def forward_sets(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The members' mean probability, as log-probabilities ``(B, C)``."""
        return self.forward_sets(x).softmax(-1).mean(0).clamp_min(1e-12).log()

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sum over members of each member's mean cross-entropy on ``(x, y)``."""
        logits = self.forward_sets(x)
        k = logits.shape[0]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(k)) * k


def mc_dropout_probs(model: nn.Module, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """MC dropout: ``num_samples`` stochastic passes with only the dropout layers in
    training mode (Gal & Ghahramani, 2016). Returns softmax probabilities ``(T, N, C)``;
    the model's modes are restored afterwards."""
    t = check_positive_int("num_samples", num_samples)
    dropouts = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    if not dropouts:
        raise HypercoreError(
            "model: expected at least one dropout layer for MC dropout, found none"
        )
    modes = {m: m.training for m in model.modules()}
    model.eval()
    for layer in dropouts:
        layer.train()
    try:
        with torch.no_grad():
            return torch.stack([model(x).softmax(-1) for _ in range(t)])
    finally:
        for module, mode in modes.items():
            module.training = mode


def matched_hidden_width(
    in_features: int, out_features: int, budget: int, num_members: int = 1
) -> int:
    r"""The hidden width :math:`h` of ``num_members`` one-hidden-layer MLPs
    ``in -> h -> out`` whose parameters together come closest to ``budget``:
    each has :math:`(\mathrm{in} + 1)h + (h + 1)\mathrm{out}` parameters."""
    i = check_positive_int("in_features", in_features)
    o = check_positive_int("out_features", out_features)
    b = check_positive_int("budget", budget)
    k = check_positive_int("num_members", num_members)
    per_unit = i + 1 + o
    best = max(1, round((b / k - o) / per_unit))
    candidates = [c for c in (best - 1, best, best + 1) if c >= 1]
    return min(candidates, key=lambda h: abs(k * (per_unit * h + o) - b))


def flat_sets(weights: dict[str, torch.Tensor | StructuredWeight]) -> torch.Tensor:
    """``K`` weight sets ``{name: (K, *shape)}`` (e.g. ``hnet.generate(noise)``) as ``(K, P)``."""
    if not isinstance(weights, dict) or not weights:
        raise HypercoreTypeError(
            f"weights: expected a non-empty dict of weight sets, got {type(weights).__name__}"
        )
    flats = []
    k = None
    for name, w in weights.items():
        t = w.dense() if isinstance(w, StructuredWeight) else check_tensor(name, w)
        if k is None:
            k = t.shape[0]
        if t.dim() < 2 or t.shape[0] != k:
            raise ShapeError(
                f"weights[{name!r}]: expected ({k}, ...) weight sets, got {shape_str(t.shape)}"
            )
        flats.append(t.reshape(k, -1))
    return torch.cat(flats, 1)


def relative_spread(sets: torch.Tensor) -> torch.Tensor:
    r"""How different ``K`` weight sets ``(K, P)`` are, relative to their size:

    .. math:: \frac{\frac1P\sum_j \mathrm{std}_k(w_{kj})}{\sqrt{\frac1{KP}\sum_{k,j} w_{kj}^2}}

    0 for identical sets (collapse); close to 1 for independent zero-mean sets of
    the same scale (their spread is then as large as the weights themselves). The
    standard deviation is over the sets (``ddof=1``).
    """
    w = check_tensor("sets", sets)
    if w.dim() != 2 or w.shape[0] < 2:
        raise ShapeError(f"sets: expected (K, P) weight sets with K >= 2, got {shape_str(w.shape)}")
    return w.std(0).mean() / w.pow(2).mean().sqrt().clamp_min(1e-12)


def disagreement(sample_probs: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs of sampled predictions ``(K, N, C)`` whose predicted classes
    differ, averaged over the ``N`` inputs (0: every sample predicts the same class)."""
    p = check_tensor("sample_probs", sample_probs)
    if p.dim() != 3 or p.shape[0] < 2:
        raise ShapeError(f"sample_probs: expected (K, N, C) with K >= 2, got {shape_str(p.shape)}")
    k = p.shape[0]
    votes = F.one_hot(p.argmax(-1), p.shape[-1]).sum(0).to(p.dtype)  # (N, C)
    agreeing_pairs = (votes * (votes - 1)).sum(-1)
    return (1 - agreeing_pairs / (k * (k - 1))).mean()


__all__ = [
    "CodeDiscriminator",
    "Ensemble",
    "HyperGANHistory",
    "Mixer",
    "disagreement",
    "draw_noise",
    "fit_hypergan",
    "flat_sets",
    "latent_codes",
    "matched_hidden_width",
    "mc_dropout_probs",
    "relative_spread",
    "sample_probs",
]
