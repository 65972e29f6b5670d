"""hypercore.apps.adversarial: FGSM, PGD, EOT gradients and adversarial training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hypercore as hc
from hypercore.apps import adversarial as adv
from hypercore.apps import uncertainty as unc
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def linear_loss(w: torch.Tensor):
    # per-example loss l(x) = x . w: its input gradient is w for every example
    return lambda x, y: x @ w


def data(n: int = 6, d: int = 5):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, d, generator=g) * 0.6 + 0.2  # inside [0.2, 0.8]
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def test_fgsm_is_eps_times_sign_of_the_gradient_on_a_linear_model():
    x, y = data()
    w = torch.tensor([1.5, -0.3, 0.0, 2.0, -4.0])
    x_adv = adv.fgsm(linear_loss(w), x, y, 0.1)
    torch.testing.assert_close(x_adv - x, 0.1 * w.sign().expand_as(x))
    assert not x_adv.requires_grad


def test_fgsm_clips_to_the_bounds():
    x = torch.tensor([[0.95, 0.02]])
    x_adv = adv.fgsm(linear_loss(torch.tensor([1.0, -1.0])), x, torch.tensor([0]), 0.1)
    torch.testing.assert_close(x_adv, torch.tensor([[1.0, 0.0]]))


def test_pgd_stays_in_the_eps_ball_and_the_bounds():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = data(20)
    x[0] = 0.0  # on the boundary of [0, 1]
    x[1] = 1.0

    def loss(xb, yb):
        return F.cross_entropy(net(xb), yb, reduction="none")

    for eps in (0.05, 0.3, 2.0):
        x_adv = adv.pgd(
            loss, x, y, eps, steps=7, restarts=2, generator=torch.Generator().manual_seed(1)
        )
        assert (x_adv - x).abs().max() <= eps + 1e-6
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
        assert x_adv.shape == x.shape


def test_pgd_on_a_linear_loss_reaches_the_corner_of_the_ball():
    # with enough steps every coordinate ends at x + eps * sign(w) (inside the bounds)
    x, y = data()
    w = torch.tensor([1.0, -2.0, 0.5, -0.1, 3.0])
    x_adv = adv.pgd(linear_loss(w), x, y, 0.1, steps=10, step_size=0.05)
    torch.testing.assert_close(x_adv, x + 0.1 * w.sign())


def test_pgd_raises_the_loss_more_than_fgsm_or_no_attack():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = data(40)

    def loss(xb, yb):
        return F.cross_entropy(net(xb), yb, reduction="none")

    clean = loss(x, y).mean()
    x_f = adv.fgsm(loss, x, y, 0.1)
    x_p = adv.pgd(loss, x, y, 0.1, steps=20, generator=torch.Generator().manual_seed(0))
    assert loss(x_f, y).mean() > clean
    assert loss(x_p, y).mean() >= loss(x_f, y).mean() - 1e-6


def test_eot_gradient_averages_the_gradients_of_the_calls():
    x, y = data()
    ws = [torch.tensor([1.0, 0.0, 2.0, -1.0, 0.5]), torch.tensor([3.0, -2.0, 0.0, 1.0, 0.5])]
    calls = iter(range(100))

    def stochastic(xb, yb):  # alternates between two linear losses, like two weight draws
        return xb @ ws[next(calls) % 2]

    g = adv.eot_gradient(stochastic, x, y, samples=2)
    torch.testing.assert_close(g, ((ws[0] + ws[1]) / 2).expand_as(x))
    g1 = adv.eot_gradient(linear_loss(ws[0]), x, y, samples=3)
    torch.testing.assert_close(g1, ws[0].expand_as(x))


def test_the_gradient_flows_through_generated_weights():
    torch.manual_seed(0)
    target = hc.Target(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)))
    head = hc.ChunkWiseHead(6, target.spec, chunk_size=32, embedding_dim=4, hidden=16)
    hnet = hc.HyperNetwork(target, hc.NoiseSource(4), unc.Mixer(4, 6, (16,)), head)
    noise = unc.draw_noise(hnet, 1, torch.Generator().manual_seed(0))
    x, y = data()

    def loss(xb, yb):
        return F.cross_entropy(hnet.forward_sets(xb, noise)[0], yb, reduction="none")

    g = adv.eot_gradient(loss, x, y)
    # the same gradient through the materialised network with those weights
    net = hnet.materialize(noise[0])
    xg = x.clone().requires_grad_(True)
    F.cross_entropy(net(xg), y, reduction="sum").backward()
    torch.testing.assert_close(g, xg.grad)
    assert g.abs().sum() > 0


def test_pgd_is_deterministic_with_a_generator_and_zero_eps_is_identity():
    torch.manual_seed(0)
    net = nn.Linear(5, 3)
    x, y = data()

    def loss(xb, yb):
        return F.cross_entropy(net(xb), yb, reduction="none")

    a = adv.pgd(loss, x, y, 0.1, steps=3, generator=torch.Generator().manual_seed(3))
    b = adv.pgd(loss, x, y, 0.1, steps=3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(adv.pgd(loss, x, y, 0.0, steps=3), x)


def test_accuracy_and_fit_adversarial_learn_a_toy_task():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 2, generator=g)
    y = (x[:, 0] > 0.5).long()
    net = nn.Linear(2, 2)

    def loss(xb, yb):
        return F.cross_entropy(net(xb), yb, reduction="none")

    history = adv.fit_adversarial(
        lambda xb, yb: loss(xb, yb).mean(),
        list(net.parameters()),
        x,
        y,
        epochs=30,
        attack=lambda xb, yb: adv.fgsm(loss, xb, yb, 0.02),
        batch_size=16,
        lr=0.05,
    )
    assert len(history) == 30 and history[-1] < history[0]
    assert adv.accuracy(net, x, y) > 0.85


def test_errors_name_the_argument():
    x, y = data()
    loss = linear_loss(torch.ones(5))
    with pytest.raises(HypercoreError, match="eps"):
        adv.fgsm(loss, x, y, -0.1)
    with pytest.raises(ShapeError, match="y"):
        adv.pgd(loss, x, y[:3], 0.1)
    with pytest.raises(HypercoreError, match="bounds"):
        adv.fgsm(loss, x, y, 0.1, bounds=(1.0, 0.0))
    with pytest.raises(ShapeError, match="loss_fn"):
        adv.fgsm(lambda xb, yb: xb.sum(), x, y, 0.1)
    with pytest.raises(HypercoreError, match="steps"):
        adv.pgd(loss, x, y, 0.1, steps=0)
    with pytest.raises(HypercoreTypeError, match="x"):
        adv.fgsm(loss, x.long(), y, 0.1)
    with pytest.raises(ShapeError, match="predict"):
        adv.accuracy(lambda xb: xb.sum(1), x, y)
