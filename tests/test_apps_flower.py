"""hypercore.apps.flower: the pFedHN server as a Flower strategy (needs flwr[simulation]).

Skipped where flwr is not installed (the book's environment); ``scripts/test-flower`` runs it in
its own environment (requirements/flower.txt) with ``HYPERCORE_REQUIRE_FLWR=1``, which turns a
missing flwr into a failure instead of a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

if os.environ.get("HYPERCORE_REQUIRE_FLWR"):
    import flwr  # noqa: F401  (fail, do not skip, where flwr is required)
else:
    pytest.importorskip("flwr")

import hypercore as hc
from hypercore.apps import federated as fl
from hypercore.apps import flower as hflwr

ROOT = Path(__file__).resolve().parents[1]


def make_target() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def make_server(num_clients: int) -> fl.PFedHNServer:
    torch.manual_seed(0)
    hnet = hc.HyperNetwork.build(
        make_target(), hc.TaskEmbedding(num_clients, 3), head="multiple", body_hidden=(8,)
    )
    return fl.PFedHNServer(hnet, lr=0.1)


def client_batch(partition: int, n: int = 12) -> fl.ClientBatch:
    g = torch.Generator().manual_seed(100 + partition)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, partition % 4] > 0).long() + (partition % 2)
    return fl.pad_clients([x], [y])


class FakeGrid:
    def __init__(self, node_ids: list[int]):
        self.node_ids = node_ids

    def get_node_ids(self) -> list[int]:
        return self.node_ids


@pytest.fixture
def server_identity():
    """The task identity a ServerApp process has while it runs (Message() reads it)."""
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


def test_strategy_gives_the_plain_servers_update_on_the_same_deltas(server_identity):
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

    nodes = [11, 5, 42, 7]  # sorted: 5 -> client 0, 7 -> 1, 11 -> 2, 42 -> 3
    plain, flower_side = make_server(4), make_server(4)
    strategy = hflwr.pfedhn_strategy(flower_side, clients_per_round=2, seed=3)
    target = make_target()
    for server_round in (1, 2, 3):
        messages = list(
            strategy.configure_train(server_round, ArrayRecord(), ConfigRecord(), FakeGrid(nodes))
        )
        assert len(messages) == 2
        clients = [strategy.node_to_client[m.metadata.dst_node_id] for m in messages]
        # what went down is the plain server's theta_i, per client
        theta = plain.weights(clients)
        replies, deltas = [], {k: [] for k in theta}
        for j, message in enumerate(messages):
            sent = hflwr.from_arrays(message.content["arrays"])
            for k in theta:
                torch.testing.assert_close(sent[k], theta[k][j], rtol=0, atol=0)
            one = {k: v.unsqueeze(0) for k, v in sent.items()}
            trained = fl.local_sgd(target, one, client_batch(clients[j]), steps=3, lr=0.2)
            delta = {k: (trained[k] - one[k])[0] for k in one}
            for k in delta:
                deltas[k].append(delta[k])
            content = RecordDict(
                {"arrays": hflwr.to_arrays(delta), "metrics": MetricRecord({"train_loss": 1.0})}
            )
            reply = Message(content, reply_to=message)
            assert reply.metadata.src_node_id == message.metadata.dst_node_id
            replies.append(reply)
        strategy.aggregate_train(server_round, replies)
        plain.step(clients, {k: torch.stack(v) for k, v in deltas.items()})
        for p, q in zip(plain.parameters, flower_side.parameters, strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert strategy.node_to_client == {5: 0, 7: 1, 11: 2, 42: 3}


def test_strategy_refuses_more_nodes_than_embeddings(server_identity):
    from flwr.app import ArrayRecord, ConfigRecord

    strategy = hflwr.pfedhn_strategy(make_server(2), clients_per_round=1, wait=0)
    with pytest.raises(hc.HypercoreError, match="embeddings for 2 clients"):
        strategy.configure_train(1, ArrayRecord(), ConfigRecord(), FakeGrid([1, 2, 3]))


SIMULATION = textwrap.dedent(
    """
    import json, sys
    import torch
    sys.path.insert(0, {tests!r})
    from flwr.simulation import run_simulation
    from test_apps_flower import client_batch, make_server, make_target
    from hypercore.apps import federated as fl
    from hypercore.apps import flower as hflwr

    torch.set_num_threads(1)
    server = make_server(4)
    before = [p.detach().clone() for p in server.parameters]
    strategy = hflwr.pfedhn_strategy(server, clients_per_round=2, seed=0, min_available_nodes=4)
    client_app = hflwr.pfedhn_client_app(
        make_target(), lambda pid: (client_batch(pid), client_batch(pid + 50)), steps=3, lr=0.2
    )
    run_simulation(
        server_app=hflwr.pfedhn_server_app(strategy, num_rounds=3),
        client_app=client_app,
        num_supernodes=4,
        backend_config={{
            "client_resources": {{"num_cpus": 1, "num_gpus": 0.0}},
            "init_args": {{"num_cpus": 2, "include_dashboard": False, "log_to_driver": False}},
        }},
    )
    moved = max(float((p - b).abs().max()) for p, b in zip(server.parameters, before))
    json.dump(
        {{"rounds": strategy.rounds, "moved": moved,
          "nodes": len(strategy.node_to_client),
          "final": [p.detach().tolist() for p in server.parameters]}},
        open({out!r}, "w"),
    )
    """
)


def test_flower_simulation_runs_pfedhn_and_matches_the_plain_server(tmp_path):
    out = tmp_path / "result.json"
    script = tmp_path / "simulate.py"
    script.write_text(SIMULATION.format(tests=str(ROOT / "tests"), out=str(out)))
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ray's helpers join this group: killed together below
    )
    try:
        log, _ = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        log, _ = process.communicate()
        pytest.fail("the Flower simulation did not finish in 240 s:\n" + log.decode()[-3000:])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # daemons the simulation left behind
    assert process.returncode == 0 and out.exists(), log.decode()[-3000:]
    result = json.loads(out.read_text())
    assert result["nodes"] == 4
    assert [r["round"] for r in result["rounds"]] == [1, 2, 3]
    assert all(len(r["train_clients"]) == 2 for r in result["rounds"])
    assert all(len(r["accuracy"]) == 4 for r in result["rounds"])
    assert result["moved"] > 0

    # Replay the same rounds with the plain-torch server: the same hypernetwork comes out.
    partition = {}
    for r in result["rounds"]:
        partition.update({int(c): int(p) for c, p in r["partitions"].items()})
    plain, target = make_server(4), make_target()
    for r in result["rounds"]:
        clients = r["train_clients"]
        batches = [client_batch(partition[c]) for c in clients]
        batch = fl.pad_clients([b.x[0] for b in batches], [b.y[0] for b in batches])
        plain.round(target, clients, batch, steps=3, lr=0.2)
    for p, q in zip(plain.parameters, result["final"], strict=True):
        torch.testing.assert_close(p.detach(), torch.tensor(q), rtol=1e-5, atol=1e-6)
