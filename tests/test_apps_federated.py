"""hypercore.apps.federated: the pathological split, batched clients, FedAvg, the pFedHN server."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev

import hypercore as hc
from hypercore.apps import federated as fl
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def make_target() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


def make_server(num_clients: int = 4, **options) -> tuple[fl.PFedHNServer, nn.Module]:
    torch.manual_seed(0)
    target = make_target()
    hnet = hc.HyperNetwork.build(
        target, hc.TaskEmbedding(num_clients, 3), head="multiple", body_hidden=(8,)
    )
    return fl.PFedHNServer(hnet, **options), target


def toy_clients(k: int = 4, n: int = 6, seed: int = 0) -> fl.ClientBatch:
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(n - i % 2, 4, generator=g) for i in range(k)]
    ys = [torch.randint(0, 3, (len(x),), generator=g) for x in xs]
    return fl.pad_clients(xs, ys)


# --------------------------------------------------------------------------- the split


def test_assign_classes_is_pathological_balanced_and_seeded():
    classes = fl.assign_classes(20, 10, 2, seed=3)
    assert classes.shape == (20, 2)
    assert all(len(set(row.tolist())) == 2 for row in classes)  # distinct within a client
    counts = torch.bincount(classes.flatten(), minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 40
    assert torch.equal(classes, fl.assign_classes(20, 10, 2, seed=3))
    assert not torch.equal(classes, fl.assign_classes(20, 10, 2, seed=4))
    with pytest.raises(HypercoreError, match="classes_per_client"):
        fl.assign_classes(5, 3, 4)


def test_partition_by_class_deals_each_class_among_its_holders():
    labels = torch.arange(10).repeat_interleave(7)  # 7 samples per class
    classes = fl.assign_classes(6, 10, 3, seed=0)
    parts = fl.partition_by_class(labels, classes, seed=0)
    everything = torch.cat(parts)
    assert len(torch.unique(everything)) == len(everything)  # disjoint
    held = torch.unique(classes)
    assert len(everything) == int(torch.isin(labels, held).sum())  # every held sample dealt
    for part, row in zip(parts, classes, strict=True):
        assert set(labels[part].tolist()) <= set(row.tolist())
    for cls in held.tolist():
        sizes = [
            int((labels[p] == cls).sum()) for p, r in zip(parts, classes, strict=True) if cls in r
        ]
        assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ShapeError, match="client_classes"):
        fl.partition_by_class(labels, torch.tensor([1, 2]))


def test_pad_clients_masks_the_padding():
    batch = toy_clients(k=3, n=5)
    assert batch.x.shape == (3, 5, 4) and batch.y.shape == (3, 5)
    assert batch.counts.tolist() == [5, 4, 5]
    assert not batch.mask[1, 4] and float(batch.x[1, 4].abs().sum()) == 0
    assert len(batch.select([2, 0])) == 2
    with pytest.raises(ShapeError, match=r"xs\[1\], ys\[1\]"):
        fl.pad_clients([torch.zeros(2, 4), torch.zeros(2, 5)], [torch.zeros(2), torch.zeros(2)])


# --------------------------------------------------------------------------- clients


def test_client_logits_and_losses_equal_a_loop_over_clients():
    target = make_target()
    batch = toy_clients()
    params = {k: v + 0.1 * torch.randn_like(v) for k, v in fl.replicate(target, 4).items()}
    logits = fl.client_logits(target, params, batch.x)
    losses = fl.client_losses(target, params, batch)
    for i in range(4):
        p = {k: v[i] for k, v in params.items()}
        n = int(batch.counts[i])
        expected = functional_call(target, p, (batch.x[i, :n],))
        torch.testing.assert_close(logits[i, :n], expected)
        torch.testing.assert_close(losses[i], F.cross_entropy(expected, batch.y[i, :n]))


def test_local_sgd_is_each_clients_own_gradient_descent():
    target = make_target()
    batch = toy_clients()
    params = fl.replicate(target, 4)
    trained = fl.local_sgd(target, params, batch, steps=3, lr=0.5)
    for i in range(4):
        module = make_target()
        module.load_state_dict({k: v[i] for k, v in params.items()})
        optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
        n = int(batch.counts[i])
        for _ in range(3):
            optimizer.zero_grad()
            F.cross_entropy(module(batch.x[i, :n]), batch.y[i, :n]).backward()
            optimizer.step()
        for k, v in module.named_parameters():
            torch.testing.assert_close(trained[k][i], v.detach())
    unchanged = fl.local_sgd(target, params, batch, steps=0, lr=0.5)
    assert all(torch.equal(unchanged[k], params[k]) for k in params)
    mini = fl.local_sgd(
        target, params, batch, 2, 0.5, batch_size=2, generator=torch.Generator().manual_seed(0)
    )
    assert all(torch.isfinite(v).all() for v in mini.values())
    with pytest.raises(ShapeError, match="leading client dimension"):
        fl.local_sgd(target, params, batch.select([0, 1]), 1, 0.1)


def test_fedavg_average_weights_by_sample_count():
    params = {"w": torch.tensor([[1.0, 2.0], [3.0, 6.0]])}
    out = fl.fedavg_average(params, torch.tensor([1, 3]))
    torch.testing.assert_close(out["w"], torch.tensor([2.5, 5.0]))


def test_communication_per_round_counts_the_target_both_ways():
    comm = fl.communication_per_round(make_target())
    n = 4 * 5 + 5 + 5 * 3 + 3
    assert comm["pFedHN"] == {"down": n, "up": n} == comm["FedAvg"]
    assert comm["local only"] == {"down": 0, "up": 0}


# --------------------------------------------------------------------------- the server


def test_update_directions_are_the_chain_rule_against_an_explicit_jacobian():
    server, _ = make_server(num_clients=4)
    clients = [2, 0]
    g = torch.Generator().manual_seed(1)
    theta = server.weights(clients)
    deltas = {k: torch.randn(v.shape, generator=g) for k, v in theta.items()}
    grads = server.update_directions(clients, deltas)

    named = dict(server.hnet.named_parameters())
    names = [n for n, p in named.items() if p.requires_grad]
    assert [id(named[n]) for n in names if not n.startswith("conditioner")] == [
        id(p) for p in server.shared
    ]

    # J_i = d theta_i / d (every trainable parameter), by jacrev through the generator
    def generated(params: dict, client: int) -> torch.Tensor:
        full = {**{n: p for n, p in server.hnet.named_parameters()}, **params}
        e = full["conditioner.weight"][client]
        h = functional_call(
            server.hnet.body,
            {k[5:]: v for k, v in full.items() if k.startswith("body.")},
            (e[None],),
        )
        heads = functional_call(
            server.hnet.head, {k[5:]: v for k, v in full.items() if k.startswith("head.")}, (h,)
        )
        return torch.cat([w[0].flatten() for w in heads.values()])

    params = {n: named[n].detach() for n in names}
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for j, c in enumerate(clients):
        jac = jacrev(generated)(params, c)
        d = torch.cat([deltas[k][j].flatten() for k in theta])
        for n in names:
            contribution = -(d @ jac[n].flatten(1)).view_as(params[n])
            expected[n] += contribution if n.startswith("conditioner") else contribution / 2
    by_name = dict(
        zip(
            [n for n in names if not n.startswith("conditioner")] + ["conditioner.weight"],
            grads,
            strict=True,
        )
    )
    for n in names:
        torch.testing.assert_close(by_name[n], expected[n], rtol=1e-4, atol=1e-6)
    # only the two sampled clients' embeddings get a direction
    assert torch.equal(by_name["conditioner.weight"][[1, 3]], torch.zeros(2, 3))


def test_step_moves_phi_along_plus_jacobian_transpose_delta():
    server, _ = make_server(num_clients=3, lr=0.1, momentum=0.0, weight_decay=0.0)
    before = [p.detach().clone() for p in server.parameters]
    deltas = {k: torch.ones_like(v) * 0.01 for k, v in server.weights([1]).items()}
    grads = server.update_directions([1], deltas)
    server.step([1], deltas)
    for p, b, g in zip(server.parameters, before, grads, strict=True):
        torch.testing.assert_close(p.detach(), b - 0.1 * g)
    # first order: the generated weights move toward the client's delta
    server2, _ = make_server(num_clients=3, lr=1e-3, momentum=0.0, weight_decay=0.0)
    theta0 = server2.weights([1])
    server2.step([1], deltas)
    moved = server2.weights([1])
    inner = sum(float(((moved[k] - theta0[k]) * deltas[k]).sum()) for k in deltas)
    assert inner > 0


def test_rounds_reduce_the_clients_loss_and_new_clients_leave_phi_alone():
    server, target = make_server(num_clients=4, lr=0.05)
    batch = toy_clients(k=5)
    old, new = batch.select([0, 1, 2, 3]), batch.select([4])
    ids = torch.arange(4)
    first = float(fl.client_losses(target, server.weights(ids), old).mean())
    for _ in range(15):
        server.round(target, ids, old, steps=3, lr=0.3)
    assert float(fl.client_losses(target, server.weights(ids), old).mean()) < first
    accuracy = fl.evaluate_server(server, target, old)
    assert accuracy.shape == (4,) and float(accuracy.min()) >= 0

    phi = [p.detach().clone() for p in server.parameters]
    start = server.hnet.conditioner.weight.detach().mean(0, keepdim=True)
    e = fl.fit_new_embeddings(server, target, new, rounds=10, steps=3, lr=0.3, embed_lr=0.1)
    assert e.shape == (1, 3) and not torch.allclose(e, start)
    assert all(torch.equal(p, q) for p, q in zip(server.parameters, phi, strict=True))
    with torch.no_grad():
        after = fl.client_losses(target, server.weights_from_embeddings(e), new)
        before = fl.client_losses(target, server.weights_from_embeddings(start), new)
    assert float(after) < float(before)


def test_server_errors_name_the_argument():
    server, _ = make_server(num_clients=3)
    with pytest.raises(HypercoreError, match="clients: expected ids in 0..2"):
        server.weights([3])
    with pytest.raises(HypercoreError, match="distinct"):
        server.weights([1, 1])
    theta = server.weights([0])
    bad = {k: torch.zeros(2, *v.shape[1:]) for k, v in theta.items()}
    with pytest.raises(ShapeError, match="deltas"):
        server.step([0], bad)
    with pytest.raises(HypercoreError, match="names"):
        server.step([0], {"x": torch.zeros(1)})
    with pytest.raises(ShapeError, match="embeddings"):
        server.weights_from_embeddings(torch.zeros(2, 5))
    noise = hc.HyperNetwork.build(make_target(), hc.NoiseSource(3), head="once", body_hidden=(4,))
    with pytest.raises(HypercoreTypeError, match="TaskEmbedding"):
        fl.PFedHNServer(noise)
    with pytest.raises(HypercoreTypeError, match="HyperNetwork"):
        fl.PFedHNServer(make_target())


def test_step_clips_the_update_like_the_papers_code():
    server, _ = make_server(
        num_clients=3, lr=1.0, momentum=0.0, weight_decay=0.0, max_grad_norm=1e-3
    )
    before = [p.detach().clone() for p in server.parameters]
    deltas = {k: torch.ones_like(v) for k, v in server.weights([0]).items()}
    server.step([0], deltas)
    change = torch.cat(
        [(p.detach() - b).flatten() for p, b in zip(server.parameters, before, strict=True)]
    )
    assert 0 < float(change.norm()) <= 1e-3 * (1 + 1e-4)
