r"""pFedHN as a strategy of the Flower framework (``flwr``): the same server, across machines.

:class:`hypercore.apps.federated.PFedHNServer` simulates the clients in one process. Here
the same server object becomes a Flower ``Strategy`` (the message API of flwr 1.x:
``ServerApp``/``ClientApp``, ``Message``, ``ArrayRecord``), so that the clients can be real
Flower nodes, or Flower's simulation (``flwr.simulation.run_simulation``):

* ``configure_train`` samples ``clients_per_round`` nodes and sends each its own weights
  :math:`\theta_i = h(v_i;\varphi)` (one ``ArrayRecord`` per node: the hypernetwork stays on
  the server);
* each node runs the local SGD steps of :func:`~hypercore.apps.federated.local_sgd` and
  replies with :math:`\Delta\theta_i = \tilde\theta_i - \theta_i`;
* ``aggregate_train`` stacks the deltas and calls
  :meth:`~hypercore.apps.federated.PFedHNServer.step`, the very update of the plain-torch
  server (``tests/test_apps_flower.py`` checks that both give the same hypernetwork).

Node ids are mapped to embedding rows in sorted order when the strategy first sees them
(:attr:`PFedHNStrategy.node_to_client`): the server keeps one embedding per node.

``flwr`` is an optional extra (``requirements/flower.txt``; ``scripts/test-flower`` runs the
tests in their own virtual environment): this module imports only torch at module level, and
flwr inside the functions; the strategy class is built on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from hypercore.apps.federated import (
    ClientBatch,
    PFedHNServer,
    client_accuracy,
    client_losses,
    local_sgd,
)
from hypercore.errors import HypercoreError, check_positive_int

FLWR_HINT = 'pip install "flwr[simulation]==1.42.0" (see requirements/flower.txt)'
#: Keys of the records in the messages.
ARRAYS, CONFIG, METRICS = "arrays", "config", "metrics"

__all__ = [
    "from_arrays",
    "pfedhn_client_app",
    "pfedhn_server_app",
    "pfedhn_strategy",
    "require_flwr",
    "to_arrays",
]


def require_flwr() -> Any:
    """Import ``flwr``, or raise an error that says how to install it."""
    try:
        import flwr
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise HypercoreError(
            f"hypercore.apps.flower needs the Flower framework: {FLWR_HINT} ({err})"
        ) from None
    return flwr


def to_arrays(weights: dict[str, torch.Tensor]) -> Any:
    """``{name: tensor}`` as a Flower ``ArrayRecord`` (float32 copies on the CPU)."""
    require_flwr()
    from flwr.app import ArrayRecord

    return ArrayRecord({k: v.detach().float().cpu().contiguous() for k, v in weights.items()})


def from_arrays(record: Any) -> dict[str, torch.Tensor]:
    """A Flower ``ArrayRecord`` back as ``{name: tensor}``."""
    return dict(record.to_torch_state_dict())


_STRATEGY_CLASS: type | None = None


def _strategy_class() -> type:
    """The Strategy subclass, built once flwr is importable."""
    global _STRATEGY_CLASS
    if _STRATEGY_CLASS is not None:
        return _STRATEGY_CLASS
    require_flwr()
    import time
    from logging import INFO

    from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict
    from flwr.common import log
    from flwr.serverapp.strategy import Strategy

    class PFedHNStrategy(Strategy):
        """pFedHN's server as a Flower strategy (see the module docstring)."""

        def __init__(
            self,
            server: PFedHNServer,
            clients_per_round: int,
            seed: int = 0,
            min_available_nodes: int | None = None,
            wait: float = 120.0,
        ):
            self.server = server
            self.clients_per_round = check_positive_int("clients_per_round", clients_per_round)
            self.min_available_nodes = check_positive_int(
                "min_available_nodes", min_available_nodes or clients_per_round
            )
            self.wait = wait
            self.generator = torch.Generator().manual_seed(int(seed))
            self.node_to_client: dict[int, int] = {}
            self.rounds: list[dict[str, Any]] = []

        # -- node bookkeeping
        def _nodes(self, grid: Any) -> list[int]:
            deadline = time.monotonic() + self.wait
            while len(nodes := sorted(int(n) for n in grid.get_node_ids())) < (
                self.min_available_nodes
            ):
                if time.monotonic() > deadline:
                    raise HypercoreError(
                        f"grid: {len(nodes)} nodes connected after {self.wait} s, expected at "
                        f"least min_available_nodes={self.min_available_nodes}"
                    )
                time.sleep(0.5)
            for node in nodes:
                if node not in self.node_to_client:
                    if len(self.node_to_client) >= self.server.num_clients:
                        raise HypercoreError(
                            f"grid: {len(nodes)} nodes, but the hypernetwork has embeddings "
                            f"for {self.server.num_clients} clients"
                        )
                    self.node_to_client[node] = len(self.node_to_client)
            return nodes

        def _messages(
            self, nodes: list[int], config: Any, server_round: int, message_type: str
        ) -> list[Any]:
            clients = [self.node_to_client[n] for n in nodes]
            theta = self.server.weights(clients)
            messages = []
            for j, node in enumerate(nodes):
                cfg = ConfigRecord(dict(config))
                cfg["server-round"] = server_round
                cfg["client"] = clients[j]
                content = RecordDict(
                    {ARRAYS: to_arrays({k: v[j] for k, v in theta.items()}), CONFIG: cfg}
                )
                messages.append(
                    Message(content=content, message_type=message_type, dst_node_id=node)
                )
            return messages

        # -- the Strategy interface
        def configure_train(
            self, server_round: int, arrays: Any, config: Any, grid: Any
        ) -> Iterable[Any]:
            nodes = self._nodes(grid)
            k = min(self.clients_per_round, len(nodes))
            pick = torch.randperm(len(nodes), generator=self.generator)[:k].tolist()
            return self._messages([nodes[i] for i in pick], config, server_round, MessageType.TRAIN)

        def aggregate_train(self, server_round: int, replies: Iterable[Any]) -> tuple[Any, Any]:
            ok = [r for r in replies if r.has_content()]
            if not ok:
                return None, None
            clients = [self.node_to_client[int(r.metadata.src_node_id)] for r in ok]
            deltas = [from_arrays(r.content[ARRAYS]) for r in ok]
            stacked = {k: torch.stack([d[k] for d in deltas]) for k in deltas[0]}
            self.server.step(clients, stacked)
            replied = [r.content[METRICS] for r in ok]
            losses = [float(m["train_loss"]) for m in replied]
            metrics = {"train_loss": sum(losses) / len(losses), "clients": len(ok)}
            partitions = {
                c: int(m["partition-id"])
                for c, m in zip(clients, replied, strict=True)
                if "partition-id" in m
            }
            self.rounds.append(
                {
                    "round": server_round,
                    "train_clients": clients,
                    "partitions": partitions,
                    **metrics,
                }
            )
            return None, MetricRecord(metrics)

        def configure_evaluate(
            self, server_round: int, arrays: Any, config: Any, grid: Any
        ) -> Iterable[Any]:
            return self._messages(self._nodes(grid), config, server_round, MessageType.EVALUATE)

        def aggregate_evaluate(self, server_round: int, replies: Iterable[Any]) -> Any:
            ok = [r for r in replies if r.has_content()]
            if not ok:
                return None
            per_client = {
                self.node_to_client[int(r.metadata.src_node_id)]: float(
                    r.content[METRICS]["accuracy"]
                )
                for r in ok
            }
            mean = sum(per_client.values()) / len(per_client)
            if self.rounds and self.rounds[-1]["round"] == server_round:
                self.rounds[-1]["accuracy"] = per_client
            return MetricRecord({"mean_client_accuracy": mean})

        def summary(self) -> None:
            log(
                INFO,
                "pFedHN: %d client embeddings, %d clients per round",
                self.server.num_clients,
                self.clients_per_round,
            )

    PFedHNStrategy.__module__ = __name__
    _STRATEGY_CLASS = PFedHNStrategy
    return PFedHNStrategy


def pfedhn_strategy(
    server: PFedHNServer,
    clients_per_round: int,
    seed: int = 0,
    min_available_nodes: int | None = None,
    wait: float = 120.0,
) -> Any:
    """A Flower ``Strategy`` driving ``server``.

    Args:
        server: the pFedHN server (its hypernetwork and embeddings are trained in place).
        clients_per_round: nodes sampled per training round (seeded by ``seed``).
        min_available_nodes: wait (up to ``wait`` seconds) until this many nodes are
            connected before a round (default ``clients_per_round``); nodes are mapped to
            embedding rows in sorted order as they are first seen.
    """
    if not isinstance(server, PFedHNServer):
        raise HypercoreError(f"server: expected a PFedHNServer, got {type(server).__name__}")
    return _strategy_class()(server, clients_per_round, seed, min_available_nodes, wait)


def pfedhn_client_app(
    module: nn.Module,
    client_data: Callable[[int], tuple[ClientBatch, ClientBatch]],
    steps: int,
    lr: float,
) -> Any:
    """A Flower ``ClientApp``: local SGD from the received weights, reply with the delta.

    Args:
        module: the target module (its parameters are replaced by the received weights).
        client_data: ``partition id -> (train, test)``, each a one-client
            :class:`~hypercore.apps.federated.ClientBatch`; the partition id is Flower's
            ``context.node_config["partition-id"]`` (simulation).
        steps, lr: the local SGD (:func:`~hypercore.apps.federated.local_sgd`).
    """
    require_flwr()
    from flwr.app import Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    def received(message: Any, context: Any) -> tuple[int, dict, ClientBatch, ClientBatch]:
        theta = {k: v.unsqueeze(0) for k, v in from_arrays(message.content[ARRAYS]).items()}
        partition = int(context.node_config["partition-id"])
        train, test = client_data(partition)
        return partition, theta, train, test

    @app.train()
    def train(message: Any, context: Any) -> Any:
        partition, theta, data, _ = received(message, context)
        trained = local_sgd(module, theta, data, steps, lr)
        delta = {k: (trained[k] - theta[k])[0] for k in theta}
        loss = float(client_losses(module, trained, data)[0])
        metrics = MetricRecord(
            {"train_loss": loss, "num-examples": int(data.counts[0]), "partition-id": partition}
        )
        return Message(RecordDict({ARRAYS: to_arrays(delta), METRICS: metrics}), reply_to=message)

    @app.evaluate()
    def evaluate(message: Any, context: Any) -> Any:
        _, theta, _, test = received(message, context)
        accuracy = float(client_accuracy(module, theta, test)[0])
        metrics = MetricRecord({"accuracy": accuracy, "num-examples": int(test.counts[0])})
        return Message(RecordDict({METRICS: metrics}), reply_to=message)

    return app


def pfedhn_server_app(strategy: Any, num_rounds: int, timeout: float = 600.0) -> Any:
    """A Flower ``ServerApp`` that runs ``strategy`` for ``num_rounds`` rounds."""
    require_flwr()
    from flwr.app import ArrayRecord
    from flwr.serverapp import ServerApp

    num_rounds = check_positive_int("num_rounds", num_rounds)
    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Any) -> None:
        # The strategy sends per-client weights itself; the "global" record stays empty.
        strategy.start(grid, initial_arrays=ArrayRecord(), num_rounds=num_rounds, timeout=timeout)

    return app
