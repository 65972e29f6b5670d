"""Few-shot pieces: episodes, the support-set transformer, the prototype baseline."""

import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.baselines import prototype_classifier
from hypercore.bodies import SupportSetTransformer
from hypercore.data import sample_episodes


def test_episodes_have_the_asked_shapes_and_disjoint_support_and_query():
    x = torch.arange(60.0).unsqueeze(1)
    y = torch.arange(60) % 6
    ep = sample_episodes(
        x,
        y,
        [0, 1, 2, 3],
        n_way=3,
        k_shot=2,
        n_query=4,
        num_episodes=5,
        generator=torch.Generator().manual_seed(0),
    )
    assert ep.support_x.shape == (5, 6, 1) and ep.query_x.shape == (5, 12, 1)
    assert ep.support_y[0].tolist() == [0, 0, 1, 1, 2, 2]
    for e in range(5):
        assert set(ep.classes[e].tolist()) <= {0, 1, 2, 3}
        support, query = set(ep.support_x[e, :, 0].tolist()), set(ep.query_x[e, :, 0].tolist())
        assert not support & query
        for label in range(3):  # every sample of label n comes from class classes[e, n]
            cls = int(ep.classes[e, label])
            assert all(int(v) % 6 == cls for v in ep.support_x[e][ep.support_y[e] == label, 0])


def test_episodes_refuse_too_few_samples():
    with pytest.raises(ValueError, match="fewer than k_shot"):
        sample_episodes(torch.zeros(6, 1), torch.tensor([0, 0, 0, 1, 1, 1]), [0, 1], 2, 2, 2, 1)
    with pytest.raises(ValueError, match="only 2 classes"):
        sample_episodes(torch.zeros(6, 1), torch.tensor([0, 0, 0, 1, 1, 1]), [0, 1], 3, 1, 1, 1)


def test_prototype_classifier_is_nearest_prototype():
    feats, labels = torch.randn(2, 9, 4), torch.arange(3).repeat_interleave(3).expand(2, -1)
    w = prototype_classifier(feats, labels, 3)
    queries = torch.randn(2, 7, 4)
    logits = hc.Target(nn.Linear(4, 3))(queries, w)
    prototypes = torch.stack([feats[:, labels[0] == n].mean(1) for n in range(3)], 1)
    nearest = torch.cdist(queries, prototypes).argmin(-1)
    assert torch.equal(logits.argmax(-1), nearest)


def test_support_set_transformer_shapes_order_invariance_and_gradients():
    gen = SupportSetTransformer(feature_dim=5, num_classes=3, d_model=16, num_heads=2, num_layers=1)
    feats = torch.randn(4, 6, 5)
    labels = torch.tensor([0, 0, 1, 1, 2, 2]).expand(4, -1)
    w = gen(feats, labels)
    assert w["weight"].shape == (4, 3, 5) and w["bias"].shape == (4, 3)
    perm = torch.randperm(6)
    w2 = gen(feats[:, perm], labels[:, perm])
    torch.testing.assert_close(w["weight"], w2["weight"], atol=1e-5, rtol=1e-5)
    logits = hc.Target(nn.Linear(5, 3))(torch.randn(4, 10, 5), w)
    logits.sum().backward()
    assert all(p.grad is not None for p in gen.parameters())


def test_support_set_transformer_errors_name_the_argument():
    gen = SupportSetTransformer(feature_dim=5, num_classes=3, d_model=16, num_heads=2, num_layers=1)
    with pytest.raises(hc.ShapeError, match=r"features: expected shape \(E, S, 5\)"):
        gen(torch.randn(6, 5), torch.zeros(6, dtype=torch.long))
    with pytest.raises(hc.ShapeError, match="labels: expected values in 0..2"):
        gen(torch.randn(1, 2, 5), torch.tensor([[0, 3]]))
