"""Tests of hypercore.apps.nas: the search space, SMASH's hypernetwork, Kendall's tau."""

from __future__ import annotations

import math

import pytest
import torch

from hypercore.apps.nas import (
    Architecture,
    ArchitectureNet,
    SearchSpace,
    SmashHyperNetwork,
    bootstrap_tau,
    evaluate,
    forward_layers,
    kendall_tau,
    train_architecture,
    train_smash,
)
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace(6, 3, widths=(2, 4), max_depth=3, activations=("relu", "tanh"))


def test_size_matches_enumeration(space):
    archs = space.all()
    # (2 widths * 2 activations)^d * 2^(d-1) skip patterns: 4 + 32 + 256
    assert space.size() == len(archs) == 4 + 32 + 256
    assert len(set(archs)) == len(archs)
    assert SearchSpace(64, 10).size() == 8 + 128 + 2048


def test_sample_in_space_and_deterministic(space):
    a = space.sample(50, torch.Generator().manual_seed(3))
    b = space.sample(50, torch.Generator().manual_seed(3))
    assert a == b
    for arch in a:
        space.check(arch)
    assert {arch.depth for arch in a} == {1, 2, 3}
    d = space.sample(40, torch.Generator().manual_seed(3), distinct=True)
    assert len(set(d)) == 40
    with pytest.raises(HypercoreError, match="distinct"):
        space.sample(space.size() + 1, torch.Generator(), distinct=True)


def test_encoding(space):
    arch = Architecture((4, 2), ("tanh", "relu"), (False, True))
    enc = space.encode([arch])
    assert enc.shape == (1, space.encoding_dim) == (1, 3 * 6)
    # slot: present, width one-hot (2), activation one-hot (2), skip
    assert enc[0].tolist() == [1, 0, 1, 0, 1, 0] + [1, 1, 0, 1, 0, 1] + [0] * 6


def test_num_parameters_matches_module(space):
    for arch in space.sample(20, torch.Generator().manual_seed(0)):
        net = ArchitectureNet(space, arch)
        assert space.num_parameters(arch) == sum(p.numel() for p in net.parameters())


def test_forward_by_hand():
    # one hidden layer of width 2 (relu), skip on the second layer (tanh, width 3: zero-pad)
    arch = Architecture((2, 3), ("relu", "tanh"), (False, True))
    x = torch.tensor([[1.0, -1.0]])
    w1, b1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.zeros(2)
    w2, b2 = torch.zeros(3, 2), torch.zeros(3)
    wo, bo = torch.eye(3), torch.tensor([0.0, 0.0, 1.0])
    out = forward_layers(x, [(w1, b1), (w2, b2), (wo, bo)], arch)
    # h1 = relu([1, -1]) = [1, 0]; h2 = tanh(0) + pad(h1) = [1, 0, 0]; logits = h2 + bo
    assert torch.allclose(out, torch.tensor([[1.0, 0.0, 1.0]]))


def test_hypernetwork_crops_full_width_weights(space):
    torch.manual_seed(0)
    model = SmashHyperNetwork(space, embedding_dim=8, encoder_hidden=(8,), body_hidden=(8,))
    arch = Architecture((2, 4), ("relu", "relu"), (False, False))
    layers = model.layers(arch)
    assert [tuple(w.shape) for w, _ in layers] == [(2, 6), (4, 2), (3, 4)]
    full = model.hnet.generate(space.encode([arch]))
    assert torch.equal(layers[0][0], full["0.weight"][0, :2, :6])
    assert torch.equal(layers[2][0], full["3.weight"][0, :, :4])
    x = torch.randn(5, 6)
    assert model(x, arch).shape == (5, 3)
    # different architectures get different weights for the shared block
    other = Architecture((2, 4), ("tanh", "relu"), (False, False))
    assert not torch.equal(model.layers(other)[0][0], layers[0][0])


def test_gradients_reach_the_hypernetwork(space):
    torch.manual_seed(0)
    model = SmashHyperNetwork(space, embedding_dim=8, encoder_hidden=(8,), body_hidden=(8,))
    arch = space.sample(1, torch.Generator().manual_seed(1))[0]
    model(torch.randn(4, 6), arch).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert len(grads) > 0 and model.num_parameters() == sum(g.numel() for g in grads)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def _blobs(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(3, (n,), generator=g)
    centres = torch.randn(3, 6, generator=g) * 3
    return centres[y] + torch.randn(n, 6, generator=g) * 0.5, y


def test_training_learns_and_is_deterministic(space):
    x, y = _blobs()
    arch = Architecture((4,), ("relu",), (False,))
    a = train_architecture(space, arch, x, y, steps=60, lr=1e-2, batch_size=32, seed=1)
    b = train_architecture(space, arch, x, y, steps=60, lr=1e-2, batch_size=32, seed=1)
    assert evaluate(a, x, y) > 0.8
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    torch.manual_seed(0)
    model = SmashHyperNetwork(space, embedding_dim=8, encoder_hidden=(16,), body_hidden=(16,))
    losses = train_smash(model, x, y, steps=80, lr=3e-3, batch_size=32, seed=0)
    assert len(losses) == 80 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-10:]) < sum(losses[:10])


def test_kendall_tau_hand_cases():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # pairs: (1,2)+ (1,3)+ (2,3)-  -> (2 - 1) / 3
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # ties in b: n0 = 3, n2 = 1, concordant 2 -> 2 / sqrt(3 * 2)
    assert kendall_tau([1, 2, 3], [1, 2, 2]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(kendall_tau([1, 2, 3], [5, 5, 5]))


def test_kendall_tau_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        a = torch.randint(6, (30,), generator=g).double()  # with ties
        b = a + torch.randn(30, generator=g, dtype=torch.float64) * 2
        b = torch.round(b)
        expected = stats.kendalltau(a.numpy(), b.numpy()).statistic
        assert kendall_tau(a, b) == pytest.approx(expected, abs=1e-12)


def test_bootstrap_interval():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(40, generator=g)
    b = a + 0.5 * torch.randn(40, generator=g)
    low, high = bootstrap_tau(a, b, resamples=300, seed=0)
    tau = kendall_tau(a, b)
    assert low < tau < high and low > 0 and high <= 1
    assert (low, high) == bootstrap_tau(a, b, resamples=300, seed=0)


def test_errors(space):
    with pytest.raises(ShapeError, match="same length"):
        kendall_tau([1, 2], [1, 2, 3])
    with pytest.raises(HypercoreError, match="at least 2"):
        kendall_tau([1], [1])
    with pytest.raises(HypercoreError, match="depth"):
        space.check(Architecture((2,) * 4, ("relu",) * 4, (False,) * 4))
    with pytest.raises(HypercoreError, match="widths must be in"):
        space.check(Architecture((5,), ("relu",), (False,)))
    with pytest.raises(HypercoreError, match="first layer"):
        space.check(Architecture((2,), ("relu",), (True,)))
    with pytest.raises(HypercoreTypeError, match="Architecture"):
        space.encode(["2-4"])  # type: ignore[list-item]
    with pytest.raises(HypercoreError, match="activations"):
        SearchSpace(4, 2, activations=("swish",))
    model = SmashHyperNetwork(space, embedding_dim=4, encoder_hidden=(4,), body_hidden=(4,))
    with pytest.raises(ShapeError, match=r"x: expected shape \(B, 6\)"):
        model(torch.randn(3, 5), space.sample(1, torch.Generator())[0])
    with pytest.raises(HypercoreError, match="confidence"):
        bootstrap_tau([1, 2, 3], [1, 2, 3], confidence=1.5)
