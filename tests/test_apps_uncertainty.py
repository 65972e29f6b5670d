"""hypercore.apps.uncertainty: HyperGAN training, ensembles, MC dropout, spread measures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.apps import uncertainty as unc
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def make_hnet(noise: int = 4, code: int = 6) -> hc.HyperNetwork:
    target = hc.Target(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)))
    head = hc.ChunkWiseHead(code, target.spec, chunk_size=32, embedding_dim=4, hidden=16)
    return hc.HyperNetwork(target, hc.NoiseSource(noise), unc.Mixer(noise, code, (16,)), head)


def toy_data(n: int = 48):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    return x, y


def test_mixer_and_discriminator_shapes():
    mixer = unc.Mixer(4, 6, (16,))
    codes = mixer(torch.randn(7, 4))
    assert codes.shape == (7, 6)
    assert (codes < 0).any()  # a linear output: codes take both signs
    assert unc.CodeDiscriminator(6)(codes).shape == (7,)
    with pytest.raises(ShapeError, match="noise"):
        mixer(torch.randn(7, 5))
    with pytest.raises(ShapeError, match="codes"):
        unc.CodeDiscriminator(6)(torch.randn(7, 5))


def test_sample_probs_and_codes_follow_the_noise():
    torch.manual_seed(0)
    hnet = make_hnet()
    noise = unc.draw_noise(hnet, 5, torch.Generator().manual_seed(3))
    again = unc.draw_noise(hnet, 5, torch.Generator().manual_seed(3))
    assert torch.equal(noise, again)
    x = torch.randn(10, 5)
    probs = unc.sample_probs(hnet, x, noise)
    assert probs.shape == (5, 10, 3)
    assert torch.allclose(probs.sum(-1), torch.ones(5, 10))
    # draw k's probabilities are those of the network generated from noise k
    single = hnet(x, noise[2]).softmax(-1)
    assert torch.allclose(probs[2], single, atol=1e-6)
    assert unc.latent_codes(hnet, noise).shape == (5, 6)


def test_fit_hypergan_learns_and_is_deterministic():
    x, y = toy_data()
    histories, outputs = [], []
    for _ in range(2):
        torch.manual_seed(0)
        hnet = make_hnet()
        disc = unc.CodeDiscriminator(6, (16,))
        h = unc.fit_hypergan(
            hnet,
            x,
            y,
            epochs=8,
            num_draws=3,
            beta=1.0,
            discriminator=disc,
            batch_size=16,
            lr=1e-2,
            seed=0,
        )
        histories.append(h)
        noise = unc.draw_noise(hnet, 4, torch.Generator().manual_seed(1))
        with torch.no_grad():
            outputs.append(unc.sample_probs(hnet, x, noise))
    h = histories[0]
    assert len(h.classification) == 8 and len(h.discriminator) == 8
    assert h.classification[-1] < h.classification[0]
    assert all(d > 0 for d in h.discriminator)
    assert torch.equal(outputs[0], outputs[1])
    assert not hnet.training


def test_adversarial_term_reaches_the_mixer_only_through_beta():
    x, y = toy_data(16)
    torch.manual_seed(0)
    hnet = make_hnet()
    before = [p.detach().clone() for p in hnet.body.parameters()]
    unc.fit_hypergan(hnet, x, y, epochs=1, num_draws=2, beta=0.0, batch_size=16, seed=0)
    # beta = 0 needs no discriminator and still trains (the mixer gets the CE gradient)
    assert any(not torch.equal(a, b) for a, b in zip(before, hnet.body.parameters(), strict=True))


def test_fit_hypergan_errors():
    x, y = toy_data(16)
    hnet = make_hnet()
    with pytest.raises(HypercoreTypeError, match="discriminator"):
        unc.fit_hypergan(hnet, x, y, epochs=1, beta=1.0)
    with pytest.raises(HypercoreError, match="discriminator"):
        unc.fit_hypergan(hnet, x, y, epochs=1, beta=1.0, discriminator=unc.CodeDiscriminator(5))
    with pytest.raises(ShapeError, match="y"):
        unc.fit_hypergan(hnet, x, y[:-1], epochs=1, beta=0.0)
    task_hnet = hc.HyperNetwork.build(nn.Linear(5, 3), hc.TaskEmbedding(2, 4))
    with pytest.raises(HypercoreTypeError, match="NoiseSource"):
        unc.fit_hypergan(task_hnet, x, y, epochs=1, beta=0.0)


def test_ensemble_loss_is_sum_of_independent_members():
    torch.manual_seed(0)
    ens = unc.Ensemble(lambda: nn.Linear(5, 3), 3)
    x, y = toy_data(12)
    assert ens.forward_sets(x).shape == (3, 12, 3)
    loss = ens.loss(x, y)
    expected = sum(nn.functional.cross_entropy(m(x), y) for m in ens.members)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    # each member's gradient is that of its own loss alone
    solo = nn.Linear(5, 3)
    solo.load_state_dict(ens.members[1].state_dict())
    nn.functional.cross_entropy(solo(x), y).backward()
    assert torch.allclose(ens.members[1].weight.grad, solo.weight.grad, atol=1e-6)
    log_mean = ens(x)
    assert torch.allclose(log_mean.exp().sum(-1), torch.ones(12), atol=1e-5)


def test_mc_dropout_samples_differ_and_modes_are_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))
    model.eval()
    probs = unc.mc_dropout_probs(model, torch.randn(4, 5), 6)
    assert probs.shape == (6, 4, 3)
    assert not torch.allclose(probs[0], probs[1])
    assert not model.training and not model[2].training
    with pytest.raises(HypercoreError, match="dropout"):
        unc.mc_dropout_probs(nn.Linear(5, 3), torch.randn(4, 5), 2)


def test_matched_hidden_width():
    # 5 x (64 -> h -> 6) has 5 * (71 h + 6) parameters; 5,984 is closest at h = 17 (6,065)
    assert unc.matched_hidden_width(64, 6, 5984, 5) == 17
    assert unc.matched_hidden_width(64, 6, 5 * (71 * 32 + 6), 5) == 32
    assert unc.matched_hidden_width(64, 6, 1, 5) == 1


def test_spread_and_disagreement():
    same = torch.ones(4, 10)
    assert unc.relative_spread(same).item() == 0.0
    independent = torch.randn(2000, 50, generator=torch.Generator().manual_seed(0))
    assert unc.relative_spread(independent).item() == pytest.approx(1.0, abs=0.05)
    sets = unc.flat_sets({"a": torch.zeros(3, 2, 2), "b": torch.ones(3, 4)})
    assert sets.shape == (3, 8)
    # 3 draws on one input: classes 0, 0, 1 -> 4 of 6 ordered pairs disagree
    probs = torch.tensor([[[0.9, 0.1]], [[0.8, 0.2]], [[0.1, 0.9]]])
    assert unc.disagreement(probs).item() == pytest.approx(4 / 6)
    assert unc.disagreement(probs[:2]).item() == 0.0
    with pytest.raises(ShapeError, match="K >= 2"):
        unc.relative_spread(torch.ones(1, 3))
