r"""Personalised federated learning with a server-side hypernetwork (pFedHN), and its baselines.

pFedHN (Shamsian, Navon, Fetaya & Chechik, ICML 2021) keeps a hypernetwork
:math:`h(\cdot;\varphi)` and one embedding :math:`v_i` per client on the server.
Client :math:`i`'s model is written by the hypernetwork, :math:`\theta_i = h(v_i;\varphi)`,
and one communication round with client :math:`i` is

1. the server sends :math:`\theta_i = h(v_i;\varphi)` (the target's weights, nothing else);
2. the client runs :math:`k` local SGD steps from :math:`\theta_i` on its own data and
   gets :math:`\tilde\theta_i`;
3. the client sends back :math:`\Delta\theta_i = \tilde\theta_i - \theta_i`;
4. the server moves :math:`\varphi` and :math:`v_i` along the chain rule,

   .. math:: \varphi \leftarrow \varphi + \alpha\,(\nabla_\varphi \theta_i)^\top \Delta\theta_i,
             \qquad
             v_i \leftarrow v_i + \alpha\,(\nabla_{v_i} \theta_i)^\top \Delta\theta_i .

The local steps approximate a descent step on the client's loss, so
:math:`-\Delta\theta_i` plays the role of :math:`\partial L_i / \partial\theta_i` and
:math:`-(\nabla_\varphi\theta_i)^\top\Delta\theta_i` that of :math:`\partial L_i/\partial\varphi`
(the paper's Algorithm 1 writes the step with a minus sign and :math:`\Delta\theta_i`; its
reference code feeds :math:`\theta_i - \tilde\theta_i` as the gradient of :math:`\theta_i` to a
descent optimiser, which is the update above). :class:`PFedHNServer` computes exactly this
vector-Jacobian product with one ``torch.autograd.grad`` call and hands it to an SGD optimiser
(momentum and weight decay as in the paper's code). With several clients in a round the
:math:`\varphi` directions are averaged; each embedding gets its own client's direction.

The hypernetwork's parameters never leave the server: per round and client, pFedHN sends
``numel(theta)`` floats down and ``numel(theta)`` up, exactly like FedAvg
(:func:`communication_per_round`).

The clients run as one batch: every client's data is padded into ``(K, n, ...)`` tensors
(:class:`ClientBatch`), every client's weights are a dict of ``(K, *shape)`` tensors, and the
target runs on all ``K`` weight sets at once under ``torch.func.vmap`` (:func:`client_logits`).
A step of the summed loss of independent clients is each client's own step, so
:func:`local_sgd` is ``K`` independent local trainings in one call.

Baselines in the same terms: :func:`fedavg_average` (FedAvg's server step, McMahan et al.
2017), and :func:`local_sgd` alone for local-only training and for FedAvg's local
fine-tuning. :func:`fit_new_embeddings` lets clients join after training: the hypernetwork is
frozen and only a new embedding per client is learned by the same delta protocol.

Only torch (and hypercore) is imported at module level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_int,
    check_positive_int,
    shape_str,
)
from hypercore.hypernetwork import HyperNetwork
from hypercore.inputs import TaskEmbedding

Params = dict[str, torch.Tensor]

__all__ = [
    "ClientBatch",
    "PFedHNServer",
    "assign_classes",
    "client_accuracy",
    "client_logits",
    "client_losses",
    "communication_per_round",
    "evaluate_server",
    "fedavg_average",
    "fit_new_embeddings",
    "local_sgd",
    "pad_clients",
    "partition_by_class",
    "replicate",
]


# --------------------------------------------------------------------------- data


def assign_classes(
    num_clients: int, num_classes: int, classes_per_client: int, seed: int = 0
) -> torch.Tensor:
    """The pathological non-IID split of McMahan et al. (2017) and pFedHN: a few classes per client.

    Each client gets ``classes_per_client`` distinct classes; classes are handed out so that
    every class is held by as equal a number of clients as possible (the least-used classes
    first, ties broken at random).

    Returns:
        ``(num_clients, classes_per_client)`` int64, the classes of each client (sorted).
    """
    num_clients = check_positive_int("num_clients", num_clients)
    num_classes = check_int("num_classes", num_classes, minimum=2)
    classes_per_client = check_positive_int("classes_per_client", classes_per_client)
    if classes_per_client > num_classes:
        raise HypercoreError(
            f"classes_per_client: expected at most num_classes={num_classes}, "
            f"got {classes_per_client}"
        )
    g = torch.Generator().manual_seed(int(seed))
    used = torch.zeros(num_classes)
    rows = []
    for _ in range(num_clients):
        key = used + torch.rand(num_classes, generator=g) * 0.5  # least used first, random ties
        chosen = torch.argsort(key)[:classes_per_client]
        used[chosen] += 1
        rows.append(torch.sort(chosen).values)
    return torch.stack(rows)


def partition_by_class(labels: torch.Tensor, client_classes: torch.Tensor, seed: int = 0) -> list:
    """Indices of each client's samples: every class's samples shuffled and dealt out evenly.

    Args:
        labels: ``(n,)`` integer class labels.
        client_classes: ``(K, c)`` classes of each client (:func:`assign_classes`).
        seed: seed of the shuffle.

    Returns:
        A list of ``K`` int64 index tensors into ``labels`` (disjoint). A class held by ``m``
        clients is cut into ``m`` parts whose sizes differ by at most one.
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
        raise ShapeError(f"labels: expected a 1-D tensor of class labels, got {labels!r:.60}")
    if not isinstance(client_classes, torch.Tensor) or client_classes.dim() != 2:
        raise ShapeError(
            "client_classes: expected a (clients, classes_per_client) tensor, got "
            f"{type(client_classes).__name__}"
        )
    g = torch.Generator().manual_seed(int(seed))
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(client_classes))]
    for cls in torch.unique(client_classes).tolist():
        holders = (client_classes == cls).any(1).nonzero().flatten().tolist()
        members = (labels == cls).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=g)]
        for holder, chunk in zip(holders, torch.tensor_split(members, len(holders)), strict=True):
            parts[holder].append(chunk)
    return [
        torch.sort(torch.cat(p)).values if p else torch.empty(0, dtype=torch.long) for p in parts
    ]


@dataclass
class ClientBatch:
    """The data of ``K`` clients, padded to one length so that they train as one batch.

    Attributes:
        x: ``(K, n, *features)``; padded rows are zeros.
        y: ``(K, n)`` int64 labels; padded rows are 0.
        mask: ``(K, n)`` bool, ``True`` on real samples.
    """

    x: torch.Tensor
    y: torch.Tensor
    mask: torch.Tensor

    @property
    def counts(self) -> torch.Tensor:
        """``(K,)`` samples per client."""
        return self.mask.sum(1)

    def __len__(self) -> int:
        return self.x.shape[0]

    def select(self, clients: torch.Tensor | Sequence[int]) -> ClientBatch:
        """The clients ``clients`` (indices into the first dimension)."""
        index = torch.as_tensor(clients, dtype=torch.long, device=self.x.device)
        return ClientBatch(self.x[index], self.y[index], self.mask[index])

    def to(self, device: str | torch.device) -> ClientBatch:
        return ClientBatch(self.x.to(device), self.y.to(device), self.mask.to(device))


def pad_clients(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> ClientBatch:
    """Stack the clients' ``(n_i, *features)`` inputs and ``(n_i,)`` labels (padded, masked)."""
    if len(xs) != len(ys) or not xs:
        raise HypercoreError(
            f"xs, ys: expected the same non-zero number of clients, got {len(xs)} and {len(ys)}"
        )
    features = tuple(xs[0].shape[1:])
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if tuple(x.shape[1:]) != features or y.shape != x.shape[:1]:
            raise ShapeError(
                f"xs[{i}], ys[{i}]: expected (n, {', '.join(map(str, features))}) and (n,), "
                f"got {shape_str(x.shape)} and {shape_str(y.shape)}"
            )
    n = max(len(y) for y in ys)
    k = len(xs)
    x_pad = xs[0].new_zeros((k, n, *features))
    y_pad = torch.zeros(k, n, dtype=torch.long, device=ys[0].device)
    mask = torch.zeros(k, n, dtype=torch.bool, device=ys[0].device)
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        x_pad[i, : len(y)] = x
        y_pad[i, : len(y)] = y
        mask[i, : len(y)] = True
    return ClientBatch(x_pad, y_pad, mask)


# --------------------------------------------------------------------------- clients


def replicate(module: nn.Module, k: int) -> Params:
    """The module's own parameters repeated for ``k`` clients: ``{name: (k, *shape)}`` (copies)."""
    k = check_positive_int("k", k)
    return {
        name: p.detach().unsqueeze(0).repeat(k, *([1] * p.dim()))
        for name, p in module.named_parameters()
    }


def _check_params(params: Mapping[str, torch.Tensor], k: int) -> None:
    if not isinstance(params, Mapping) or not params:
        raise HypercoreTypeError(
            f"params: expected a non-empty dict {{name: (K, *shape)}}, got {type(params).__name__}"
        )
    for name, value in params.items():
        if value.shape[:1] != (k,):
            raise ShapeError(
                f"params[{name!r}]: expected a leading client dimension of {k}, "
                f"got {shape_str(value.shape)}"
            )


def client_logits(module: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor):
    """The module under each client's weights on that client's inputs: ``(K, n, ...)``.

    Args:
        module: the target (its own parameters are replaced by ``params``).
        params: ``{name: (K, *shape)}``, one weight set per client.
        x: ``(K, n, *features)``.
    """
    _check_params(params, x.shape[0])

    def one(p: Params, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(module, p, (xb,))

    return vmap(one)(dict(params), x)


def client_losses(
    module: nn.Module, params: Mapping[str, torch.Tensor], batch: ClientBatch
) -> torch.Tensor:
    """``(K,)``: each client's mean cross-entropy over its real (unpadded) samples."""
    logits = client_logits(module, params, batch.x)
    per_sample = F.cross_entropy(logits.flatten(0, 1), batch.y.flatten(), reduction="none")
    per_sample = per_sample.view(batch.y.shape) * batch.mask
    return per_sample.sum(1) / batch.counts.clamp_min(1)


@torch.no_grad()
def client_accuracy(
    module: nn.Module, params: Mapping[str, torch.Tensor], batch: ClientBatch
) -> torch.Tensor:
    """``(K,)``: each client's accuracy on its real samples."""
    logits = client_logits(module, params, batch.x)
    correct = (logits.argmax(-1) == batch.y) & batch.mask
    return correct.sum(1).float() / batch.counts.clamp_min(1)


def local_sgd(
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    batch: ClientBatch,
    steps: int,
    lr: float,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> Params:
    r"""``steps`` plain SGD steps on every client's own loss, all clients at once.

    :math:`\theta_i \leftarrow \theta_i - \eta \nabla_{\theta_i} L_i(\theta_i)` for every
    client :math:`i`; the loss summed over clients has exactly these per-client gradients.

    Args:
        module: the target.
        params: ``{name: (K, *shape)}`` starting weights (not changed).
        batch: the ``K`` clients' data.
        steps: local steps (0 returns a copy).
        lr: the local learning rate :math:`\eta`.
        batch_size: samples per step and client (drawn without replacement from the real
            samples); ``None``: the whole local data set (full-batch gradient descent).
        generator: for the mini-batches.

    Returns:
        The weights after the steps, ``{name: (K, *shape)}``, detached.
    """
    steps = check_int("steps", steps, minimum=0)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    _check_params(params, len(batch))
    current = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    with torch.enable_grad():
        for _ in range(steps):
            step_batch = batch if batch_size is None else _minibatch(batch, batch_size, generator)
            loss = client_losses(module, current, step_batch).sum()
            grads = torch.autograd.grad(loss, list(current.values()))
            current = {
                k: (v - lr * g).detach().requires_grad_(True)
                for (k, v), g in zip(current.items(), grads, strict=True)
            }
    return {k: v.detach() for k, v in current.items()}


def _minibatch(batch: ClientBatch, size: int, generator: torch.Generator | None) -> ClientBatch:
    """``size`` random real samples of every client (fewer where a client has fewer)."""
    scores = torch.rand(batch.mask.shape, generator=generator).to(batch.mask.device)
    scores = scores.masked_fill(~batch.mask, 2.0)  # padded rows sort last
    take = torch.argsort(scores, dim=1)[:, :size]
    rows = torch.arange(len(batch), device=take.device)[:, None]
    return ClientBatch(batch.x[rows, take], batch.y[rows, take], batch.mask[rows, take])


def fedavg_average(params: Mapping[str, torch.Tensor], counts: torch.Tensor) -> Params:
    r"""FedAvg's server step: :math:`\theta = \sum_i n_i \tilde\theta_i / \sum_i n_i`.

    Args:
        params: ``{name: (K, *shape)}`` the clients' weights after local training.
        counts: ``(K,)`` the clients' sample counts :math:`n_i`.

    Returns:
        ``{name: (*shape)}``, the new global weights.
    """
    counts = torch.as_tensor(counts, dtype=torch.float32)
    _check_params(params, len(counts))
    w = counts / counts.sum()
    return {k: torch.tensordot(w.to(v), v.detach(), dims=([0], [0])) for k, v in params.items()}


def communication_per_round(module: nn.Module) -> dict[str, dict[str, int]]:
    """Floats sent per client and round (down = server to client, up = client to server).

    pFedHN sends the generated target weights down and the same number of deltas up; the
    hypernetwork stays on the server. FedAvg (also with local fine-tuning) sends the global
    weights down and the trained weights up. Local-only training sends nothing.
    """
    n = sum(p.numel() for p in module.parameters())
    return {
        "pFedHN": {"down": n, "up": n},
        "FedAvg": {"down": n, "up": n},
        "FedAvg + local fine-tuning": {"down": n, "up": n},
        "local only": {"down": 0, "up": 0},
    }


# --------------------------------------------------------------------------- the server


def _dense(w: torch.Tensor) -> torch.Tensor:
    dense = getattr(w, "dense", None)
    return dense() if callable(dense) else w


class PFedHNServer:
    r"""The pFedHN server: a task-embedding hypernetwork writes each client's weights.

    Args:
        hnet: a :class:`hypercore.HyperNetwork` whose conditioner is a
            :class:`hypercore.TaskEmbedding` with one embedding per client (client ids
            ``0 .. num_clients - 1``).
        lr: the server learning rate :math:`\alpha` for :math:`\varphi`.
        embed_lr: the learning rate of the embeddings (default ``lr``).
        momentum, weight_decay: of the server's SGD (the paper's code: 0.9 and 1e-3).
        max_grad_norm: clip the norm of the update directions before each step (the
            paper's code: 50); ``None``: no clipping.

    The optimiser covers the hypernetwork's trainable parameters (the conditioner's
    embeddings, the body and the head); the target's template parameters are not trained.
    """

    def __init__(
        self,
        hnet: nn.Module,
        lr: float = 1e-2,
        embed_lr: float | None = None,
        momentum: float = 0.9,
        weight_decay: float = 1e-3,
        max_grad_norm: float | None = 50.0,
    ):
        if not isinstance(hnet, HyperNetwork):
            raise HypercoreTypeError(
                f"hnet: expected a hypercore.HyperNetwork, got {type(hnet).__name__}"
            )
        if not isinstance(hnet.conditioner, TaskEmbedding):
            raise HypercoreTypeError(
                "hnet: expected a hypernetwork conditioned on a TaskEmbedding (one embedding "
                f"per client), got a {type(hnet.conditioner).__name__} conditioner"
            )
        lr = check_float("lr", lr, low=0.0, low_open=True)
        embed_lr = lr if embed_lr is None else check_float("embed_lr", embed_lr, low=0.0)
        self.hnet: HyperNetwork = hnet
        self.max_grad_norm = (
            None if max_grad_norm is None else check_float("max_grad_norm", max_grad_norm, low=0.0)
        )
        self.conditioner: TaskEmbedding = hnet.conditioner
        self.embeddings = [p for p in self.conditioner.parameters() if p.requires_grad]
        embedding_ids = {id(p) for p in self.embeddings}
        self.shared = [
            p for p in hnet.parameters() if p.requires_grad and id(p) not in embedding_ids
        ]
        groups: list[dict[str, Any]] = [
            {"params": self.shared},
            {"params": self.embeddings, "lr": embed_lr},
        ]
        self.optimizer = torch.optim.SGD(
            groups,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
        )

    @property
    def num_clients(self) -> int:
        return self.conditioner.num_tasks

    @property
    def parameters(self) -> list[torch.nn.Parameter]:
        """The server's trainable parameters :math:`(\\varphi, v)`, in optimiser order."""
        return [*self.shared, *self.embeddings]

    def _clients(self, clients: torch.Tensor | Sequence[int] | int) -> torch.Tensor:
        index = torch.as_tensor(clients, dtype=torch.long).reshape(-1)
        if index.numel() == 0 or index.min() < 0 or index.max() >= self.num_clients:
            raise HypercoreError(
                f"clients: expected ids in 0..{self.num_clients - 1}, got {index.tolist()}"
            )
        if len(torch.unique(index)) != len(index):
            raise HypercoreError(f"clients: expected distinct ids, got {index.tolist()}")
        return index.to(self.embeddings[0].device)

    def generate(self, clients: torch.Tensor | Sequence[int] | int) -> Params:
        r""":math:`\theta_i = h(v_i;\varphi)` per client, ``{name: (K, *shape)}``, with graph."""
        index = self._clients(clients)
        return {name: _dense(w) for name, w in self.hnet.generate(index).items()}

    def weights(self, clients: torch.Tensor | Sequence[int] | int) -> Params:
        """What the server sends down: the clients' target weights, detached, ``(K, *shape)``."""
        with torch.no_grad():
            return {k: v.detach() for k, v in self.generate(clients).items()}

    def weights_from_embeddings(self, embeddings: torch.Tensor) -> Params:
        r""":math:`h(e;\varphi)` for any ``(K, E)`` embeddings (e.g. new clients), with graph."""
        if embeddings.dim() != 2 or embeddings.shape[1] != self.conditioner.out_features:
            raise ShapeError(
                f"embeddings: expected (K, {self.conditioner.out_features}), "
                f"got {shape_str(embeddings.shape)}"
            )
        generated = self.hnet.head(self.hnet.body(embeddings))
        return {name: _dense(w) for name, w in generated.items()}

    def update_directions(
        self, clients: torch.Tensor | Sequence[int], deltas: Mapping[str, torch.Tensor]
    ) -> list[torch.Tensor]:
        r"""The gradients the optimiser is given, one per :attr:`parameters` entry.

        For :math:`\varphi`: :math:`-\frac1K \sum_i (\nabla_\varphi\theta_i)^\top\Delta\theta_i`;
        for the embedding table: :math:`-(\nabla_{v_i}\theta_i)^\top\Delta\theta_i` in row
        :math:`i` (each client's full direction, not divided by ``K``). A descent step on
        these moves along :math:`+(\nabla\theta_i)^\top\Delta\theta_i`.

        Args:
            clients: ``K`` distinct client ids.
            deltas: ``{name: (K, *shape)}``, :math:`\tilde\theta_i - \theta_i` per client.
        """
        index = self._clients(clients)
        theta = self.generate(index)
        if set(deltas) != set(theta):
            raise HypercoreError(
                f"deltas: expected the generated weights' names {sorted(theta)}, "
                f"got {sorted(deltas)}"
            )
        k = len(index)
        outputs, grads_out = [], []
        for name, t in theta.items():
            d = torch.as_tensor(deltas[name]).to(t)
            if d.shape != t.shape:
                raise ShapeError(
                    f"deltas[{name!r}]: expected {shape_str(t.shape)}, got {shape_str(d.shape)}"
                )
            outputs.append(t)
            grads_out.append(-d / k)
        grads = torch.autograd.grad(outputs, self.parameters, grad_outputs=grads_out)
        n_shared = len(self.shared)
        return [g if j < n_shared else g * k for j, g in enumerate(grads)]

    def step(
        self, clients: torch.Tensor | Sequence[int], deltas: Mapping[str, torch.Tensor]
    ) -> None:
        """One server update from the clients' deltas (:meth:`update_directions`, clipped)."""
        grads = self.update_directions(clients, deltas)
        for p, g in zip(self.parameters, grads, strict=True):
            p.grad = g
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def round(
        self,
        module: nn.Module,
        clients: torch.Tensor | Sequence[int],
        batch: ClientBatch,
        steps: int,
        lr: float,
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Params:
        """One communication round, simulated: send, train locally, send back, update.

        Args:
            module: the target module the clients run.
            clients: the ``K`` client ids of this round.
            batch: those clients' data (``K`` rows, in the order of ``clients``).
            steps, lr, batch_size, generator: the clients' local SGD (:func:`local_sgd`).

        Returns:
            The deltas the clients sent, ``{name: (K, *shape)}``.
        """
        theta = self.weights(clients)
        trained = local_sgd(module, theta, batch, steps, lr, batch_size, generator)
        deltas = {k: trained[k] - theta[k] for k in theta}
        self.step(clients, deltas)
        return deltas


def fit_new_embeddings(
    server: PFedHNServer,
    module: nn.Module,
    batch: ClientBatch,
    rounds: int,
    steps: int,
    lr: float,
    embed_lr: float,
    momentum: float = 0.9,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    init: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Clients that join after training: learn one new embedding each, hypernetwork frozen.

    The new embedding starts at the mean of the trained clients' embeddings (or ``init``);
    each round the server sends :math:`h(v_{new};\varphi)`, the client runs ``steps`` local
    steps and returns :math:`\Delta\theta`, and only :math:`v_{new}` moves, along
    :math:`(\nabla_{v}\theta)^\top\Delta\theta` (SGD with momentum, rate ``embed_lr``).
    :math:`\varphi` is not changed.

    Returns:
        ``(K, E)`` the new clients' embeddings (detached); their weights are
        ``server.weights_from_embeddings(e)``.
    """
    rounds = check_int("rounds", rounds, minimum=0)
    table = server.conditioner.weight.detach()
    start = table.mean(0, keepdim=True).repeat(len(batch), 1) if init is None else init
    e = start.detach().clone().requires_grad_(True)
    optimizer = torch.optim.SGD([e], lr=embed_lr, momentum=momentum)
    for _ in range(rounds):
        with torch.enable_grad():
            theta = server.weights_from_embeddings(e)
        sent = {k: v.detach() for k, v in theta.items()}
        trained = local_sgd(module, sent, batch, steps, lr, batch_size, generator)
        names = list(theta)
        (grad,) = torch.autograd.grad(
            [theta[k] for k in names], [e], grad_outputs=[sent[k] - trained[k] for k in names]
        )
        e.grad = grad
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return e.detach()


def evaluate_server(server: PFedHNServer, module: nn.Module, batch: ClientBatch) -> torch.Tensor:
    """``(K,)`` each client's accuracy under its generated weights (all ``K`` clients, in order)."""
    return client_accuracy(module, server.weights(torch.arange(len(batch))), batch)
