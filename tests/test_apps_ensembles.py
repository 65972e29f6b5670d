"""Tests of hypercore.apps.ensembles: ensemble metrics, the member-embedding ensemble, costs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hypercore as hc
from hypercore.apps import ensembles as ens
from hypercore.errors import HypercoreError, ShapeError


def _probs(rows: list[list[list[float]]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_nested_metrics_by_hand():
    # two members, two inputs, two classes; labels (0, 1)
    p = _probs([[[0.9, 0.1], [0.6, 0.4]], [[0.7, 0.3], [0.2, 0.8]]])
    y = torch.tensor([0, 1])
    one, two = ens.nested_metrics(p, y, [1, 2])
    assert one["members"] == 1 and one["disagreement"] == 0.0
    assert one["accuracy"] == pytest.approx(0.5)
    assert one["NLL"] == pytest.approx(-(math.log(0.9) + math.log(0.4)) / 2, rel=1e-6)
    assert one["NLL gain"] == pytest.approx(0.0, abs=1e-7)
    mean_nll = -(math.log(0.8) + math.log(0.6)) / 2  # mean probabilities (0.8, 0.2), (0.4, 0.6)
    member_nll = (-(math.log(0.9) + math.log(0.4)) / 2 - (math.log(0.7) + math.log(0.8)) / 2) / 2
    assert two["NLL"] == pytest.approx(mean_nll, rel=1e-6)
    assert two["member NLL"] == pytest.approx(member_nll, rel=1e-6)
    assert two["NLL gain"] == pytest.approx(member_nll - mean_nll, rel=1e-5)
    assert two["accuracy"] == pytest.approx(1.0)
    assert two["member accuracy"] == pytest.approx(0.75)
    assert two["accuracy gain"] == pytest.approx(0.25)
    # the members agree on input 0 and disagree on input 1: half the inputs, one pair each
    assert two["disagreement"] == pytest.approx(0.5)


def test_nll_gain_is_never_negative():
    torch.manual_seed(0)
    p = torch.randn(7, 30, 5).softmax(-1)
    y = torch.randint(0, 5, (30,))
    for row in ens.nested_metrics(p, y, [1, 2, 3, 7]):
        assert row["NLL gain"] >= -1e-6
        assert 0.0 <= row["disagreement"] <= 1.0


def test_identical_members_have_no_gain_and_no_disagreement():
    p = torch.randn(1, 10, 4).softmax(-1).expand(6, 10, 4)
    y = torch.randint(0, 4, (10,))
    row = ens.nested_metrics(p, y, [6])[0]
    assert row["disagreement"] == 0.0
    assert row["NLL gain"] == pytest.approx(0.0, abs=1e-6)


def test_nested_metrics_errors():
    p = torch.rand(3, 4, 2).softmax(-1)
    with pytest.raises(ShapeError, match="member_probs"):
        ens.nested_metrics(p[0], torch.zeros(4, dtype=torch.long), [1])
    with pytest.raises(ShapeError, match="labels"):
        ens.nested_metrics(p, torch.zeros(5, dtype=torch.long), [1])
    with pytest.raises(ShapeError, match="labels"):
        ens.nested_metrics(p, torch.zeros(4), [1])
    with pytest.raises(ShapeError, match="sizes"):
        ens.nested_metrics(p, torch.zeros(4, dtype=torch.long), [4])


def test_ensemble_loss_is_the_sum_of_member_losses_and_separates_gradients():
    torch.manual_seed(0)
    logits = torch.randn(3, 8, 5, requires_grad=True)
    y = torch.randint(0, 5, (8,))
    loss = ens.ensemble_loss(logits, y)
    by_hand = sum(F.cross_entropy(logits[k], y) for k in range(3))
    assert torch.allclose(loss, by_hand)
    loss.backward()
    assert logits.grad is not None
    alone = logits[1].detach().clone().requires_grad_(True)
    F.cross_entropy(alone, y).backward()
    assert torch.allclose(logits.grad[1], alone.grad)
    with pytest.raises(ShapeError, match="logits"):
        ens.ensemble_loss(logits[0], y)
    with pytest.raises(ShapeError, match="labels"):
        ens.ensemble_loss(logits, y[:3])


def _target() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))


def test_member_embedding_ensemble_shapes_and_structure():
    torch.manual_seed(0)
    hnet = ens.member_embedding_ensemble(_target(), 5, embedding_dim=3)
    x = torch.randn(7, 6)
    out = hnet.forward_sets(x, torch.arange(5))
    assert out.shape == (5, 7, 3)
    # members differ (embeddings differ) and each equals its own materialised network
    assert not torch.allclose(out[0], out[1])
    member = hnet.materialize(2)
    assert torch.allclose(member(x), out[2], atol=1e-5)
    # W_k = diag(s_k) W_0: the generated first-layer weight is a row scaling of the base
    weights = hnet.generate(torch.arange(5))
    w = next(iter(weights.values()))
    dense = w.dense() if hasattr(w, "dense") else w
    base = hnet.head.base[0]
    ratio = dense[3] / base
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4)
    # parameters: shared bases + one linear layer (84 numbers here: 4 + 3 scales, 4 + 3 biases)
    expected = 4 * 6 + 3 * 4 + (3 + 1) * (4 + 3 + 4 + 3) + 5 * 3
    assert ens.trainable_parameters(hnet) == expected


def test_member_embedding_ensemble_trains_every_member():
    torch.manual_seed(0)
    hnet = ens.member_embedding_ensemble(_target(), 3, embedding_dim=2)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    loss = ens.ensemble_loss(hnet.forward_sets(x, torch.arange(3)), y)
    loss.backward()
    grads = hnet.conditioner.parameters()
    grad = next(iter(grads)).grad
    assert grad is not None and bool((grad.abs().sum(-1) > 0).all())


def test_member_embedding_ensemble_errors():
    with pytest.raises(HypercoreError, match="module"):
        ens.member_embedding_ensemble("not a module", 3)  # type: ignore[arg-type]
    with pytest.raises(HypercoreError, match="num_members"):
        ens.member_embedding_ensemble(_target(), 0)


def test_linear_macs_counts_rows_in_out():
    net = _target()
    assert ens.linear_macs(net, lambda: net(torch.randn(5, 6))) == 5 * (6 * 4 + 4 * 3)
    batched = ens.linear_macs(net, lambda: net(torch.randn(2, 5, 6)))
    assert batched == 10 * (6 * 4 + 4 * 3)
    # hooks are removed afterwards
    assert all(not m._forward_hooks for m in net.modules())
    with pytest.raises(HypercoreError, match="call"):
        ens.linear_macs(net, 3)  # type: ignore[arg-type]
    with pytest.raises(HypercoreError, match="model"):
        ens.linear_macs("net", lambda: None)  # type: ignore[arg-type]


def test_linear_macs_of_a_generator():
    hnet = hc.HyperNetwork.build(_target(), hc.NoiseSource(4), head="once", body_hidden=(8,))
    noise = torch.randn(3, 4)
    macs = ens.linear_macs(hnet, lambda: hnet.generate(noise))
    numel = hnet.target.numel if hasattr(hnet.target, "numel") else 6 * 4 + 4 + 4 * 3 + 3
    assert macs == 3 * (4 * 8 + 8 * numel)


def test_trainable_parameters_skips_frozen():
    net = _target()
    net[0].weight.requires_grad_(False)
    assert ens.trainable_parameters(net) == 4 + 4 * 3 + 3
