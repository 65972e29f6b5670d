"""Behaviour tests of hypercore.apps.causal (fast: no training run longer than ~1 s)."""

from __future__ import annotations

import math

import pytest
import torch

from hypercore.apps.causal import (
    SETUPS,
    HyperITE,
    TARNet,
    ate_error,
    cate,
    factual_mse,
    fit_meta_learner,
    fit_outcome_model,
    num_params,
    pehe,
    simulate,
)
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


@pytest.mark.parametrize("setup", SETUPS)
def test_simulate_shapes_truth_and_determinism(setup: str) -> None:
    a = simulate(setup, 300, d=6, sigma=0.5, seed=3)
    b = simulate(setup, 300, d=6, sigma=0.5, seed=3)
    assert a.x.shape == (300, 6) and a.t.shape == a.y.shape == a.tau.shape == (300,)
    assert torch.equal(a.y, b.y) and torch.equal(a.t, b.t)
    assert set(a.t.unique().tolist()) <= {0.0, 1.0}
    assert ((a.e > 0) & (a.e < 1)).all()
    # noiseless outcomes equal the factual potential outcome
    c = simulate(setup, 50, sigma=0.0, seed=1)
    assert torch.allclose(c.y, torch.where(c.t > 0, c.mu1, c.mu0))


def test_simulate_known_effects() -> None:
    a = simulate("A", 100, seed=0)
    assert torch.allclose(a.tau, (a.x[:, 0] + a.x[:, 1]) / 2)
    assert torch.allclose(simulate("C", 10).tau, torch.ones(10))
    d = simulate("D", 100, seed=0)
    r1 = (d.x[:, :3].sum(1)).clamp(min=0)
    r2 = (d.x[:, 3:5].sum(1)).clamp(min=0)
    assert torch.allclose(d.tau, r1 - r2)


def test_simulate_errors() -> None:
    with pytest.raises(HypercoreError, match="setup"):
        simulate("B", 10)
    with pytest.raises(HypercoreError, match="d"):
        simulate("A", 10, d=3)
    with pytest.raises(HypercoreTypeError, match="n"):
        simulate("A", 10.0)  # type: ignore[arg-type]


def test_factual_mse_hand_computed() -> None:
    mu = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    t = torch.tensor([0, 1, 0])
    y = torch.tensor([0.0, 18.0, 3.0])
    # errors: 1 (arm 0), 2 (arm 1), 0 (arm 0)
    assert float(factual_mse(mu, t, y)) == pytest.approx((1 + 4 + 0) / 3)
    with pytest.raises(ShapeError, match="mu"):
        factual_mse(mu[0], t, y)
    with pytest.raises(ShapeError, match="t"):
        factual_mse(mu, t[:2], y)


def test_metrics_hand_computed() -> None:
    tau = torch.tensor([1.0, 2.0, 3.0, 4.0])
    tau_hat = torch.tensor([2.0, 2.0, 3.0, 2.0])
    assert pehe(tau_hat, tau) == pytest.approx(math.sqrt((1 + 0 + 0 + 4) / 4))
    assert ate_error(tau_hat, tau) == pytest.approx(abs(9 / 4 - 10 / 4))
    with pytest.raises(ShapeError, match="tau_hat"):
        pehe(tau_hat[:2], tau)


def test_models_shapes_and_gradients() -> None:
    torch.manual_seed(0)
    x = torch.randn(7, 6)
    for model in (HyperITE(6, 16), TARNet(6, 16)):
        mu = model(x)
        assert mu.shape == (2, 7)
        assert cate(model, x).shape == (7,)
        factual_mse(mu, torch.tensor([0, 1] * 3 + [0]), torch.zeros(7)).backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with pytest.raises(ShapeError, match="x"):
        HyperITE(6, 16)(torch.randn(7, 5))
    with pytest.raises(HypercoreTypeError, match="x"):
        TARNet(6, 16)([1.0])  # type: ignore[arg-type]


def test_hyperite_arms_share_the_hypernetwork() -> None:
    """One arm's units move the other arm's outputs: the weights are shared softly."""
    torch.manual_seed(0)
    model = HyperITE(6, 8)
    x = torch.randn(20, 6)
    before = model(x)[0].detach().clone()
    t = torch.ones(20)  # only treated units
    fit_outcome_model(model, x, t, torch.randn(20), steps=5, lr=1e-2)
    assert not torch.allclose(model(x)[0], before)  # the control arm changed too
    # TARNet: a treated-only step leaves the control head's own parameters unchanged
    torch.manual_seed(0)
    tar = TARNet(6, 8)
    head0 = [p.detach().clone() for p in tar.heads[0].parameters()]
    fit_outcome_model(tar, x, t, torch.randn(20), steps=5, lr=1e-2)
    assert all(torch.equal(a, b) for a, b in zip(head0, tar.heads[0].parameters(), strict=True))


def test_fit_outcome_model_learns_and_early_stops() -> None:
    torch.manual_seed(0)
    data = simulate("C", 120, sigma=0.1, seed=0)
    model = TARNet(6, 16)
    out = fit_outcome_model(
        model, data.x, data.t, data.y, steps=60, lr=1e-2, val=(data.x, data.t, data.y)
    )
    assert len(out["losses"]) == 60 and out["losses"][-1] < out["losses"][0]
    with torch.no_grad():
        assert float(factual_mse(model(data.x), data.t, data.y)) == pytest.approx(out["val_mse"])
    assert out["best_step"] % 25 == 0 or out["best_step"] == 60
    assert math.isnan(fit_outcome_model(TARNet(6, 4), data.x, data.t, data.y, 2, 1e-3)["val_mse"])
    with pytest.raises(HypercoreError, match="lr"):
        fit_outcome_model(model, data.x, data.t, data.y, steps=1, lr=0.0)


def test_fit_outcome_model_deterministic() -> None:
    data = simulate("A", 60, seed=1)
    outs = []
    for _ in range(2):
        torch.manual_seed(4)
        outs.append(fit_outcome_model(HyperITE(6, 8), data.x, data.t, data.y, 10, 3e-3)["losses"])
    assert outs[0] == outs[1]


def test_parameter_match_of_the_chapter() -> None:
    hyper, tar = HyperITE(6, 32), TARNet(6, 61)
    assert abs(num_params(tar) / num_params(hyper) - 1) < 0.01


@pytest.mark.parametrize("kind", ["S", "T", "X"])
def test_meta_learners_recover_a_linear_effect(kind: str) -> None:
    from sklearn.linear_model import LinearRegression

    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=g)
    t = (torch.rand(400, generator=g) < 0.5).float()
    tau = 2.0 + x[:, 0]
    y = x[:, 1] + t * tau  # noiseless and linear in each arm

    learner = fit_meta_learner(kind, LinearRegression, x, t, y)
    assert learner.outcomes(x).shape == (2, 400)
    if kind == "S":  # the S-learner's linear model has no interaction: the mean effect only
        assert ate_error(learner.cate(x), tau) < 0.05
    else:
        assert pehe(learner.cate(x), tau) < 1e-6


def test_meta_learner_errors() -> None:
    from sklearn.linear_model import LinearRegression

    x = torch.randn(10, 2)
    with pytest.raises(HypercoreError, match="both arms"):
        fit_meta_learner("T", LinearRegression, x, torch.ones(10), torch.randn(10))
    with pytest.raises(HypercoreError, match="kind"):
        fit_meta_learner("R", LinearRegression, x, torch.ones(10), torch.randn(10))
    with pytest.raises(ShapeError, match="x, t, y"):
        fit_meta_learner("S", LinearRegression, x, torch.ones(9), torch.randn(10))
