"""Tests for hypercore.apps.pruning (MetaPruning's PruningNet, search and baselines)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from hypercore.apps.pruning import (
    PruningNet,
    amount_for,
    crop_mlp,
    dense_flops,
    effective_widths,
    evolutionary_search,
    make_mlp,
    mlp_flops,
    mlp_forward,
    mlp_params,
    nonzero_params,
    prune_channels,
    prune_weights,
    sample_widths,
    train_pruningnet,
    train_steps,
    uniform_widths,
)
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def test_flops_and_params_by_hand():
    # 2 -> 3 -> 5 -> 4: MACs 2*3 + 3*5 + 5*4 = 41, params (2+1)*3 + (3+1)*5 + (5+1)*4 = 53
    assert mlp_flops((3, 5), 2, 4) == 41
    assert mlp_params((3, 5), 2, 4) == 53
    model = make_mlp(2, (3, 5), 4)
    assert sum(p.numel() for p in model.parameters()) == 53
    with pytest.raises(HypercoreError):
        mlp_flops((3, 0), 2, 4)
    with pytest.raises(HypercoreTypeError):
        mlp_flops(3, 2, 4)


def test_crop_takes_the_top_left_block():
    torch.manual_seed(0)
    full = make_mlp(4, (6, 5), 3)
    layers = [(m.weight, m.bias) for m in full if isinstance(m, nn.Linear)]
    cropped = crop_mlp(layers, (2, 3))
    assert [tuple(w.shape) for w, _ in cropped] == [(2, 4), (3, 2), (3, 3)]
    assert torch.equal(cropped[1][0], layers[1][0][:3, :2])
    assert torch.equal(cropped[2][1], layers[2][1])
    with pytest.raises(HypercoreError, match="exceeds"):
        crop_mlp(layers, (7, 3))
    with pytest.raises(ShapeError):
        crop_mlp(layers, (2,))


def test_pruningnet_shapes_gradients_and_materialize():
    torch.manual_seed(0)
    net = PruningNet(8, (6, 4), 3, body_hidden=(16,))
    x = torch.randn(5, 8)
    for widths in [(6, 4), (1, 2), (3, 4)]:
        assert net(x, widths).shape == (5, 3)
    assert torch.allclose(net.encode((3, 4)), torch.tensor([0.5, 1.0]))
    net(x, (2, 3)).sum().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    plain = net.materialize((2, 3))
    with torch.no_grad():
        assert torch.allclose(plain(x), net(x, (2, 3)), atol=1e-6)
    # different widths give different generated weights (the encoding reaches the head)
    a, b = net.layers((6, 4))[0][0][:2], net.layers((2, 4))[0][0]
    assert not torch.allclose(a, b)
    with pytest.raises(ShapeError):
        net(torch.randn(5, 7), (2, 3))
    with pytest.raises(HypercoreError, match="exceeds"):
        net(x, (7, 3))
    with pytest.raises(ShapeError):
        net(x, (2, 3, 1))


def test_mlp_forward_matches_module():
    torch.manual_seed(0)
    model = make_mlp(4, (5,), 2)
    x = torch.randn(3, 4)
    layers = [(m.weight, m.bias) for m in model if isinstance(m, nn.Linear)]
    assert torch.allclose(mlp_forward(x, layers), model(x))


def test_training_is_deterministic_and_learns():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = PruningNet(4, (8, 8), 2, body_hidden=(8,))
        runs.append(train_pruningnet(net, x, y, [[2, 4, 8]] * 2, steps=60, lr=1e-2, seed=1))
    assert runs[0] == runs[1]
    assert all(torch.isfinite(torch.tensor(runs[0])))
    assert sum(runs[0][-10:]) < sum(runs[0][:10])
    torch.manual_seed(0)
    model = make_mlp(4, (8,), 2)
    losses = train_steps(model, x, y, steps=60, lr=1e-2, seed=1)
    assert sum(losses[-10:]) < sum(losses[:10])
    with pytest.raises(ShapeError):
        train_pruningnet(net, x, y, [[2, 4, 8]], steps=1)


def test_sample_widths_draws_from_the_choices():
    g = torch.Generator().manual_seed(0)
    draws = {sample_widths([[1, 2], [5]], g) for _ in range(50)}
    assert draws == {(1, 5), (2, 5)}


def test_evolutionary_search_finds_the_best_feasible_vector():
    choices = [[1, 2, 3, 4]] * 3

    def score(w):
        return float(w[0] * 3 + w[1] * 2 + w[2])

    def cost(w):
        return float(sum(w))

    best = max(
        (w for w in itertools.product(*choices) if cost(w) <= 7), key=lambda w: (score(w), -cost(w))
    )
    result = evolutionary_search(score, choices, cost, 7, population=10, generations=10, seed=0)
    assert result.widths == best == (4, 2, 1)
    assert result.cost <= 7 and result.score == score(best)
    again = evolutionary_search(score, choices, cost, 7, population=10, generations=10, seed=0)
    assert again.history == result.history
    windowed = evolutionary_search(score, choices, cost, 7, min_cost=7, seed=0)
    assert all(cost(w) == 7 for w, _ in windowed.history)
    with pytest.raises(HypercoreError, match="budget"):
        evolutionary_search(score, choices, cost, 2, max_tries=50)


def test_uniform_widths_is_the_widest_feasible_uniform_scaling():
    def cost(w):
        return mlp_flops(w, 64, 10)

    w = uniform_widths((64, 64, 64), cost, 0.25 * cost((64, 64, 64)))
    assert len(set(w)) == 1 and cost(w) <= 0.25 * cost((64, 64, 64))
    wider = (w[0] + 1,) * 3
    assert cost(wider) > 0.25 * cost((64, 64, 64))
    with pytest.raises(HypercoreError):
        uniform_widths((64,), cost, 10)


def test_prune_channels_keeps_the_largest_rows():
    torch.manual_seed(0)
    model = make_mlp(4, (6, 5), 3)
    first = model[0].weight.detach().clone()
    prune_channels(model, (2, 3))
    assert effective_widths(model) == (2, 3)
    kept = model[0].weight.detach().norm(dim=1).nonzero().flatten()
    assert set(kept.tolist()) == set(first.norm(dim=1).topk(2).indices.tolist())
    assert nonzero_params(model) == mlp_params((2, 3), 4, 3)
    assert dense_flops(model) == mlp_flops((2, 3), 4, 3)
    # the masks survive fine-tuning: pruned units stay pruned
    train_steps(model, torch.randn(16, 4), torch.randint(3, (16,)), steps=5, seed=0)
    assert effective_widths(model) == (2, 3)


def test_prune_weights_lowers_nonzeros_not_dense_flops():
    torch.manual_seed(0)
    model = make_mlp(4, (6, 5), 3)
    weights = 4 * 6 + 6 * 5 + 5 * 3
    prune_weights(model, amount_for(weights, 35))
    assert nonzero_params(model) <= 35 + 14 + 3  # kept weights (rounded per layer) + biases
    assert dense_flops(model) == mlp_flops((6, 5), 4, 3)
    assert amount_for(10, 20) == 0.0 and amount_for(10, 0) == 1.0
    with pytest.raises(HypercoreTypeError):
        prune_weights(nn.Linear(3, 2), 0.5)
