"""Zero-shot pieces: ESZSL's closed form, generated per-class classifiers, GZSL metrics."""

import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.apps.zero_shot import (
    AttributeEncoder,
    AttributeWorld,
    CompatibilityMLP,
    class_scores,
    eszsl_fit,
    eszsl_scores,
    fit_scores,
    gzsl_accuracy,
    harmonic_mean,
    zsl_accuracy,
)
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def _problem(m=40, d=5, a=3, z=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, d, generator=g, dtype=torch.float64)
    y = torch.arange(m) % z
    s = torch.randn(z, a, generator=g, dtype=torch.float64)
    return x, y, s


def test_eszsl_matches_the_direct_formula_with_explicit_inverses():
    x, y, s = _problem()
    gamma, lam = 0.7, 2.5
    X, S = x.T, s.T  # (d, m), (a, z)
    Y = -torch.ones(40, 4, dtype=torch.float64)
    Y[torch.arange(40), y] = 1.0
    direct = (
        torch.linalg.inv(X @ X.T + gamma * torch.eye(5, dtype=torch.float64))
        @ X
        @ Y
        @ S.T
        @ torch.linalg.inv(S @ S.T + lam * torch.eye(3, dtype=torch.float64))
    )
    v = eszsl_fit(x, y, s, gamma, lam)
    assert v.shape == (5, 3)
    torch.testing.assert_close(v, direct)


def test_eszsl_is_the_minimiser_of_its_objective():
    """V minimises ||X^T V S - Y||^2 + gamma ||V S||^2 + lam ||X^T V||^2 + gamma lam ||V||^2:
    the gradient vanishes there (the closed form is its stationary point)."""
    x, y, s = _problem(seed=1)
    gamma, lam = 0.3, 1.1
    Y = -torch.ones(40, 4, dtype=torch.float64)
    Y[torch.arange(40), y] = 1.0
    v = eszsl_fit(x, y, s, gamma, lam).requires_grad_(True)
    X, S = x.T, s.T
    loss = (
        (X.T @ v @ S - Y).pow(2).sum()
        + gamma * (v @ S).pow(2).sum()
        + lam * (X.T @ v).pow(2).sum()
        + gamma * lam * v.pow(2).sum()
    )
    (grad,) = torch.autograd.grad(loss, v)
    assert grad.abs().max() < 1e-8


def test_eszsl_scores_shape_and_errors():
    x, y, s = _problem()
    v = eszsl_fit(x, y, s, 1.0, 1.0)
    assert eszsl_scores(x[:7], v, torch.randn(9, 3, dtype=torch.float64)).shape == (7, 9)
    with pytest.raises(ShapeError, match="attributes"):
        eszsl_scores(x, v, torch.randn(9, 4, dtype=torch.float64))
    with pytest.raises(HypercoreError, match="gamma"):
        eszsl_fit(x, y, s, 0.0, 1.0)
    with pytest.raises(HypercoreError, match=r"labels in \[0, 4\)"):
        eszsl_fit(x, y + 1, s, 1.0, 1.0)
    with pytest.raises(HypercoreTypeError, match="integer class labels"):
        eszsl_fit(x, y.double(), s, 1.0, 1.0)


def _hnet(target=None):
    torch.manual_seed(0)
    return hc.HyperNetwork.build(
        target or nn.Linear(5, 1), AttributeEncoder(3, identity=True), head="once", body_hidden=(8,)
    )


def test_class_scores_fast_path_equals_forward_sets_and_per_class_materialize():
    hnet = _hnet()
    x, a = torch.randn(6, 5), torch.randn(4, 3)
    fast = class_scores(hnet, x, a)
    slow = class_scores(hnet, x, a, fast=False)
    assert fast.shape == (6, 4)
    torch.testing.assert_close(fast, slow)
    for k in range(4):  # column k is class k's generated classifier
        torch.testing.assert_close(fast[:, k], hnet.materialize(a[k])(x)[:, 0])


def test_class_scores_with_a_per_class_network_and_gradients():
    hnet = _hnet(nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 1)))
    x, a = torch.randn(6, 5), torch.randn(3, 3)
    scores = class_scores(hnet, x, a)
    assert scores.shape == (6, 3)
    scores.sum().backward()
    assert all(p.grad is not None for p in hnet.body.parameters())


def test_class_scores_refuses_targets_with_several_outputs():
    hnet = _hnet(nn.Linear(5, 2))
    with pytest.raises(ShapeError, match="one score per input"):
        class_scores(hnet, torch.randn(6, 5), torch.randn(3, 3))
    with pytest.raises(HypercoreTypeError, match="HyperNetwork"):
        class_scores(nn.Linear(5, 1), torch.randn(6, 5), torch.randn(3, 3))


def test_attribute_encoder_shapes_and_errors():
    enc = AttributeEncoder(3, 8, hidden=(4,))
    assert enc(torch.randn(5, 3)).shape == (5, 8)
    assert AttributeEncoder(3, identity=True)(torch.ones(2, 3)).tolist() == [[1.0] * 3] * 2
    with pytest.raises(ShapeError, match=r"\(K, 3\)"):
        enc(torch.randn(5, 4))
    with pytest.raises(HypercoreError, match="identity"):
        AttributeEncoder(3, 4, identity=True)


def test_gzsl_metrics_by_hand():
    # classes 0, 1 seen; 2 unseen; two inputs per class
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 0])  # class 0: 1/2, class 1: 2/2, class 2: 1/2
    scores = nn.functional.one_hot(pred, 3).float()
    r = gzsl_accuracy(scores, y, [0, 1], [2])
    assert r["seen"] == pytest.approx(0.75) and r["unseen"] == pytest.approx(0.5)
    assert r["H"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    # conventional ZSL: among the unseen classes only, the single unseen class is always right
    assert zsl_accuracy(scores, y, [2]) == 1.0
    assert harmonic_mean(0.0, 0.0) == 0.0
    with pytest.raises(HypercoreError, match="disjoint"):
        gzsl_accuracy(scores, y, [0, 1], [1])
    with pytest.raises(HypercoreError, match="no test input"):
        gzsl_accuracy(scores[:4], y[:4], [0, 1], [2])
    with pytest.raises(HypercoreError, match="accuracy in"):
        harmonic_mean(1.5, 0.2)


def test_gzsl_predicts_over_the_joint_label_space_only():
    """A column outside seen + unseen can never be predicted."""
    y = torch.tensor([0, 1])
    scores = torch.tensor([[0.0, -1.0, 9.0], [0.0, 1.0, 9.0]])
    assert gzsl_accuracy(scores, y, [0], [1])["H"] == 1.0


def test_world_is_deterministic_and_bayes_beats_chance():
    w1 = AttributeWorld.make(10, 3, 6, seed=3, radius=5.0)
    w2 = AttributeWorld.make(10, 3, 6, seed=3, radius=5.0)
    torch.testing.assert_close(w1.means, w2.means)
    torch.testing.assert_close(w1.attributes.norm(dim=1), torch.ones(10))
    torch.testing.assert_close(w1.means.norm(dim=1), torch.full((10,), 5.0))
    x, y = w1.sample(range(10), 20, torch.Generator().manual_seed(0))
    assert x.shape == (200, 6) and y.tolist()[:21] == [0] * 20 + [1]
    assert (w1.bayes_scores(x).argmax(1) == y).float().mean() > 0.5


def test_fit_scores_learns_and_checkpoints_are_deterministic():
    w = AttributeWorld.make(6, 3, 8, seed=0, radius=6.0)
    x, y = w.sample(range(6), 10, torch.Generator().manual_seed(0))

    def run():
        torch.manual_seed(0)
        model = CompatibilityMLP(8, 3, 4, x_hidden=(8,), a_hidden=(8,))
        return fit_scores(
            model,
            model.parameters(),
            x,
            y,
            w.attributes,
            steps=60,
            lr=1e-2,
            checkpoints=[1, 60],
            evaluate=lambda: {"acc": float((model(x, w.attributes).argmax(1) == y).float().mean())},
        )

    r1, r2 = run(), run()
    assert r1 == r2
    assert r1[60]["train loss"] < r1[1]["train loss"] and r1[60]["acc"] > 0.5
    with pytest.raises(HypercoreError, match="checkpoints"):
        fit_scores(
            lambda xb, a: xb @ torch.zeros(8, 6),
            [],
            x,
            y,
            w.attributes,
            steps=5,
            lr=0.1,
            checkpoints=[9],
            evaluate=dict,
        )
