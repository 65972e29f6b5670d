"""hypercore.apps.few_shot: HyperShot's kernel hypernetwork, the baselines, data and metrics."""

import math

import pytest
import torch
from torch import nn

from hypercore.apps.few_shot import (
    EpisodeSampler,
    KernelHyperClassifier,
    class_means,
    cosine_kernel,
    episode_accuracy,
    episode_interval,
    fit_linear_head,
    make_class_family,
    meta_train,
    pretrain_classifier,
    prototype_logits,
)
from hypercore.baselines import prototype_classifier
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def test_class_family_is_deterministic_grouped_and_standardised():
    x, y = make_class_family(30, 4, seed=3)
    again, _ = make_class_family(30, 4, seed=3)
    other, _ = make_class_family(30, 4, seed=4)
    assert x.shape == (120, 64) and x.dtype == torch.float32
    assert y.tolist() == [c for c in range(30) for _ in range(4)]
    assert torch.equal(x, again) and not torch.allclose(x, other)
    assert torch.allclose(x.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(x.std(0), torch.ones(64), atol=1e-4)


def test_class_family_without_nuisance_or_noise_is_easier_for_raw_prototypes():
    def raw_accuracy(**kw):
        x, y = make_class_family(40, 10, seed=0, **kw)
        ep = EpisodeSampler(x, y, range(40)).sample(5, 1, 5, 200, torch.Generator().manual_seed(0))
        logits = prototype_logits(ep.support_x, ep.support_y, ep.query_x, 5)
        return float(episode_accuracy(logits, ep.query_y).mean())

    assert raw_accuracy(nuisance=0.0, noise=0.0) > raw_accuracy() + 0.2


def test_class_family_refuses_bad_arguments():
    with pytest.raises(HypercoreError, match="num_classes"):
        make_class_family(0, 3)
    with pytest.raises(HypercoreError, match="within"):
        make_class_family(3, 3, within=-1.0)


def test_sampler_draws_disjoint_support_and_query_from_the_right_classes():
    x = torch.arange(60.0).unsqueeze(1)
    y = torch.arange(60) % 6
    ep = EpisodeSampler(x, y, [0, 1, 2, 3]).sample(3, 2, 4, 5, torch.Generator().manual_seed(0))
    assert ep.support_x.shape == (5, 6, 1) and ep.query_x.shape == (5, 12, 1)
    assert ep.support_y[0].tolist() == [0, 0, 1, 1, 2, 2]
    assert ep.query_y[0].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    for e in range(5):
        assert set(ep.classes[e].tolist()) <= {0, 1, 2, 3}
        assert len(set(ep.classes[e].tolist())) == 3
        support, query = set(ep.support_x[e, :, 0].tolist()), set(ep.query_x[e, :, 0].tolist())
        assert not support & query
        for label in range(3):
            cls = int(ep.classes[e, label])
            assert all(int(v) % 6 == cls for v in ep.support_x[e][ep.support_y[e] == label, 0])
            assert all(int(v) % 6 == cls for v in ep.query_x[e][ep.query_y[e] == label, 0])


def test_sampler_is_deterministic_given_the_generator():
    x, y = make_class_family(10, 6, seed=0)
    sampler = EpisodeSampler(x, y, range(10))
    a = sampler.sample(4, 1, 2, 3, torch.Generator().manual_seed(7))
    b = sampler.sample(4, 1, 2, 3, torch.Generator().manual_seed(7))
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.classes, b.classes)


def test_sampler_refuses_impossible_episodes():
    x, y = torch.zeros(12, 2), torch.arange(12) % 3
    sampler = EpisodeSampler(x, y, [0, 1, 2])
    with pytest.raises(HypercoreError, match="n_way"):
        sampler.sample(4, 1, 1, 1)
    with pytest.raises(HypercoreError, match="k_shot \\+ n_query"):
        sampler.sample(2, 3, 2, 1)
    with pytest.raises(HypercoreError, match="no sample of class 5"):
        EpisodeSampler(x, y, [0, 5])
    with pytest.raises(ShapeError, match="x, y"):
        EpisodeSampler(x, y[:5], [0])


def test_class_means_and_prototype_logits_by_hand():
    support = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]]])
    labels = torch.tensor([[0, 0, 1]])
    means = class_means(support, labels, 2)
    assert torch.equal(means, torch.tensor([[[1.0, 0.0], [0.0, 4.0]]]))
    query = torch.tensor([[[1.0, 1.0]]])
    logits = prototype_logits(support, labels, query, 2)
    assert torch.allclose(logits, torch.tensor([[[-1.0, -10.0]]]))
    # the same ranking as hypercore's closed-form prototype layer
    layer = prototype_classifier(support, labels, 2)
    linear = query @ layer["weight"].transpose(1, 2) + layer["bias"][:, None]
    assert torch.equal(linear.argmax(-1), logits.argmax(-1))


def test_cosine_kernel_by_hand_and_errors():
    a = torch.tensor([[[1.0, 0.0], [3.0, 4.0]]])
    b = torch.tensor([[[0.0, 2.0], [-1.0, 0.0]]])
    k = cosine_kernel(a, b)
    assert torch.allclose(k, torch.tensor([[[0.0, -1.0], [0.8, -0.6]]]))
    assert torch.isfinite(cosine_kernel(torch.zeros(1, 1, 2), b)).all()
    with pytest.raises(ShapeError, match="a, b"):
        cosine_kernel(a, torch.zeros(1, 2, 3))


def test_episode_checks_name_the_argument():
    with pytest.raises(ShapeError, match="labels"):
        class_means(torch.zeros(2, 3, 4), torch.zeros(2, 2, dtype=torch.long), 2)
    with pytest.raises(HypercoreError, match="labels: expected values in 0..1"):
        class_means(torch.zeros(1, 2, 4), torch.tensor([[0, 2]]), 2)
    with pytest.raises(HypercoreTypeError, match="features"):
        class_means([[0.0]], torch.zeros(1, 1, dtype=torch.long), 1)
    with pytest.raises(ShapeError, match="query"):
        prototype_logits(torch.zeros(1, 2, 4), torch.tensor([[0, 1]]), torch.zeros(1, 3, 5), 2)


def _episode(episodes=3, n_way=4, k_shot=2, queries=5, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    support = torch.randn(episodes, n_way * k_shot, dim, generator=g)
    labels = torch.arange(n_way).repeat_interleave(k_shot).expand(episodes, -1).clone()
    query = torch.randn(episodes, queries, dim, generator=g)
    return support, labels, query


def test_kernel_hypernetwork_shapes_gradients_and_one_classifier_per_episode():
    torch.manual_seed(0)
    head = KernelHyperClassifier(4, target_hidden=(8,), encoder_hidden=(16,), embedding_dim=8)
    support, labels, query = _episode()
    support.requires_grad_(True)
    logits = head(support, labels, query)
    assert logits.shape == (3, 5, 4)
    weights = head.generate(support, labels)
    assert weights["0.weight"].shape == (3, 8, 4) and weights["2.weight"].shape == (3, 4, 8)
    logits.sum().backward()
    assert support.grad is not None and support.grad.abs().sum() > 0
    assert all(p.grad is not None for p in head.parameters() if p.requires_grad)
    # episode 0 alone gives the same logits: weights are written per episode
    alone = head(support[:1].detach(), labels[:1], query[:1])
    assert torch.allclose(alone, logits[:1].detach(), atol=1e-6)


def test_kernel_hypernetwork_sees_only_relations():
    """Rotating and scaling every feature leaves cosine kernels, hence logits, unchanged."""
    torch.manual_seed(0)
    head = KernelHyperClassifier(4, target_hidden=())
    support, labels, query = _episode()
    rotation, _ = torch.linalg.qr(torch.randn(6, 6))
    moved = head(3.0 * support @ rotation, labels, 3.0 * query @ rotation)
    assert torch.allclose(moved, head(support, labels, query), atol=1e-5)


def test_kernel_hypernetwork_refuses_bad_input():
    head = KernelHyperClassifier(3)
    support, labels, query = _episode(n_way=3)
    with pytest.raises(ShapeError, match="query"):
        head(support, labels, query[..., :4])
    with pytest.raises(HypercoreError, match="target_hidden"):
        KernelHyperClassifier(3, target_hidden=8)


def test_fit_linear_head_separates_a_separable_support_set():
    support = torch.tensor([[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]]).repeat(2, 1, 1)
    labels = torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0]])
    weights = fit_linear_head(support, labels, 2, steps=50, lr=0.1)
    assert weights["weight"].shape == (2, 2, 2) and weights["bias"].shape == (2, 2)
    logits = support @ weights["weight"].transpose(1, 2) + weights["bias"][:, None]
    assert episode_accuracy(logits, labels).tolist() == [1.0, 1.0]
    assert not weights["weight"].requires_grad
    with pytest.raises(HypercoreError, match="steps"):
        fit_linear_head(support, labels, 2, steps=0)


def test_episode_accuracy_and_interval_by_hand():
    logits = torch.tensor([[[2.0, 1.0], [0.0, 1.0]], [[2.0, 1.0], [2.0, 1.0]]])
    labels = torch.tensor([[0, 1], [1, 1]])
    assert episode_accuracy(logits, labels).tolist() == [1.0, 0.0]
    mean, half = episode_interval(torch.tensor([0.0, 1.0, 0.5, 0.5]))
    assert mean == pytest.approx(0.5)
    assert half == pytest.approx(1.96 * math.sqrt(1 / 6) / 2)
    with pytest.raises(ShapeError, match="per_episode"):
        episode_interval(torch.tensor([0.5]))
    with pytest.raises(ShapeError, match="logits, labels"):
        episode_accuracy(logits, labels[:, :1])


def test_meta_train_and_pretrain_are_deterministic_and_learn():
    x, y = make_class_family(20, 8, seed=0, nuisance=0.5)
    sampler = EpisodeSampler(x, y, range(20))
    test = sampler.sample(3, 1, 3, 50, torch.Generator().manual_seed(1))

    class ProtoNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Linear(64, 16)

        def forward(self, sx, sy, qx):
            return prototype_logits(self.f(sx), sy, self.f(qx), 3)

    def evaluate(model):
        return float(
            episode_accuracy(
                model(test.support_x, test.support_y, test.query_x), test.query_y
            ).mean()
        )

    models, curves = [], []
    for _ in range(2):
        torch.manual_seed(0)
        model = ProtoNet()
        curves.append(
            meta_train(
                model,
                sampler,
                n_way=3,
                k_shot=1,
                n_query=3,
                steps=20,
                episodes_per_step=4,
                lr=1e-2,
                seed=0,
                evaluate=lambda step, m=model: evaluate(m),
                eval_every=10,
            )
        )
        models.append(model)
    assert [s for s, _ in curves[0]] == [10, 20]
    assert curves[0] == curves[1]
    assert torch.equal(models[0].f.weight, models[1].f.weight)
    assert not models[0].training

    torch.manual_seed(0)
    backbone = nn.Linear(64, 16)
    before = backbone.weight.clone()
    head, curve = pretrain_classifier(
        backbone, x, y, range(5, 15), feature_dim=16, steps=5, batch_size=16, lr=1e-2, seed=0
    )
    assert head.out_features == 10 and curve == []
    assert not torch.equal(before, backbone.weight)
    with pytest.raises(HypercoreError, match="classes"):
        pretrain_classifier(
            backbone, x, y, [], feature_dim=16, steps=1, batch_size=1, lr=1e-2, seed=0
        )
