"""hypercore.apps.domain: set encoder, training loops, AdaBN, fine-tuning, size matching."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.apps.domain import (
    SetEncoder,
    adapt_batchnorm,
    domain_batches,
    fine_tune,
    fit_erm,
    fit_set_hypernetwork,
    mlp_parameter_count,
    width_for_parameters,
)
from hypercore.data import rotate_images
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def toy_domains(k: int = 3, n: int = 40, f: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(n, f, generator=g) + d, torch.randint(0, 3, (n,), generator=g))
        for d in range(k)
    ]


def test_set_encoder_is_a_mean_of_per_sample_features():
    torch.manual_seed(0)
    enc = SetEncoder(6, 4, hidden=(5,))
    u = torch.randn(7, 6)
    by_hand = enc.rho(torch.relu(enc.phi[0](u)).mean(0))
    assert enc(u).shape == (4,)
    torch.testing.assert_close(enc(u), by_hand)
    torch.testing.assert_close(enc(u[torch.randperm(7)]), enc(u))  # order-invariant


def test_set_encoder_batches_sets_and_flattens_images():
    torch.manual_seed(0)
    enc = SetEncoder(16, 3, hidden=())
    sets = torch.randn(2, 5, 1, 4, 4)
    z = enc(sets)
    assert z.shape == (2, 3)
    torch.testing.assert_close(z[1], enc(sets[1]))
    torch.testing.assert_close(z[0], enc.rho(sets[0].reshape(5, 16).mean(0)))


def test_set_encoder_errors_name_the_argument():
    enc = SetEncoder(6, 4)
    with pytest.raises(ShapeError, match="condition: expected a set"):
        enc(torch.randn(7, 5))
    with pytest.raises(ShapeError, match="condition"):
        enc(torch.randn(0, 6))
    with pytest.raises(HypercoreTypeError, match="condition: expected a torch.Tensor"):
        enc([[0.0] * 6])
    with pytest.raises(HypercoreError, match="embedding_dim"):
        SetEncoder(6, 0)


def test_hypernetwork_writes_one_classifier_per_set_and_gets_gradients():
    torch.manual_seed(0)
    target = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    hnet = hc.HyperNetwork.build(target, SetEncoder(6, 4, hidden=(8,), example_set_size=5))
    x, u = torch.randn(10, 6), torch.randn(5, 6)
    out = hnet(x, u)
    assert out.shape == (10, 3)
    out.sum().backward()
    assert hnet.conditioner.phi[0].weight.grad is not None  # the descriptor is trained
    assert hnet.conditioner.phi[0].weight.grad.abs().sum() > 0
    torch.testing.assert_close(hnet.materialize(u)(x), hnet(x, u))


def test_domain_batches_one_batch_per_domain_without_replacement():
    domains = [
        (torch.arange(10.0).unsqueeze(1) + 100 * d, torch.arange(10) + 100 * d) for d in range(3)
    ]
    x, y = domain_batches(domains, 10, torch.Generator().manual_seed(0))
    assert x.shape == (3, 10, 1) and y.shape == (3, 10)
    for d in range(3):
        assert sorted(y[d].tolist()) == list(range(100 * d, 100 * d + 10))
        torch.testing.assert_close(x[d, :, 0], y[d].float())
    with pytest.raises(ShapeError, match="fewer than batch_size=11"):
        domain_batches(domains, 11, torch.Generator())
    with pytest.raises(HypercoreTypeError, match="domains"):
        domain_batches(torch.randn(3, 4), 2, torch.Generator())


def test_training_loops_are_deterministic_and_learn():
    domains = toy_domains()

    def run_erm(batchnorm):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
        return fit_erm(model, domains, steps=30, batch_size=8, lr=1e-2, batchnorm=batchnorm)

    a, b = run_erm("pooled"), run_erm("pooled")
    assert a == b
    assert a[-1] < a[0]
    assert run_erm("per-domain") != a  # batch norm sees each domain alone
    with pytest.raises(HypercoreError, match="batchnorm"):
        run_erm("mixed")

    def run_hnet():
        torch.manual_seed(1)
        target = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        hnet = hc.HyperNetwork.build(target, SetEncoder(6, 4, hidden=(8,), example_set_size=5))
        return fit_set_hypernetwork(hnet, domains, steps=30, batch_size=8, set_size=5, lr=1e-2)

    c = run_hnet()
    assert c == run_hnet() and len(c) == 30 and c[-1] < c[0]


def test_adapt_batchnorm_uses_the_target_statistics_and_leaves_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(32, 4) * 3 + 1
    adapted = adapt_batchnorm(model, x)
    h = model[0](x)
    bn = adapted[1]
    torch.testing.assert_close(bn.running_mean, h.mean(0))
    torch.testing.assert_close(bn.running_var, h.var(0, unbiased=True))
    assert not adapted.training
    assert bn.momentum == model[1].momentum
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])  # the source model is untouched
    # eval on the target now normalises it: hidden pre-activations have mean beta, std gamma
    z = bn(h)
    torch.testing.assert_close(z.mean(0), bn.bias, atol=1e-5, rtol=0)
    with pytest.raises(HypercoreError, match="no"):
        adapt_batchnorm(nn.Linear(4, 2), x)
    with pytest.raises(ShapeError, match="at least 2"):
        adapt_batchnorm(model, x[:1])


def test_fine_tune_fits_the_few_labelled_samples_on_a_copy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x, y = torch.randn(12, 4), torch.arange(12) % 3
    w = model[0].weight.clone()
    tuned = fine_tune(model, x, y, steps=200, lr=1e-2)
    assert hc.accuracy(tuned(x), y) == 1.0
    torch.testing.assert_close(model[0].weight, w)
    torch.testing.assert_close(tuned[1].running_mean, model[1].running_mean)  # stats kept
    with pytest.raises(ShapeError, match="x, y"):
        fine_tune(model, x, y[:5], steps=1)


def test_parameter_counts_match_torch():
    for widths, bn in (([64, 32, 10], False), ([64, 441, 10], True), ([6, 5, 7, 3], True)):
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(widths[:-1]):
            layers += [nn.Linear(a, b)] + ([nn.BatchNorm1d(b)] if bn else []) + [nn.ReLU()]
        layers.append(nn.Linear(widths[-2], widths[-1]))
        expected = sum(p.numel() for p in nn.Sequential(*layers).parameters())
        assert mlp_parameter_count(widths, batchnorm=bn) == expected
    w = width_for_parameters(33934, 64, 10)
    assert w == 441
    assert abs(mlp_parameter_count([64, w, 10], True) - 33934) <= 76 / 2
    with pytest.raises(HypercoreError, match="widths"):
        mlp_parameter_count([64])


def test_rotation_helper_turns_by_quarter_turns_exactly():
    """The data helper the chapter uses: +90 degrees is numpy/torch's rot90 with k=1."""
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    torch.testing.assert_close(rotate_images(x, 90), torch.rot90(x, 1, (2, 3)), atol=1e-4, rtol=0)
    torch.testing.assert_close(rotate_images(x, 0), x, atol=1e-5, rtol=0)
