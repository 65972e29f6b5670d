r"""Transfer to a new task: adapt a task embedding, a linear head, or the whole network.

A family of tasks over one dataset: each task relabels the dataset's classes
with a *code* :math:`s \in \{0, \dots, K-1\}^C` (class :math:`c` gets label
:math:`s_c`). Binary subset tasks ("is the digit in :math:`S`?") are the codes
with :math:`|S|` ones (:func:`subset_codes`). After pre-training on source tasks
:math:`t = 1..T`, a new task is learned from a few labelled examples in one of
four ways (the chapter *Transfer learning* compares them):

Embedding-only (:class:`EmbeddingAdapter`)
    A task-conditioned hypernetwork :math:`h_\phi` generates the target's weights
    :math:`\theta = h_\phi(e)`. Freeze :math:`\phi` and learn one new embedding,

    .. math:: e^\star = \arg\min_e \frac1n \sum_i \ell\big(f(x_i;\ h_\phi(e)),\ y_i\big),

    started at the mean of the source embeddings: :math:`E` trainable numbers
    (von Oswald et al., 2020; the latent adaptation of LEO, Rusu et al., 2019).
Linear probe (:class:`LinearProbe`)
    A feature extractor :math:`g` pre-trained on the sources, frozen, and a new
    linear head: :math:`y = W g(x) + b`, :math:`(F + 1) K` numbers.
Fine-tuning
    The pre-trained extractor and a new head, all trainable.
From scratch
    The same target network, freshly initialised.

Adaptation is full-batch Adam on the cross-entropy of the labelled examples
(:func:`adapt`); the learning rate and the number of steps are chosen on a grid
by stratified :math:`k`-fold cross-validation *on those examples only*
(:func:`select_and_adapt`): the same protocol for every method.

Pre-training (:func:`pretrain_multitask`) fits all source tasks at once on the
same batches: a model maps ``x`` of shape ``(B, D)`` to logits ``(T, B, K)``, one
row per source task (:meth:`hypercore.HyperNetwork.forward_sets` for a
hypernetwork, :class:`MultiHeadNet` for a shared trunk with one head per task).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_int,
    check_positive_int,
    shape_str,
)
from hypercore.hypernetwork import HyperNetwork, take

__all__ = [
    "EmbeddingAdapter",
    "LinearProbe",
    "MultiHeadNet",
    "Selection",
    "adapt",
    "num_trainable",
    "pretrain_multitask",
    "relabel",
    "sample_shots",
    "select_and_adapt",
    "stratified_folds",
    "subset_codes",
]


# --------------------------------------------------------------------------- tasks


def subset_codes(num_classes: int = 10, positives: int = 5) -> torch.Tensor:
    """Every binary task "is the class in :math:`S`?" with :math:`|S|` = ``positives``.

    A task and its complement (the same partition with the labels swapped) are
    one task, so only the codes that give class 0 the label 0 are returned.

    Returns:
        ``(M, num_classes)`` int64 codes of 0/1, in lexicographic order of the
        positive classes; ``M = binom(C, k)`` (half of it when ``2k = C``).
        For 10 classes and 5 positives, ``M = 126``.
    """
    num_classes = check_int("num_classes", num_classes, minimum=2)
    positives = check_int("positives", positives, minimum=1)
    if positives >= num_classes:
        raise HypercoreError(
            f"positives: expected fewer than num_classes={num_classes} positive classes, "
            f"got {positives}"
        )
    codes = []
    for subset in itertools.combinations(range(num_classes), positives):
        code = torch.zeros(num_classes, dtype=torch.long)
        code[list(subset)] = 1
        if 2 * positives == num_classes and code[0] == 1:
            continue  # its complement (class 0 negative) is kept instead
        codes.append(code)
    return torch.stack(codes)


def relabel(y: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Task labels of class labels: ``code[y]`` (``y`` of any shape; ``code`` ``(C,)``
    for one task or ``(T, C)`` for ``T`` tasks, giving ``(T, *y.shape)``)."""
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point:
        raise HypercoreTypeError(f"y: expected an integer tensor of class labels, got {y!r}")
    if not isinstance(code, torch.Tensor) or code.dim() not in (1, 2):
        got = shape_str(code.shape) if isinstance(code, torch.Tensor) else type(code).__name__
        raise ShapeError(f"code: expected shape (C,) or (T, C), got {got}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= code.shape[-1]):
        raise HypercoreError(
            f"y: expected class labels in 0..{code.shape[-1] - 1} (the code's length), got "
            f"{int(y.min())}..{int(y.max())}"
        )
    code = code.to(y.device)
    return code[y] if code.dim() == 1 else code[:, y]


def sample_shots(y: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``shots`` examples of every class in ``y`` (drawn without replacement).

    Returns:
        ``(num_classes * shots,)`` int64 indices, class by class, on ``y``'s device.
    """
    shots = check_positive_int("shots", shots)
    y_cpu = y.detach().cpu()
    picked = []
    for c in torch.unique(y_cpu).tolist():
        where = torch.nonzero(y_cpu == c).flatten()
        if len(where) < shots:
            raise HypercoreError(
                f"shots: class {c} has only {len(where)} examples, fewer than shots={shots}"
            )
        picked.append(where[torch.randperm(len(where), generator=generator)[:shots]])
    return torch.cat(picked).to(y.device)


def stratified_folds(y: torch.Tensor, folds: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Split ``range(len(y))`` into ``folds`` index sets with each label spread evenly.

    The examples of each label are shuffled and dealt round-robin, continuing
    where the previous label stopped, so fold sizes differ by at most one.
    """
    folds = check_int("folds", folds, minimum=2)
    if len(y) < folds:
        raise HypercoreError(f"folds: expected at most len(y)={len(y)} folds, got {folds}")
    y_cpu = y.detach().cpu()
    out: list[list[int]] = [[] for _ in range(folds)]
    k = 0
    for c in torch.unique(y_cpu).tolist():
        where = torch.nonzero(y_cpu == c).flatten()
        for i in where[torch.randperm(len(where), generator=generator)].tolist():
            out[k % folds].append(i)
            k += 1
    return [torch.tensor(sorted(f), dtype=torch.long, device=y.device) for f in out]


# --------------------------------------------------------------------------- models


def num_trainable(module: nn.Module) -> int:
    """Number of parameters that require grad (what adaptation changes)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class MultiHeadNet(nn.Module):
    """A shared trunk with one linear head per task: ``x (B, D) -> logits (T, B, K)``.

    The usual multi-task network without a hypernetwork; its trunk is the
    feature extractor that the linear probe and fine-tuning start from.

    Args:
        trunk: maps ``(B, D)`` to features ``(B, F)``.
        features: ``F``.
        num_tasks: ``T``; num_classes: ``K`` (per task).
    """

    def __init__(self, trunk: nn.Module, features: int, num_tasks: int, num_classes: int):
        super().__init__()
        if not isinstance(trunk, nn.Module):
            raise HypercoreTypeError(f"trunk: expected an nn.Module, got {type(trunk).__name__}")
        self.trunk = trunk
        self.features = check_positive_int("features", features)
        num_tasks = check_positive_int("num_tasks", num_tasks)
        num_classes = check_positive_int("num_classes", num_classes)
        bound = 1.0 / math.sqrt(features)  # nn.Linear's default initialisation
        self.weight = nn.Parameter(
            torch.empty(num_tasks, num_classes, features).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(num_tasks, num_classes).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        if h.dim() != 2 or h.shape[1] != self.features:
            raise ShapeError(
                f"trunk: expected features of shape (B, {self.features}), got {shape_str(h.shape)}"
            )
        return torch.einsum("bf,tkf->tbk", h, self.weight) + self.bias[:, None, :]


class LinearProbe(nn.Module):
    """A frozen feature extractor and a new trainable linear head: :math:`W g(x) + b`.

    Args:
        features: ``g``, mapping ``(B, D)`` to ``(B, F)``; its parameters are set to
            ``requires_grad=False`` (it is frozen in place, not copied).
        in_features: ``F``; num_classes: ``K``.
    """

    def __init__(self, features: nn.Module, in_features: int, num_classes: int):
        super().__init__()
        if not isinstance(features, nn.Module):
            raise HypercoreTypeError(
                f"features: expected an nn.Module, got {type(features).__name__}"
            )
        self.features = features.requires_grad_(False)
        self.head = nn.Linear(
            check_positive_int("in_features", in_features),
            check_positive_int("num_classes", num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            h = self.features(x)
        return self.head(h)


class EmbeddingAdapter(nn.Module):
    r"""A frozen task-conditioned hypernetwork and one new, trainable embedding.

    ``forward(x)`` is :math:`f(x;\ h_\phi(e))`: the embedding goes through the
    hypernetwork's body and head (its conditioner, the table of source
    embeddings, is bypassed), and the generated weights run the target. Only
    :math:`e` (``E`` numbers) is trainable; the hypernetwork's parameters are set
    to ``requires_grad=False`` in place.

    Args:
        hnet: a trained :class:`~hypercore.HyperNetwork` whose conditioner gives
            ``E``-dimensional embeddings (e.g. a :class:`~hypercore.TaskEmbedding`).
        init: the starting embedding, shape ``(E,)`` (e.g. the mean of the
            source embeddings); copied.
    """

    def __init__(self, hnet: HyperNetwork, init: torch.Tensor):
        super().__init__()
        if not isinstance(hnet, HyperNetwork):
            raise HypercoreTypeError(
                f"hnet: expected a hypercore.HyperNetwork, got {type(hnet).__name__}"
            )
        dim = hnet.conditioner.out_features
        if not isinstance(init, torch.Tensor) or tuple(init.shape) != (dim,):
            got = shape_str(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__
            raise ShapeError(f"init: expected an embedding of shape ({dim},), got {got}")
        self.hnet = hnet.requires_grad_(False)
        self.embedding = nn.Parameter(init.detach().clone().float())

    def generate(self) -> dict[str, torch.Tensor]:
        """The target's weights for the current embedding: ``{name: (*shape)}``."""
        weights = self.hnet.head(self.hnet.body(self.embedding.unsqueeze(0)))
        return {name: take(w, 0) for name, w in weights.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hnet.target(x, self.generate())


# --------------------------------------------------------------------------- training


def pretrain_multitask(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    codes: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    r"""Train on all source tasks at once: every step, one batch under every task.

    The loss is the cross-entropy averaged over tasks and samples,
    :math:`\frac{1}{TB}\sum_{t,b} \ell(\mathrm{forward}(x)_{t,b},\ s^{(t)}_{y_b})`.

    Args:
        model: whose trainable parameters Adam updates.
        forward: ``x (B, D) -> logits (T, B, K)``, e.g.
            ``lambda x: hnet.forward_sets(x, torch.arange(T))`` or a :class:`MultiHeadNet`.
        x, y: the source data and its *class* labels ``(N,)``.
        codes: ``(T, C)``, the source tasks' codes (see :func:`relabel`).
        steps, batch_size, lr: Adam steps on batches drawn with a generator seeded by ``seed``.

    Returns:
        The loss of every step.
    """
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    if codes.dim() != 2:
        raise ShapeError(f"codes: expected shape (T, C), got {shape_str(codes.shape)}")
    labels = relabel(y, codes)  # (T, N)
    g = torch.Generator(device="cpu").manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=g).to(x.device)
        logits = forward(x[idx])
        if logits.dim() != 3 or logits.shape[:2] != (len(codes), len(idx)):
            raise ShapeError(
                f"forward: expected logits of shape (T={len(codes)}, B={len(idx)}, K), got "
                f"{shape_str(logits.shape)}"
            )
        loss = F.cross_entropy(logits.flatten(0, 1), labels[:, idx].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def adapt(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    steps: int,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    checkpoints: Sequence[int] = (),
) -> list[tuple[int, float, float]]:
    """Full-batch Adam on ``cross_entropy(model(x), y)`` for ``steps`` steps, in place.

    Only parameters with ``requires_grad`` are updated. With ``x_val, y_val``, the
    model is evaluated (accuracy and mean cross-entropy) after each step count
    in ``checkpoints`` (each ``<= steps``).

    Returns:
        ``[(step, val_accuracy, val_loss), ...]`` for the checkpoints (empty without
        validation data).
    """
    steps = check_int("steps", steps, minimum=0)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    if len(x) != len(y):
        raise ShapeError(f"x, y: expected one label per example, got {len(x)} and {len(y)}")
    marks = sorted({check_int("checkpoints", c, minimum=0) for c in checkpoints})
    if marks and marks[-1] > steps:
        raise HypercoreError(f"checkpoints: expected step counts <= steps={steps}, got {marks[-1]}")
    if (x_val is None) != (y_val is None):
        raise HypercoreError("x_val, y_val: give both or neither")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise HypercoreError("model: has no trainable parameters (requires_grad) to adapt")
    optimizer = torch.optim.Adam(params, lr=lr)
    results: list[tuple[int, float, float]] = []

    def evaluate(step: int) -> None:
        if x_val is None or y_val is None or step not in marks:
            return
        with torch.no_grad():
            logits = model(x_val)
            results.append(
                (
                    step,
                    float((logits.argmax(-1) == y_val).float().mean()),
                    float(F.cross_entropy(logits, y_val)),
                )
            )

    evaluate(0)
    for step in range(1, steps + 1):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        evaluate(step)
    return results


@dataclass(frozen=True)
class Selection:
    """The grid point chosen by cross-validation, and its cross-validated scores."""

    lr: float
    steps: int
    cv_accuracy: float
    cv_loss: float


def select_and_adapt(
    make: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lrs: Sequence[float],
    steps: Sequence[int],
    folds: int = 2,
    seed: int = 0,
) -> tuple[nn.Module, Selection]:
    """Choose the learning rate and step count by cross-validation on ``(x, y)``, then
    adapt a fresh model on all of ``(x, y)`` with the choice.

    For each learning rate and each of ``folds`` stratified folds, a fresh model
    (``make()``, seeded with ``seed`` so every run starts from the same
    initialisation) is adapted on the other folds and scored on the held-out one
    after each count in ``steps``. The grid point with the highest mean held-out
    accuracy wins; ties go to the lower mean held-out cross-entropy, then to
    fewer steps and the smaller learning rate. Nothing but ``(x, y)`` is used.

    Returns:
        The adapted model and the :class:`Selection`.
    """
    if not lrs or not steps:
        raise HypercoreError(f"lrs, steps: expected non-empty grids, got {lrs!r} and {steps!r}")
    grid_steps = sorted({check_int("steps", s, minimum=1) for s in steps})
    split = stratified_folds(y, folds, torch.Generator().manual_seed(seed))
    scores: dict[tuple[float, int], list[tuple[float, float]]] = {}
    for lr in lrs:
        for k, held in enumerate(split):
            train = torch.cat([f for j, f in enumerate(split) if j != k])
            torch.manual_seed(seed)
            model = make()
            marks = adapt(
                model,
                x[train],
                y[train],
                lr=lr,
                steps=grid_steps[-1],
                x_val=x[held],
                y_val=y[held],
                checkpoints=grid_steps,
            )
            for step, acc, loss in marks:
                scores.setdefault((lr, step), []).append((acc, loss))
    ranked = sorted(
        scores.items(),
        key=lambda item: (
            -sum(a for a, _ in item[1]) / len(item[1]),
            sum(loss for _, loss in item[1]) / len(item[1]),
            item[0][1],
            item[0][0],
        ),
    )
    (lr, step), values = ranked[0]
    choice = Selection(
        lr=float(lr),
        steps=int(step),
        cv_accuracy=sum(a for a, _ in values) / len(values),
        cv_loss=sum(loss for _, loss in values) / len(values),
    )
    torch.manual_seed(seed)
    model = make()
    adapt(model, x, y, lr=choice.lr, steps=choice.steps)
    return model, choice
