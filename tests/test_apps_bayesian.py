"""Behaviour tests of hypercore.apps.bayesian (Bayesian hypernetwork vs mean-field VI)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.apps import bayesian as by
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def _randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give the zero-initialised coupling outputs non-zero values (a non-identity flow)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model


def test_mean_field_sample_and_entropy_match_closed_form():
    torch.manual_seed(0)
    q = by.MeanFieldGaussian(5, init_std=0.2)
    theta, log_det = q.rsample(4)
    assert theta.shape == (4, 5) and log_det.shape == (4,)
    expected = 0.5 * 5 * math.log(2 * math.pi * math.e) + 5 * math.log(0.2)
    assert q.entropy_from(log_det).item() == pytest.approx(expected, rel=1e-5)


def test_hypernetwork_starts_as_mean_field():
    torch.manual_seed(0)
    bhn = by.BayesianHypernetwork(6, num_layers=3, hidden=8)
    eps = torch.randn(10, 6)
    theta, log_det = bhn.transform(eps)
    base_theta, base_log_det = bhn.base.transform(eps)
    assert torch.allclose(theta, base_theta) and torch.allclose(log_det, base_log_det)


def test_coupling_log_det_is_exact_and_inverse_inverts():
    torch.manual_seed(0)
    bhn = _randomised(by.BayesianHypernetwork(6, num_layers=3, hidden=8))
    eps = torch.randn(3, 6, dtype=torch.float64)
    bhn = bhn.double()
    theta, log_det = bhn.transform(eps)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda e: bhn.transform(e[None])[0][0], eps[i])
        assert log_det[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-8)
    assert torch.allclose(bhn.inverse(theta), eps, atol=1e-10)


def test_elbo_gradients_reach_every_parameter_and_ablation_drops_entropy():
    torch.manual_seed(0)
    bhn = _randomised(by.BayesianHypernetwork(4, num_layers=2, hidden=4))

    def log_likelihood(theta):
        return -(theta - 1.0).pow(2).sum(1)

    loss, stats = by.elbo_loss(bhn, log_likelihood, 8, prior_std=1.0)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in bhn.parameters())
    assert loss.item() == pytest.approx(-stats["elbo"], rel=1e-6)
    g = torch.Generator().manual_seed(1)
    only, stats2 = by.elbo_loss(bhn, log_likelihood, 8, 1.0, "likelihood", generator=g)
    assert only.item() == pytest.approx(-stats2["log_likelihood"], rel=1e-6)


def test_gaussian_log_prior_matches_torch_distributions():
    theta = torch.randn(3, 4)
    expected = torch.distributions.Normal(0.0, 2.0).log_prob(theta).sum(1)
    assert torch.allclose(by.gaussian_log_prior(theta, 2.0), expected, atol=1e-5)


def test_exact_posterior_and_mean_field_optimum_on_a_tiny_case():
    phi = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([1.0, 2.0, 0.5])
    mean, cov = by.exact_linear_posterior(phi, y, noise_std=1.0, prior_std=1.0)
    precision = phi.double().T @ phi.double() + torch.eye(2, dtype=torch.float64)
    assert torch.allclose(cov, torch.linalg.inv(precision))
    assert torch.allclose(mean, torch.linalg.solve(precision, phi.double().T @ y.double()))
    mf_mean, mf_cov = by.mean_field_optimum(phi, y, 1.0, 1.0)
    assert torch.allclose(mf_mean, mean)
    assert torch.allclose(mf_cov.diagonal(), 1 / precision.diagonal())
    assert (mf_cov.diagonal() <= cov.diagonal() + 1e-12).all()  # mean-field underestimates
    pm, pv = by.linear_predictive(phi, mean, cov, 1.0)
    assert pv.shape == (3,) and torch.allclose(pm, phi.double() @ mean)


def test_mean_field_training_recovers_a_one_dimensional_gaussian_posterior():
    # y_i ~ N(w, 1), prior N(0, 1): the posterior is N(sum y / (n + 1), 1 / (n + 1)).
    y = torch.tensor([0.8, 1.2, 1.0, 1.4])
    torch.manual_seed(0)
    q = by.MeanFieldGaussian(1, init_std=0.5)
    by.fit_posterior(
        q,
        lambda t: -0.5 * (y - t).pow(2).sum(1),
        steps=300,
        num_samples=32,
        prior_std=1.0,
        lr=0.05,
    )
    assert q.mean.item() == pytest.approx(y.sum().item() / 5, abs=0.08)
    assert q.std.item() == pytest.approx(math.sqrt(1 / 5), abs=0.08)


def test_fit_is_deterministic_under_a_seed():
    def run():
        torch.manual_seed(3)
        q = by.BayesianHypernetwork(4, num_layers=1, hidden=4)
        history = by.fit_posterior(
            q, lambda t: -t.pow(2).sum(1), steps=5, num_samples=4, prior_std=1.0, seed=7
        )
        return history[-1]["elbo"]

    assert run() == run()


def test_apply_samples_runs_each_draw():
    torch.manual_seed(0)
    target = hc.Target(nn.Sequential(nn.Linear(3, 2)))
    theta = torch.randn(5, target.num_generated)
    x = torch.randn(7, 3)
    out = by.apply_samples(target, x, theta)
    assert out.shape == (5, 7, 2)
    w = theta[2, :6].view(2, 3)
    b = theta[2, 6:]
    assert torch.allclose(out[2], x @ w.T + b, atol=1e-6)


def test_metrics_against_hand_computations():
    y = torch.tensor([0.0, 1.0, 3.0, -2.0])
    mean = torch.zeros(4)
    var = torch.ones(4)
    assert by.interval_coverage(y, mean, var, 0.9) == 0.5  # |y| <= 1.645 for 0 and 1
    f = torch.zeros(3, 4)
    expected = -torch.distributions.Normal(0.0, 0.5).log_prob(y)
    assert torch.allclose(by.mixture_gaussian_nll(y, f, 0.5), expected, atol=1e-5)
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    assert torch.allclose(by.predictive_entropy(probs), torch.tensor([math.log(2), 0.0]))
    theta = torch.tensor([[0.0, 1.0], [2.0, 1.0]])
    assert by.weight_spread(theta) == pytest.approx(math.sqrt(2) / 2)


def test_random_features_shape_and_prior_variance():
    rf = by.RandomFeatures(1, 2000, generator=torch.Generator().manual_seed(0))
    phi = rf(torch.zeros(1, 1))
    assert phi.shape == (1, 2000)
    assert phi.pow(2).sum().item() == pytest.approx(1.0, abs=0.1)  # k(x, x) = 1


def test_errors_name_the_argument():
    q = by.MeanFieldGaussian(3)
    with pytest.raises(ShapeError, match="eps"):
        q.transform(torch.zeros(2, 4))
    with pytest.raises(HypercoreError, match="objective"):
        by.elbo_loss(q, lambda t: t.sum(1), 2, 1.0, objective="map")
    with pytest.raises(ShapeError, match="log_likelihood"):
        by.elbo_loss(q, lambda t: t.sum(), 2, 1.0)
    with pytest.raises(ShapeError, match="theta"):
        by.weight_spread(torch.zeros(1, 3))
    with pytest.raises(HypercoreTypeError, match="target"):
        by.apply_samples(nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1, 6))  # type: ignore[arg-type]
    with pytest.raises(HypercoreError, match="level"):
        by.interval_coverage(torch.zeros(2), torch.zeros(2), torch.ones(2), 1.0)
    with pytest.raises(HypercoreError, match="dim"):
        by.AffineCoupling(1)


def test_expected_coverage_of_the_reference_is_the_level():
    mean, var = torch.randn(6), torch.rand(6) + 0.1
    assert by.expected_coverage(mean, var, mean, var, 0.9) == pytest.approx(0.9, abs=1e-6)
    narrow = by.expected_coverage(mean, var / 4, mean, var, 0.9)
    assert narrow == pytest.approx(0.5 * (1 + math.erf(0.8224 / math.sqrt(2))) * 2 - 1, abs=1e-3)


def test_log_evidence_bounds_the_elbo_and_the_gap_is_the_kl():
    # The exact posterior as q: ELBO = log evidence exactly, and KL(q || posterior) = 0.
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(5, 3, generator=g)
    y = torch.randn(5, generator=g)
    mean, cov = by.exact_linear_posterior(phi, y, 0.5, 1.0)
    log_z = by.linear_log_evidence(phi, y, 0.5, 1.0)
    theta = (
        mean
        + torch.randn(20000, 3, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    )
    log_lik = torch.distributions.Normal(theta @ phi.double().T, 0.5).log_prob(y.double()).sum(1)
    log_prior = by.gaussian_log_prior(theta, 1.0)
    log_q = torch.distributions.MultivariateNormal(mean, cov).log_prob(theta)
    assert (log_lik + log_prior - log_q).mean().item() == pytest.approx(log_z, abs=1e-6)
    assert by.gaussian_kl(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-9)
