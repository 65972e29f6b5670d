"""Tests of hypercore.apps.hyperparameters: the penalty, the trial, the searches, the tuner."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.apps import hyperparameters as hp
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is fastest (and avoids contention on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def data(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def tuner(seed: int = 0, init: float = -3.0) -> hp.BestResponseTuner:
    torch.manual_seed(seed)
    target = make()
    hnet = hc.HyperNetwork.build(target, hc.ScalarInput(1, -6.0, 0.0), body_hidden=(8,))
    return hp.BestResponseTuner(hnet, target, -6.0, 0.0, init, sigma=0.5, lr=1e-2, seed=seed)


def test_l2_penalty_matches_hand_computation_and_skips_biases() -> None:
    w = {"0.weight": torch.tensor([[1.0, 2.0]]), "0.bias": torch.tensor([10.0])}
    assert hp.l2_penalty(w).item() == pytest.approx(5.0)


def test_l2_penalty_errors() -> None:
    with pytest.raises(HypercoreTypeError, match="weights"):
        hp.l2_penalty([torch.ones(2)])  # type: ignore[arg-type]
    with pytest.raises(HypercoreError, match="weight"):
        hp.l2_penalty({"bias": torch.ones(2)})


def test_regularised_loss_is_cross_entropy_plus_scaled_penalty() -> None:
    net = make()
    x, y = data()
    w = dict(net.named_parameters())
    expected = nn.functional.cross_entropy(net(x), y) + 1e-2 * hp.l2_penalty(w)
    assert hp.regularised_loss(net(x), y, w, -2.0).item() == pytest.approx(expected.item())
    with pytest.raises(ShapeError, match="logits"):
        hp.regularised_loss(net(x), y[:-1], w, -2.0)


def test_train_network_is_deterministic_and_penalty_shrinks_weights() -> None:
    x, y = data()
    a = hp.train_network(make, -6.0, x, y, 30, 1e-2, seed=3)
    b = hp.train_network(make, -6.0, x, y, 30, 1e-2, seed=3)
    strong = hp.train_network(make, 0.0, x, y, 30, 1e-2, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    norm = hp.l2_penalty(dict(a.named_parameters())).item()
    assert hp.l2_penalty(dict(strong.named_parameters())).item() < norm
    assert math.isfinite(hp.validation_loss(a, x, y))
    with pytest.raises(HypercoreError, match="steps"):
        hp.train_network(make, -3.0, x, y, 0, 1e-2, seed=0)


def test_best_so_far() -> None:
    assert hp.best_so_far([3.0, 1.0, 2.0, 0.5]) == [3.0, 1.0, 1.0, 0.5]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_search_finds_minimum_of_a_known_function_and_counts_steps(sampler: str) -> None:
    result = hp.search(sampler, lambda u: (u + 2.0) ** 2, 25, 7, -6.0, 0.0, seed=0)
    assert result.steps == [7 * (i + 1) for i in range(25)]
    assert result.chosen == result.log_lams[result.values.index(min(result.values))]
    assert abs(result.chosen + 2.0) < 1.0
    again = hp.search(sampler, lambda u: (u + 2.0) ** 2, 25, 7, -6.0, 0.0, seed=0)
    assert again.log_lams == result.log_lams  # seeded
    with pytest.raises(HypercoreError, match="sampler"):
        hp.search("grid", lambda u: u, 2, 1, -1.0, 0.0, seed=0)


def test_hyper_step_follows_the_validation_gradient_through_the_hypernetwork() -> None:
    t = tuner()
    x, y = data()
    u0 = t.u.detach().clone()
    w = t.hnet.generate(t.u.reshape(()))
    loss = nn.functional.cross_entropy(torch.func.functional_call(t.module, w, (x,)), y)
    (grad,) = torch.autograd.grad(loss, t.u)
    t.hyper_step(x, y)
    assert torch.sign(t.u.detach() - u0) == -torch.sign(grad)  # Adam's first step: -lr * sign
    assert float(t.u.detach() - u0) == pytest.approx(-3e-2 * float(torch.sign(grad)), rel=1e-3)


def test_weight_step_updates_only_the_hypernetwork() -> None:
    t = tuner()
    x, y = data()
    before = [p.detach().clone() for p in t.hnet.parameters()]
    u0 = float(t.u.detach())
    losses = [t.weight_step(x, y) for _ in range(30)]
    assert float(t.u.detach()) == u0
    assert any(not torch.equal(a, p) for a, p in zip(before, t.hnet.parameters(), strict=True))
    assert losses[-1] < losses[0]


def test_run_spends_exactly_the_budget_and_is_deterministic() -> None:
    x, y = data()
    xv, yv = data(seed=1)
    a = tuner(seed=2).run((x, y), (xv, yv), total_steps=43, warmup=10, record_every=2)
    b = tuner(seed=2).run((x, y), (xv, yv), total_steps=43, warmup=10, record_every=2)
    assert a.steps[-1] == 43 and a.steps == b.steps and a.values == b.values
    assert a.chosen == b.chosen and -6.0 <= a.chosen <= 0.0
    with pytest.raises(HypercoreError, match="warmup"):
        tuner().run((x, y), (xv, yv), total_steps=5, warmup=5)


def test_tuner_errors() -> None:
    with pytest.raises(HypercoreTypeError, match="hnet"):
        hp.BestResponseTuner(make(), make(), -6.0, 0.0, -3.0)  # type: ignore[arg-type]
    t = tuner()
    with pytest.raises(HypercoreError, match="init"):
        hp.BestResponseTuner(t.hnet, t.module, -6.0, 0.0, 1.0)
