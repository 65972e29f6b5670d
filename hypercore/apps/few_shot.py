r"""Few-shot learning with a kernel hypernetwork (HyperShot), and what it is compared with.

HyperShot (Sendera et al., 2022) maps a support set to the weights of the
classifier that labels the queries. Its core idea: the hypernetwork does not read
the support *features*, it reads their *relations*. With a backbone
:math:`f`, the class means of the support features
:math:`p_n = \frac1K \sum_{j: y_j = n} f(x_j)` (``n = 1..N``) and a kernel
:math:`k` (cosine similarity here),

.. math::

    \mathbf K_S = [k(p_i, p_j)]_{i,j=1..N} \in \mathbb R^{N \times N}, \qquad
    \theta = H(\operatorname{vec} \mathbf K_S), \qquad
    \hat y(q) = \operatorname{softmax} T_\theta\big([k(f(q), p_n)]_{n=1..N}\big),

a hypernetwork :math:`H` writes the weights :math:`\theta` of a small target
network :math:`T` (an MLP from :math:`N` kernel values to :math:`N` logits), and a
query is classified from its kernel values to the class means. :math:`f`,
:math:`H` (and nothing else) are meta-trained end to end with the query
cross-entropy over episodes. Averaging the support per class is the paper's
``mean`` support aggregation; it makes the same hypernetwork serve every shot.

The baselines, with the same backbone:

* prototypical networks (Snell et al., 2017): logits
  :math:`-\lVert f(q) - p_n \rVert^2` (:func:`prototype_logits`);
* fine-tuning: the backbone pre-trained as an ordinary classifier on the
  training classes, then a new linear head fitted on each episode's support set
  (:func:`fit_linear_head`);
* nearest prototype on the raw inputs (:func:`prototype_logits` with the
  identity as :math:`f`), a reference for how hard the classes are.

The data, :func:`make_class_family`: a synthetic family of many classes that are
not separable in the input space (see its docstring). Episodes are drawn from it
with :class:`EpisodeSampler` (:func:`hypercore.data.sample_episodes`, vectorised);
:func:`episode_accuracy` and :func:`episode_interval` give the per-episode accuracy
and its 95% interval.

Only torch (and hypercore) is imported here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from hypercore.data.episodes import Episodes
from hypercore.errors import (
    HypercoreError,
    ShapeError,
    check_float,
    check_id_dtype,
    check_int,
    check_int_sequence,
    check_positive_int,
    check_tensor,
    shape_str,
)

__all__ = [
    "EpisodeSampler",
    "KernelHyperClassifier",
    "class_means",
    "cosine_kernel",
    "episode_accuracy",
    "episode_interval",
    "fit_linear_head",
    "make_class_family",
    "meta_train",
    "pretrain_classifier",
    "prototype_logits",
]


# --------------------------------------------------------------------------- data


def make_class_family(
    num_classes: int,
    samples_per_class: int,
    *,
    input_dim: int = 64,
    class_dim: int = 8,
    nuisance_dim: int = 8,
    hidden: int = 64,
    within: float = 0.5,
    nuisance: float = 1.5,
    noise: float = 0.1,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A family of ``num_classes`` synthetic classes, rendered by one fixed random network.

    Class :math:`c` has a code :math:`\mu_c \sim \mathcal N(0, I_{d_c})`. A sample of
    class :math:`c` draws a within-class deviation and a nuisance code,

    .. math::

        z = \mu_c + \sigma_w \varepsilon,\quad \varepsilon \sim \mathcal N(0, I_{d_c}),
        \qquad u \sim \mathcal N(0, \sigma_u^2 I_{d_u}),

    and is rendered by a fixed random two-layer network shared by all classes,
    :math:`x = W_2 \tanh(W_1 [z; u] + b_1) + \sigma_n \eta` with
    :math:`\eta \sim \mathcal N(0, I_D)`; ``x`` is then standardised (zero mean,
    unit variance per feature, over the whole family). The nuisance code
    :math:`u` is shared by no class and moves every sample a lot, and the
    renderer mixes it non-linearly with :math:`z`: distances in the input space
    are dominated by the nuisance, so nearest-prototype on the raw inputs is
    weak, while a network that has learned to undo the renderer from many
    classes can recognise a new class from a few samples.

    Classes with different indices are different classes: split the indices
    to get class-disjoint training and test classes.

    Args:
        num_classes: how many classes.
        samples_per_class: samples drawn per class.
        input_dim: ``D``, the size of a sample.
        class_dim, nuisance_dim: :math:`d_c`, :math:`d_u`.
        hidden: the renderer's hidden width.
        within, nuisance, noise: :math:`\sigma_w`, :math:`\sigma_u`, :math:`\sigma_n` (>= 0).
        seed: the seed of the whole construction (codes, renderer, samples).

    Returns:
        ``x (num_classes * samples_per_class, input_dim)`` float32 and
        ``y (num_classes * samples_per_class,)`` int64 class labels, grouped by class.
    """
    num_classes = check_positive_int("num_classes", num_classes)
    samples_per_class = check_positive_int("samples_per_class", samples_per_class)
    input_dim = check_positive_int("input_dim", input_dim)
    class_dim = check_positive_int("class_dim", class_dim)
    nuisance_dim = check_positive_int("nuisance_dim", nuisance_dim)
    hidden = check_positive_int("hidden", hidden)
    within = check_float("within", within, low=0.0)
    nuisance = check_float("nuisance", nuisance, low=0.0)
    noise = check_float("noise", noise, low=0.0)
    g = torch.Generator().manual_seed(int(seed))
    latent = class_dim + nuisance_dim
    w1 = torch.randn(hidden, latent, generator=g) * (2.0 / math.sqrt(latent))
    b1 = torch.randn(hidden, generator=g) * 0.5
    w2 = torch.randn(input_dim, hidden, generator=g) / math.sqrt(hidden)
    codes = torch.randn(num_classes, class_dim, generator=g)
    y = torch.arange(num_classes).repeat_interleave(samples_per_class)
    n = len(y)
    z = codes[y] + within * torch.randn(n, class_dim, generator=g)
    u = nuisance * torch.randn(n, nuisance_dim, generator=g)
    x = torch.tanh(torch.cat([z, u], 1) @ w1.T + b1) @ w2.T
    x = x + noise * torch.randn(n, input_dim, generator=g)
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-8)
    return x.float(), y


# --------------------------------------------------------------------------- episodes


class EpisodeSampler:
    """Draw N-way K-shot episodes from a labelled pool, vectorised (no Python loop per class).

    The same episodes as :func:`hypercore.data.sample_episodes` describes (each
    episode picks ``n_way`` of ``classes`` at random, labels them ``0..n_way-1`` in
    that random order, and draws ``k_shot`` support and ``n_query`` query samples per
    class without overlap), but the class pools are indexed once, so drawing a batch
    of episodes costs a few tensor operations: meta-training draws thousands.

    Args:
        x: ``(num_samples, *features)``.
        y: ``(num_samples,)`` integer class labels.
        classes: the classes episodes are drawn from (e.g. the training classes);
            every one needs at least one sample, and each episode uses at most the
            smallest class's sample count.

    Call :meth:`sample` with ``(n_way, k_shot, n_query, num_episodes, generator)``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, classes: Sequence[int]):
        check_tensor("x", x)
        check_tensor("y", y)
        check_id_dtype("y", y)
        if y.dim() != 1 or x.shape[:1] != y.shape:
            raise ShapeError(
                f"x, y: expected shapes (n, ...) and (n,), got {shape_str(x.shape)} and "
                f"{shape_str(y.shape)}"
            )
        self.classes = torch.as_tensor(list(classes), dtype=torch.long)
        if self.classes.dim() != 1 or self.classes.numel() == 0:
            raise HypercoreError("classes: expected a non-empty sequence of class labels")
        if self.classes.unique().numel() != self.classes.numel():
            raise HypercoreError("classes: expected distinct class labels, got repeats")
        pools = [torch.nonzero(y == c).squeeze(1) for c in self.classes.tolist()]
        empty = [c for c, p in zip(self.classes.tolist(), pools, strict=True) if len(p) == 0]
        if empty:
            raise HypercoreError(f"classes: no sample of class {empty[0]} in y")
        self.per_class = min(len(p) for p in pools)
        self.index = torch.stack([p[: self.per_class] for p in pools])  # (C, P)
        self.x = x

    def sample(
        self,
        n_way: int,
        k_shot: int,
        n_query: int,
        num_episodes: int,
        generator: torch.Generator | None = None,
    ) -> Episodes:
        """``num_episodes`` episodes: support ``(E, N*K, ...)``, query ``(E, N*Q, ...)``.

        Raises:
            HypercoreError: when there are fewer than ``n_way`` classes or a class
                has fewer than ``k_shot + n_query`` samples.
        """
        n_way = check_positive_int("n_way", n_way)
        k_shot = check_positive_int("k_shot", k_shot)
        n_query = check_positive_int("n_query", n_query)
        num_episodes = check_positive_int("num_episodes", num_episodes)
        num_classes = self.classes.numel()
        if n_way > num_classes:
            raise HypercoreError(
                f"n_way: expected at most {num_classes} (the classes), got {n_way}"
            )
        if k_shot + n_query > self.per_class:
            raise HypercoreError(
                f"k_shot + n_query: expected at most {self.per_class} (samples in the "
                f"smallest class), got {k_shot + n_query}"
            )
        picked = torch.rand(num_episodes, num_classes, generator=generator).argsort(1)[:, :n_way]
        order = torch.rand(num_episodes, n_way, self.per_class, generator=generator).argsort(2)
        rows = self.index[picked]  # (E, N, P)
        chosen = rows.gather(2, order[:, :, : k_shot + n_query])  # (E, N, K+Q)
        support = chosen[:, :, :k_shot].reshape(num_episodes, -1)
        query = chosen[:, :, k_shot:].reshape(num_episodes, -1)
        labels = torch.arange(n_way)
        return Episodes(
            self.x[support],
            labels.repeat_interleave(k_shot).expand(num_episodes, -1).clone(),
            self.x[query],
            labels.repeat_interleave(n_query).expand(num_episodes, -1).clone(),
            self.classes[picked],
        )


def _check_episode(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> None:
    check_tensor("features", features)
    check_tensor("labels", labels)
    check_id_dtype("labels", labels)
    if features.dim() != 3:
        raise ShapeError(
            f"features: expected shape (E, S, d) (episodes, support samples, features), "
            f"got {shape_str(features.shape)}"
        )
    if labels.shape != features.shape[:2]:
        raise ShapeError(
            f"labels: expected shape {shape_str(features.shape[:2])} (one per support "
            f"sample), got {shape_str(labels.shape)}"
        )
    if labels.numel() and bool(((labels < 0) | (labels >= n_way)).any()):
        raise HypercoreError(f"labels: expected values in 0..{n_way - 1} (n_way={n_way})")


def _check_query(query: torch.Tensor, support: torch.Tensor) -> None:
    check_tensor("query", query)
    episodes, _, dim = support.shape
    if query.dim() != 3 or query.shape[0] != episodes or query.shape[2] != dim:
        raise ShapeError(
            f"query: expected shape ({episodes}, Q, {dim}) (the support's episodes and "
            f"features), got {shape_str(query.shape)}"
        )


def class_means(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    r"""Per-episode class means of the support features (the prototypes :math:`p_n`).

    Shapes:
        ``features (E, S, d)``, ``labels (E, S)`` with values in ``0..n_way-1``
        -> ``(E, n_way, d)``. A class without a support sample gets the zero vector.
    """
    n_way = check_positive_int("n_way", n_way)
    _check_episode(features, labels, n_way)
    one_hot = nn.functional.one_hot(labels, n_way).to(features.dtype)  # (E, S, N)
    counts = one_hot.sum(1).clamp_min(1).unsqueeze(-1)  # (E, N, 1)
    return one_hot.transpose(1, 2) @ features / counts


def cosine_kernel(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    r"""Cosine similarity between every row of ``a`` and every row of ``b``, per episode.

    :math:`k(a_i, b_j) = a_i^\top b_j / (\lVert a_i\rVert \lVert b_j\rVert)`, each norm
    clamped below at ``eps``.

    Shapes:
        ``a (E, A, d)``, ``b (E, B, d)`` -> ``(E, A, B)``, values in ``[-1, 1]``.
    """
    check_tensor("a", a)
    check_tensor("b", b)
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ShapeError(
            f"a, b: expected shapes (E, A, d) and (E, B, d) with the same E and d, got "
            f"{shape_str(a.shape)} and {shape_str(b.shape)}"
        )
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    return a @ b.transpose(1, 2)


def prototype_logits(
    support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, n_way: int
) -> torch.Tensor:
    r"""Prototypical-network logits :math:`-\lVert q - p_n \rVert^2` (Snell et al., 2017).

    Shapes:
        ``support (E, S, d)``, ``support_y (E, S)``, ``query (E, Q, d)`` -> ``(E, Q, n_way)``.
    """
    prototypes = class_means(support, support_y, n_way)
    _check_query(query, support)
    return -torch.cdist(query, prototypes).pow(2)


# --------------------------------------------------------------------------- HyperShot


class KernelHyperClassifier(nn.Module):
    r"""HyperShot's head: a hypernetwork reads the support kernel matrix and writes the classifier.

    For an episode with class means :math:`p_1..p_N` (:func:`class_means`) of the
    support features and query features :math:`q`:

    .. math::

        \theta = H\big(\operatorname{vec}[k(p_i, p_j)]_{i,j}\big), \qquad
        \text{logits}(q) = T_\theta\big([k(q, p_n)]_n\big),

    where :math:`k` is the cosine kernel, :math:`H` a
    :class:`hypercore.HyperNetwork` (a :class:`~hypercore.DataEncoder` on the
    flattened :math:`N \times N` kernel matrix, an MLP body and a ``once`` head)
    and :math:`T` the target: ``Linear(N, target_hidden) - ReLU - Linear(target_hidden, N)``
    (or ``Linear(N, N)`` when ``target_hidden`` is ``()``). All of :math:`T`'s
    weights are generated, one set per episode. The backbone :math:`f` is not part
    of this module: pass features.

    Args:
        n_way: ``N``.
        target_hidden: hidden widths of :math:`T`, e.g. ``(32,)`` or ``()``.
        encoder_hidden: hidden widths of the kernel-matrix encoder.
        embedding_dim: the encoder's output size.
        body_hidden: the hypernetwork body's hidden widths.

    Shapes:
        ``support (E, S, d)``, ``support_y (E, S)`` in ``0..N-1``, ``query (E, Q, d)``
        -> logits ``(E, Q, N)``.
    """

    def __init__(
        self,
        n_way: int,
        target_hidden: Sequence[int] = (32,),
        encoder_hidden: Sequence[int] = (64,),
        embedding_dim: int = 32,
        body_hidden: Sequence[int] = (64,),
    ):
        super().__init__()
        import hypercore as hc

        self.n_way = check_positive_int("n_way", n_way)
        widths = (self.n_way, *check_int_sequence("target_hidden", target_hidden), self.n_way)
        layers: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(itertools.pairwise(widths)):
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(w_in, w_out))
        self.hnet = hc.HyperNetwork.build(
            nn.Sequential(*layers),
            hc.DataEncoder(
                self.n_way * self.n_way,
                check_positive_int("embedding_dim", embedding_dim),
                hidden=check_int_sequence("encoder_hidden", encoder_hidden),
            ),
            head="once",
            body_hidden=check_int_sequence("body_hidden", body_hidden),
        )

    def generate(self, support: torch.Tensor, support_y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The target's weights for each episode: ``{name: (E, *shape)}``."""
        prototypes = class_means(support, support_y, self.n_way)  # (E, N, d)
        gram = cosine_kernel(prototypes, prototypes)  # (E, N, N)
        return self.hnet.generate(gram.flatten(1))

    def forward(
        self, support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor
    ) -> torch.Tensor:
        prototypes = class_means(support, support_y, self.n_way)
        _check_query(query, support)
        gram = cosine_kernel(prototypes, prototypes)
        weights = self.hnet.generate(gram.flatten(1))
        relations = cosine_kernel(query, prototypes)  # (E, Q, N)
        return self.hnet.target(relations, weights)


# --------------------------------------------------------------------------- fine-tuning


def fit_linear_head(
    support: torch.Tensor,
    support_y: torch.Tensor,
    n_way: int,
    *,
    steps: int = 100,
    lr: float = 0.1,
    weight_decay: float = 1e-3,
) -> dict[str, torch.Tensor]:
    r"""Fit a new linear head on each episode's support features (the fine-tuning baseline).

    Minimises, for every episode independently (batched: the episodes' losses are
    summed, and no parameter is shared between episodes),

    .. math:: \frac1S \sum_j \operatorname{CE}(W f_j + b,\ y_j) + \lambda \lVert W \rVert^2

    with ``steps`` full-batch Adam steps from :math:`W = 0, b = 0`. The features
    are not changed (the backbone stays frozen) and no gradient flows back to them.

    Shapes:
        ``support (E, S, d)``, ``support_y (E, S)`` -> ``{"weight": (E, N, d), "bias": (E, N)}``,
        the layout of :func:`hypercore.baselines.prototype_classifier` (apply with
        ``hypercore.Target(nn.Linear(d, N))(query, weights)`` or
        ``query @ weight.transpose(1, 2) + bias[:, None]``).
    """
    n_way = check_positive_int("n_way", n_way)
    steps = check_positive_int("steps", steps)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    weight_decay = check_float("weight_decay", weight_decay, low=0.0)
    _check_episode(support, support_y, n_way)
    feats = support.detach()
    episodes, samples, dim = feats.shape
    weight = torch.zeros(episodes, n_way, dim, dtype=feats.dtype, device=feats.device)
    bias = torch.zeros(episodes, n_way, dtype=feats.dtype, device=feats.device)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            logits = feats @ weight.transpose(1, 2) + bias[:, None]  # (E, S, N)
            loss = (
                nn.functional.cross_entropy(
                    logits.reshape(-1, n_way), support_y.reshape(-1), reduction="sum"
                )
                / samples
                + weight_decay * weight.pow(2).sum()
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return {"weight": weight.detach(), "bias": bias.detach()}


# --------------------------------------------------------------------------- training

#: ``evaluate(step) -> accuracy``, called during training to record a learning curve.
Evaluate = Callable[[int], float]


def meta_train(
    model: nn.Module,
    sampler: EpisodeSampler,
    *,
    n_way: int,
    k_shot: int,
    n_query: int,
    steps: int,
    episodes_per_step: int,
    lr: float,
    seed: int,
    evaluate: Evaluate | None = None,
    eval_every: int = 0,
) -> list[tuple[int, float]]:
    r"""Episodic meta-training: ``steps`` Adam steps on the query cross-entropy.

    Each step draws ``episodes_per_step`` fresh N-way K-shot episodes from
    ``sampler`` (with a generator seeded by ``seed``, so every method trained with
    the same seed sees the same episodes) and minimises

    .. math:: \frac{1}{E\,NQ} \sum_{e} \sum_{(q, y) \in \mathcal Q_e}
        \operatorname{CE}\big(\text{model}(\mathcal S_e, q),\ y\big).

    ``model(support_x, support_y, query_x)`` returns logits ``(E, N*Q, N)``. The
    model is left in eval mode. With ``evaluate`` and ``eval_every > 0``, returns the
    curve ``[(step, evaluate(step)), ...]`` at steps ``eval_every, 2*eval_every, ...``
    (the model in eval mode and without gradients during each call), else ``[]``.
    """
    steps = check_positive_int("steps", steps)
    episodes_per_step = check_positive_int("episodes_per_step", episodes_per_step)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    eval_every = check_int("eval_every", eval_every, 0)
    generator = torch.Generator().manual_seed(int(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    device = next(model.parameters()).device
    curve: list[tuple[int, float]] = []
    model.train()
    for step in range(1, steps + 1):
        ep = sampler.sample(n_way, k_shot, n_query, episodes_per_step, generator).to(device)
        logits = model(ep.support_x, ep.support_y, ep.query_x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, n_way), ep.query_y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if evaluate is not None and eval_every and step % eval_every == 0:
            curve.append((step, _evaluate(model, evaluate, step)))
    model.eval()
    return curve


def pretrain_classifier(
    backbone: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    classes: Sequence[int],
    *,
    feature_dim: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    evaluate: Evaluate | None = None,
    eval_every: int = 0,
) -> tuple[nn.Linear, list[tuple[int, float]]]:
    """Pre-train ``backbone`` as an ordinary classifier over all of ``classes`` at once.

    A linear layer ``feature_dim -> len(classes)`` is put on the backbone and both
    are trained with Adam on the cross-entropy of mini-batches of ``batch_size``
    samples of those classes (drawn with replacement, generator seeded by ``seed``),
    for ``steps`` steps: the pre-training half of the fine-tuning baseline. Returns
    the classification layer (discarded for few-shot use) and the curve, as
    :func:`meta_train` does (``evaluate`` sees the backbone in eval mode).
    """
    check_tensor("x", x)
    check_tensor("y", y)
    check_id_dtype("y", y)
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    feature_dim = check_positive_int("feature_dim", feature_dim)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    eval_every = check_int("eval_every", eval_every, 0)
    wanted = torch.as_tensor(list(classes), dtype=torch.long, device=y.device)
    if wanted.numel() == 0:
        raise HypercoreError("classes: expected a non-empty sequence of class labels")
    keep = torch.nonzero(torch.isin(y, wanted)).squeeze(1)
    if keep.numel() == 0:
        raise HypercoreError("classes: none of them occurs in y")
    remap = torch.full((int(y.max()) + 1,), -1, dtype=torch.long, device=y.device)
    remap[wanted] = torch.arange(wanted.numel(), device=y.device)
    device = next(backbone.parameters()).device
    head = nn.Linear(feature_dim, wanted.numel()).to(device)
    params = [*backbone.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(int(seed))
    curve: list[tuple[int, float]] = []
    backbone.train()
    for step in range(1, steps + 1):
        batch = keep[torch.randint(keep.numel(), (batch_size,), generator=generator)]
        logits = head(backbone(x[batch].to(device)))
        loss = nn.functional.cross_entropy(logits, remap[y[batch]].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if evaluate is not None and eval_every and step % eval_every == 0:
            curve.append((step, _evaluate(backbone, evaluate, step)))
    backbone.eval()
    return head, curve


def _evaluate(model: nn.Module, evaluate: Evaluate, step: int) -> float:
    model.eval()
    with torch.no_grad():
        value = float(evaluate(step))
    model.train()
    return value


# --------------------------------------------------------------------------- metrics


def episode_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The query accuracy of each episode.

    Shapes:
        ``logits (E, Q, N)``, ``labels (E, Q)`` -> ``(E,)`` float, values in ``[0, 1]``.
    """
    check_tensor("logits", logits)
    check_tensor("labels", labels)
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ShapeError(
            f"logits, labels: expected shapes (E, Q, N) and (E, Q), got "
            f"{shape_str(logits.shape)} and {shape_str(labels.shape)}"
        )
    return (logits.argmax(-1) == labels).float().mean(1)


def episode_interval(per_episode: torch.Tensor, z: float = 1.96) -> tuple[float, float]:
    r"""Mean and half-width of the usual few-shot 95% interval over test episodes.

    :math:`\bar a \pm z\, s / \sqrt E` with :math:`s` the sample standard deviation
    (``ddof=1``) of the ``E`` per-episode accuracies (the normal interval that
    few-shot papers report over 600+ episodes).

    Shapes:
        ``per_episode (E,)`` with ``E >= 2`` -> ``(mean, half_width)``.
    """
    check_tensor("per_episode", per_episode)
    if per_episode.dim() != 1 or per_episode.numel() < 2:
        raise ShapeError(
            f"per_episode: expected shape (E,) with E >= 2, got {shape_str(per_episode.shape)}"
        )
    z = check_float("z", z, low=0.0, low_open=True)
    values = per_episode.double()
    half = z * float(values.std(unbiased=True)) / math.sqrt(values.numel())
    return float(values.mean()), half
