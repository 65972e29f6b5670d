r"""Continual learning: a task-conditioned hypernetwork with an output regulariser, and baselines.

Tasks :math:`1..T` arrive one after another; while learning task :math:`t` only its
data is available, and at test time the task id is given (the *task-incremental*
scenario, "CL1" of von Oswald et al., 2020).

The hypernetwork (:class:`HyperNetworkLearner`)
    A task-conditioned hypernetwork :math:`f_h(e, \Theta_h)` maps a learned task
    embedding :math:`e_t` to the target network's weights. Before task :math:`t`
    (counting from 1) the weights it generates for the earlier tasks are stored,
    :math:`W^*_{t'} = f_h(e^*_{t'}, \Theta^*_h)`, and task :math:`t` is learned with

    .. math::

        L = L_\text{task}(t) + \frac{\beta}{t-1} \sum_{t'=1}^{t-1}
            \big\| f_h(e_{t'}, \Theta_h) - f_h(e^*_{t'}, \Theta^*_h) \big\|^2 ,

    (:func:`output_regularizer`), the sum computed in one batched
    ``hnet.generate(tensor of earlier task ids)`` call. The paper's optional
    look-ahead (evaluating the regulariser at :math:`\Theta_h + \Delta\Theta_h`)
    is not used. What is remembered per task is one embedding :math:`e_t`.
    :func:`compression_ratio` gives the paper's ratio of trainable hypernetwork
    numbers to target-network numbers (a chunked head, ``head="chunk"``, can
    bring it below 1).

The baselines (plain torch; no continual-learning library is needed)
    All use the same :class:`MultiHeadMLP` (a shared trunk and one output head
    per task, so they too are given the task id at test time):

    * :class:`FineTuning`: no protection of earlier tasks.
    * :class:`EWC` (Kirkpatrick et al., 2017), one penalty per earlier task with
      its own diagonal Fisher :math:`F_{t'}` and anchor :math:`\theta^*_{t'}`
      (the original, not the online variant), so its memory grows by
      :math:`2P` numbers per task:
      :math:`L = L_\text{task} + \frac{\lambda}{2} \sum_{t'<t} \sum_k
      F_{t',k} (\theta_k - \theta^*_{t',k})^2`, with the *expected* Fisher
      :math:`F = \mathbb{E}_x \sum_c p(c|x)\, (\partial_\theta \log p(c|x))^2`.
    * :class:`SI` (Zenke et al., 2017), one accumulated importance
      :math:`\Omega_k = \sum_{t'} \omega^{t'}_k / ((\Delta^{t'}_k)^2 + \xi)` with the
      path integral :math:`\omega_k = -\sum_\text{steps} g_k \, \delta\theta_k`
      (:math:`g` the gradient of the loss that was minimised, as in van de Ven &
      Tolias' implementation) and :math:`L = L_\text{task} + c \sum_k \Omega_k
      (\theta_k - \theta^*_k)^2`; fixed memory :math:`2P`.
    * joint training on all tasks at once (:func:`train_jointly`): the upper bound.

Metrics (:func:`average_accuracy`, :func:`backward_transfer`)
    :func:`train_sequentially` returns the accuracy matrix :math:`R` with
    :math:`R_{i,j}` the accuracy on task :math:`j` after learning task :math:`i`.
    Average accuracy :math:`\frac1T \sum_j R_{T,j}`; backward transfer
    (Lopez-Paz & Ranzato, 2017) :math:`\frac{1}{T-1} \sum_{j<T} (R_{T,j} - R_{j,j})`
    (negative: forgetting).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hypercore.data.dataset import Split
from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_positive_int,
    shape_str,
)
from hypercore.hypernetwork import HyperNetwork
from hypercore.target import StructuredWeight

__all__ = [
    "EWC",
    "SI",
    "ContinualLearner",
    "FineTuning",
    "HyperNetworkLearner",
    "MultiHeadMLP",
    "average_accuracy",
    "backward_transfer",
    "compression_ratio",
    "expected_fisher",
    "output_regularizer",
    "snapshot_weights",
    "train_jointly",
    "train_sequentially",
    "validation_split",
]


# --------------------------------------------------------------------------- data


def validation_split(task: Split, fraction: float = 0.2, seed: int = 0) -> Split:
    """Hold out part of a task's *training* data for tuning: a :class:`Split` whose
    ``x_train``/``y_train`` are the rest and whose ``x_test``/``y_test`` are the
    held-out samples (the real test set is not touched).

    Args:
        task: one task of a sequence.
        fraction: share of the training samples held out, in (0, 1).
        seed: seed of the random choice.
    """
    fraction = check_float("fraction", fraction, low=0.0, high=1.0, low_open=True)
    n = len(task.x_train)
    n_val = round(fraction * n)
    if not 0 < n_val < n:
        raise HypercoreError(
            f"fraction: {fraction} of {n} training samples leaves no validation or no "
            "training samples"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(task.x_train.device)
    val, train = order[:n_val], order[n_val:]
    return Split(
        task.x_train[train],
        task.y_train[train],
        task.x_train[val],
        task.y_train[val],
        task.num_classes,
        f"{task.name} (validation split)",
        {**task.info, "validation_fraction": fraction, "validation_seed": seed},
    )


# --------------------------------------------------------------------------- models


class MultiHeadMLP(nn.Module):
    """A one-hidden-layer ReLU trunk shared by all tasks and one linear head per task.

    ``model(x, t)`` gives task ``t``'s logits: ``x`` is ``(B, in_features)``, ``t`` an
    int (the whole batch) or a ``(B,)`` tensor of task ids (one per sample, for
    joint training); the output is ``(B, num_classes)``. It has
    ``in*hidden + hidden + num_tasks*(hidden*num_classes + num_classes)`` parameters.
    """

    def __init__(self, in_features: int, hidden: int, num_classes: int, num_tasks: int):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.hidden = check_positive_int("hidden", hidden)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.num_tasks = check_positive_int("num_tasks", num_tasks)
        self.trunk = nn.Linear(in_features, hidden)
        bound = 1.0 / math.sqrt(hidden)  # nn.Linear's default init, per head
        self.head_weight = nn.Parameter(
            torch.empty(num_tasks, num_classes, hidden).uniform_(-bound, bound)
        )
        self.head_bias = nn.Parameter(torch.empty(num_tasks, num_classes).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ShapeError(f"x: expected shape (B, {self.in_features}), got {shape_str(x.shape)}")
        h = F.relu(self.trunk(x))
        if isinstance(task, torch.Tensor) and task.dim() == 1:
            if len(task) != len(x):
                raise ShapeError(
                    f"task: expected one task id per sample ({len(x)}), got {len(task)}"
                )
            w, b = self.head_weight[task], self.head_bias[task]  # (B, C, H), (B, C)
            return torch.bmm(w, h.unsqueeze(2)).squeeze(2) + b
        t = int(task)
        if not 0 <= t < self.num_tasks:
            raise HypercoreError(f"task: expected a task id in 0..{self.num_tasks - 1}, got {t}")
        return F.linear(h, self.head_weight[t], self.head_bias[t])


# --------------------------------------------------------------------------- learners


class ContinualLearner(nn.Module):
    """What :func:`train_sequentially` trains: a model, its loss and its hooks.

    Subclasses wrap a model ``model(x, task) -> logits`` and may override
    :meth:`penalty` (added to the task's cross-entropy), :meth:`begin_task` and
    :meth:`end_task` (called with the task's training data), and
    :meth:`before_step` / :meth:`after_step` (around each optimiser step).
    ``memory_per_task`` and ``memory_fixed`` count the numbers a method must
    keep between tasks besides its trainable parameters.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise HypercoreTypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        self.model = model

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        return self.model(x, task)

    def loss(self, x: torch.Tensor, y: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        """Cross-entropy of ``task`` plus :meth:`penalty` (when ``task`` is an int)."""
        out = F.cross_entropy(self(x, task), y)
        if isinstance(task, int):
            out = out + self.penalty(task)
        return out

    def penalty(self, task: int) -> torch.Tensor:
        """The regulariser while learning ``task`` (0 here)."""
        return torch.zeros((), device=_device(self))

    def begin_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called before the first step of ``task``."""

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called after the last step of ``task``."""

    def before_step(self) -> None:
        """Called after ``backward()``, before ``optimizer.step()``."""

    def after_step(self) -> None:
        """Called after ``optimizer.step()``."""

    @property
    def memory_per_task(self) -> int:
        """Numbers stored for each additional task (besides trainable parameters)."""
        return 0

    @property
    def memory_fixed(self) -> int:
        """Numbers stored once, whatever the number of tasks (besides trainable parameters)."""
        return 0


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


class FineTuning(ContinualLearner):
    """Plain sequential training: each task from where the last one left off."""


def _check_strength(name: str, value: float) -> float:
    return check_float(name, value, low=0.0)


def _trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def _no_grad_dict(params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


def expected_fisher(
    model: nn.Module, x: torch.Tensor, task: int, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    r"""The diagonal of the expected Fisher information of ``model(x, task)``'s softmax:

    .. math:: F_k = \frac1N \sum_{n=1}^N \sum_c p(c \mid x_n)\,
              \big(\partial_{\theta_k} \log p(c \mid x_n)\big)^2 ,

    with per-sample gradients from ``torch.func`` (``vmap`` over samples, one pass
    per class; exact, no label sampling).

    Args:
        model: ``model(x, task) -> (B, C)`` logits.
        x: ``(N, features)`` inputs of the task.
        task: the task id passed to ``model``.
        batch_size: samples per vectorised chunk.

    Returns:
        ``{name: tensor shaped like the parameter}`` for every trainable parameter.
    """
    from torch.func import functional_call, grad, vmap

    if x.dim() < 2 or len(x) == 0:
        raise ShapeError(f"x: expected a non-empty batch (N, ...), got {shape_str(x.shape)}")
    params = _no_grad_dict(_trainable(model))
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}

    def log_prob(p: dict[str, torch.Tensor], xi: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, p, (xi.unsqueeze(0), task))
        return torch.log_softmax(logits, dim=-1)[0, c]

    per_sample = vmap(grad(log_prob), in_dims=(None, 0, None))
    with torch.no_grad():
        probs_all = torch.softmax(model(x, task), dim=-1)
    for start in range(0, len(x), batch_size):
        xb, pb = x[start : start + batch_size], probs_all[start : start + batch_size]
        for c in range(pb.shape[1]):
            grads = per_sample(params, xb, torch.tensor(c, device=x.device))
            for n, g in grads.items():
                weight = pb[:, c].reshape(-1, *([1] * (g.dim() - 1)))
                fisher[n] += (weight * g.detach() ** 2).sum(0)
    return {n: f / len(x) for n, f in fisher.items()}


class EWC(ContinualLearner):
    r"""Elastic weight consolidation (Kirkpatrick et al., 2017), one penalty per earlier task.

    After each task its expected Fisher diagonal (:func:`expected_fisher`) and the
    parameters are stored; while learning task :math:`t` the penalty is
    :math:`\frac{\lambda}{2} \sum_{t'<t} \sum_k F_{t',k} (\theta_k - \theta^*_{t',k})^2`.
    Memory: ``2 * P`` numbers per task (``P`` trainable parameters).

    Args:
        model: ``model(x, task) -> logits`` (e.g. a :class:`MultiHeadMLP`).
        strength: :math:`\lambda \ge 0`.
        fisher_samples: at most this many training samples of a task estimate its Fisher.
    """

    def __init__(self, model: nn.Module, strength: float, fisher_samples: int = 1024):
        super().__init__(model)
        self.strength = _check_strength("strength", strength)
        self.fisher_samples = check_positive_int("fisher_samples", fisher_samples)
        self.fishers: list[dict[str, torch.Tensor]] = []
        self.anchors: list[dict[str, torch.Tensor]] = []

    def penalty(self, task: int) -> torch.Tensor:
        total = torch.zeros((), device=_device(self))
        if not self.fishers or self.strength == 0:
            return total
        params = _trainable(self.model)
        for fisher, anchor in zip(self.fishers, self.anchors, strict=True):
            for n, p in params.items():
                total = total + (fisher[n] * (p - anchor[n]) ** 2).sum()
        return 0.5 * self.strength * total

    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        self.fishers.append(expected_fisher(self.model, x[: self.fisher_samples], task))
        self.anchors.append(_no_grad_dict(_trainable(self.model)))

    @property
    def memory_per_task(self) -> int:
        return 2 * sum(p.numel() for p in _trainable(self.model).values())


class SI(ContinualLearner):
    r"""Synaptic intelligence (Zenke et al., 2017).

    During a task, :math:`\omega_k \mathrel{-}= g_k\, \delta\theta_k` at every step
    (``g`` the gradient of the minimised loss, ``δθ`` the step taken); at its end
    :math:`\Omega_k \mathrel{+}= \omega_k / ((\theta_k - \theta^\text{start}_k)^2 + \xi)`
    and the anchor :math:`\theta^*` becomes the current parameters. The penalty is
    :math:`c \sum_k \Omega_k (\theta_k - \theta^*_k)^2`. Memory: ``2 * P`` numbers
    (Ω and θ*) whatever the number of tasks, plus ``2 * P`` while training (ω and
    the task's starting point).

    Args:
        model: ``model(x, task) -> logits``.
        strength: :math:`c \ge 0`.
        damping: :math:`\xi > 0` (0.1 as in van de Ven & Tolias, 2019).
    """

    def __init__(self, model: nn.Module, strength: float, damping: float = 0.1):
        super().__init__(model)
        self.strength = _check_strength("strength", strength)
        self.damping = check_float("damping", damping, low=0.0, low_open=True)
        params = _trainable(model)
        self.importance = {n: torch.zeros_like(p) for n, p in params.items()}
        self.anchor: dict[str, torch.Tensor] | None = None
        self._omega: dict[str, torch.Tensor] = {}
        self._start: dict[str, torch.Tensor] = {}
        self._before: dict[str, torch.Tensor] = {}

    def penalty(self, task: int) -> torch.Tensor:
        if self.anchor is None or self.strength == 0:
            return torch.zeros((), device=_device(self))
        total = sum(
            (self.importance[n] * (p - self.anchor[n]) ** 2).sum()
            for n, p in _trainable(self.model).items()
        )
        return self.strength * torch.as_tensor(total)

    def begin_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        params = _trainable(self.model)
        self.importance = {n: v.to(params[n].device) for n, v in self.importance.items()}
        self._start = _no_grad_dict(params)
        self._omega = {n: torch.zeros_like(p) for n, p in params.items()}

    @torch.no_grad()
    def before_step(self) -> None:
        self._before = _no_grad_dict(_trainable(self.model))

    @torch.no_grad()
    def after_step(self) -> None:
        for n, p in _trainable(self.model).items():
            if p.grad is not None:
                self._omega[n] -= p.grad * (p.detach() - self._before[n])

    @torch.no_grad()
    def end_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        params = _trainable(self.model)
        for n, p in params.items():
            delta = p.detach() - self._start[n]
            self.importance[n] += self._omega[n] / (delta**2 + self.damping)
        self.anchor = _no_grad_dict(params)

    @property
    def memory_fixed(self) -> int:
        return 2 * sum(p.numel() for p in _trainable(self.model).values())


# --------------------------------------------------------------------------- hypernetwork


def _dense(w: torch.Tensor | StructuredWeight) -> torch.Tensor:
    return w.dense() if isinstance(w, StructuredWeight) else w


def _check_ids(task_ids: torch.Tensor) -> torch.Tensor:
    if not isinstance(task_ids, torch.Tensor):
        raise HypercoreTypeError(
            f"task_ids: expected a (K,) tensor of task ids, got {type(task_ids).__name__}"
        )
    if task_ids.dim() != 1 or len(task_ids) == 0:
        raise ShapeError(
            f"task_ids: expected a non-empty (K,) tensor, got {shape_str(task_ids.shape)}"
        )
    return task_ids


@torch.no_grad()
def snapshot_weights(hnet: HyperNetwork, task_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""The weights the hypernetwork generates now for ``task_ids``, detached:
    :math:`W^*_{t'} = f_h(e^*_{t'}, \Theta^*_h)`, ``{name: (K, *shape)}`` (one batched
    ``generate`` call)."""
    weights = hnet.generate(_check_ids(task_ids))
    return {n: _dense(w).detach().clone() for n, w in weights.items()}


def output_regularizer(
    hnet: HyperNetwork, task_ids: torch.Tensor, targets: dict[str, torch.Tensor]
) -> torch.Tensor:
    r"""von Oswald et al.'s output regulariser, averaged over the ``K`` earlier tasks:

    .. math:: \frac1K \sum_{k=1}^K \big\| f_h(e_{t_k}, \Theta_h) - W^*_{t_k} \big\|^2 ,

    the squared norm over every generated number of a weight set; all ``K`` weight
    sets come from one ``hnet.generate(task_ids)`` call.

    Args:
        hnet: a task-conditioned :class:`~hypercore.HyperNetwork`.
        task_ids: ``(K,)`` ids of the earlier tasks.
        targets: ``{name: (K, *shape)}``, from :func:`snapshot_weights` before the task.

    Returns:
        A scalar, differentiable in the hypernetwork's parameters and embeddings.
    """
    task_ids = _check_ids(task_ids)
    current = hnet.generate(task_ids)
    if set(current) != set(targets):
        raise HypercoreError(
            f"targets: expected the generated weights {sorted(current)}, got {sorted(targets)}"
        )
    total = torch.zeros(len(task_ids), device=task_ids.device)
    for name, w in current.items():
        w = _dense(w)
        if targets[name].shape != w.shape:
            raise ShapeError(
                f"targets[{name!r}]: expected shape {shape_str(w.shape)}, got "
                f"{shape_str(targets[name].shape)}"
            )
        total = total + (w - targets[name]).pow(2).flatten(1).sum(1)
    return total.mean()


def compression_ratio(hnet: HyperNetwork, num_tasks: int | None = None) -> float:
    r"""von Oswald et al.'s compression ratio: the hypernetwork's trainable numbers
    (task embeddings included) over the numbers of one generated target network,
    :math:`|\Theta_h \cup \{e_t\}| / |\Theta_\text{trgt}|`; below 1 is their
    *compressive regime*. With ``num_tasks`` the denominator is instead the
    ``num_tasks`` target networks it stands for (what storing one network per task
    would cost).

    Args:
        hnet: a :class:`~hypercore.HyperNetwork`.
        num_tasks: ``None`` (one target network) or a positive number of tasks.
    """
    if not isinstance(hnet, HyperNetwork):
        raise HypercoreTypeError(
            f"hnet: expected a hypercore HyperNetwork, got {type(hnet).__name__}"
        )
    tasks = 1 if num_tasks is None else check_positive_int("num_tasks", num_tasks)
    counts = hnet.parameter_counts()
    return int(counts["total trainable"]) / (tasks * int(counts["generated per weight set"]))


class HyperNetworkLearner(ContinualLearner):
    r"""A task-conditioned hypernetwork with the output regulariser (von Oswald et al., 2020).

    Before task :math:`t` the weights of tasks :math:`0..t-1` are snapshotted
    (:func:`snapshot_weights`); the penalty is
    :math:`\beta` times :func:`output_regularizer` on them. Memory: one task
    embedding per task (``embedding_dim`` numbers), and a copy of the generated
    weights of earlier tasks (or of :math:`\Theta_h`, to recompute them) while training.

    Args:
        hnet: a :class:`~hypercore.HyperNetwork` whose conditioner is a task embedding.
        beta: :math:`\beta \ge 0`.
    """

    def __init__(self, hnet: HyperNetwork, beta: float):
        if not isinstance(hnet, HyperNetwork):
            raise HypercoreTypeError(
                f"hnet: expected a hypercore HyperNetwork, got {type(hnet).__name__}"
            )
        super().__init__(hnet)
        self.hnet = hnet
        self.beta = _check_strength("beta", beta)
        self.targets: dict[str, torch.Tensor] = {}
        self.previous = torch.zeros(0, dtype=torch.long)

    def begin_task(self, task: int, x: torch.Tensor, y: torch.Tensor) -> None:
        self.previous = torch.arange(task, device=x.device)
        self.targets = snapshot_weights(self.hnet, self.previous) if task > 0 else {}

    def penalty(self, task: int) -> torch.Tensor:
        if not self.targets or self.beta == 0:
            return torch.zeros((), device=_device(self))
        return self.beta * output_regularizer(self.hnet, self.previous, self.targets)

    @property
    def memory_per_task(self) -> int:
        return int(self.hnet.conditioner.out_features)


# --------------------------------------------------------------------------- training


def _batches(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator:
    for _ in range(steps):
        yield torch.randint(n, (min(batch_size, n),), generator=generator)


@torch.no_grad()
def _accuracy(learner: nn.Module, x: torch.Tensor, y: torch.Tensor, task: int) -> float:
    return float((learner(x, task).argmax(-1) == y).float().mean())


def _check_tasks(tasks: Sequence[Split]) -> None:
    if len(tasks) == 0 or not all(isinstance(t, Split) for t in tasks):
        raise HypercoreTypeError("tasks: expected a non-empty sequence of hypercore Split")


def train_sequentially(
    learner: ContinualLearner,
    tasks: Sequence[Split],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> torch.Tensor:
    """Learn ``tasks`` one after another, each for ``steps`` Adam steps (a fresh
    optimiser per task), and test on every task after each one.

    Args:
        learner: a :class:`ContinualLearner`; task ``j`` is called with id ``j``.
        tasks: the sequence; only task ``t``'s ``x_train``/``y_train`` are used
            while learning it; ``x_test``/``y_test`` measure the accuracy.
        steps: optimiser steps per task; batch_size: samples per step (drawn with
            replacement by a generator seeded with ``seed``); lr: Adam's.

    Returns:
        ``R``, ``(T, T)``: ``R[i, j]`` the test accuracy on task ``j`` after task ``i``.
    """
    _check_tasks(tasks)
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    generator = torch.Generator().manual_seed(seed)
    accuracies = torch.zeros(len(tasks), len(tasks))
    for t, task in enumerate(tasks):
        x, y = task.x_train, task.y_train
        learner.train()
        learner.begin_task(t, x, y)
        optimizer = torch.optim.Adam([p for p in learner.parameters() if p.requires_grad], lr=lr)
        for idx in _batches(len(x), batch_size, steps, generator):
            idx = idx.to(x.device)
            loss = learner.loss(x[idx], y[idx], t)
            optimizer.zero_grad()
            loss.backward()
            learner.before_step()
            optimizer.step()
            learner.after_step()
        learner.end_task(t, x, y)
        learner.eval()
        for j, other in enumerate(tasks):
            accuracies[t, j] = _accuracy(learner, other.x_test, other.y_test, j)
    return accuracies


def train_jointly(
    learner: ContinualLearner,
    tasks: Sequence[Split],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> torch.Tensor:
    """Learn all tasks at once (mini-batches drawn from their union, each sample with
    its task id): the multi-task upper bound. Give it ``T * steps`` to match
    :func:`train_sequentially`'s budget.

    Returns:
        ``(T,)`` test accuracies, one per task.
    """
    _check_tasks(tasks)
    steps = check_positive_int("steps", steps)
    x = torch.cat([t.x_train for t in tasks])
    y = torch.cat([t.y_train for t in tasks])
    ids = torch.cat(
        [torch.full((len(t.y_train),), i, device=x.device) for i, t in enumerate(tasks)]
    )
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in learner.parameters() if p.requires_grad], lr=lr)
    learner.train()
    for idx in _batches(len(x), batch_size, steps, generator):
        idx = idx.to(x.device)
        loss = learner.loss(x[idx], y[idx], ids[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    learner.eval()
    return torch.tensor([_accuracy(learner, t.x_test, t.y_test, j) for j, t in enumerate(tasks)])


# --------------------------------------------------------------------------- metrics


def _check_matrix(accuracies: torch.Tensor) -> torch.Tensor:
    if not isinstance(accuracies, torch.Tensor):
        raise HypercoreTypeError(
            f"accuracies: expected a (T, T) tensor, got {type(accuracies).__name__}"
        )
    if accuracies.dim() != 2 or accuracies.shape[0] != accuracies.shape[1] or not len(accuracies):
        raise ShapeError(f"accuracies: expected shape (T, T), got {shape_str(accuracies.shape)}")
    return accuracies


def average_accuracy(accuracies: torch.Tensor) -> float:
    r"""Mean accuracy over all tasks after the last one, :math:`\frac1T \sum_j R_{T,j}`."""
    return float(_check_matrix(accuracies)[-1].mean())


def backward_transfer(accuracies: torch.Tensor) -> float:
    r"""Backward transfer (Lopez-Paz & Ranzato, 2017),
    :math:`\frac{1}{T-1} \sum_{j=1}^{T-1} (R_{T,j} - R_{j,j})`; needs ``T >= 2``."""
    r = _check_matrix(accuracies)
    if len(r) < 2:
        raise ShapeError("accuracies: backward transfer needs at least 2 tasks, got 1")
    return float((r[-1, :-1] - torch.diagonal(r)[:-1]).mean())
