"""hypercore.apps.transfer: task codes, shots, folds, the adapters and the selection protocol."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.apps.transfer import (
    EmbeddingAdapter,
    LinearProbe,
    MultiHeadNet,
    adapt,
    num_trainable,
    pretrain_multitask,
    relabel,
    sample_shots,
    select_and_adapt,
    stratified_folds,
    subset_codes,
)
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def test_subset_codes_count_balance_and_no_complements():
    codes = subset_codes(10, 5)
    assert codes.shape == (math.comb(10, 5) // 2, 10) == (126, 10)
    assert (codes.sum(1) == 5).all() and (codes[:, 0] == 0).all()
    as_sets = {tuple(c.tolist()) for c in codes}
    assert len(as_sets) == 126
    assert not any(tuple((1 - c).tolist()) in as_sets for c in codes)
    # unbalanced subsets have no complement in the family: all of them are kept
    assert subset_codes(4, 1).tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


def test_subset_codes_errors():
    with pytest.raises(HypercoreError, match="positives"):
        subset_codes(4, 4)
    with pytest.raises(HypercoreError, match="num_classes"):
        subset_codes(1, 1)


def test_relabel_one_and_many_tasks():
    y = torch.tensor([0, 2, 1, 2])
    assert relabel(y, torch.tensor([1, 0, 1])).tolist() == [1, 1, 0, 1]
    both = relabel(y, torch.tensor([[1, 0, 1], [0, 0, 1]]))
    assert both.shape == (2, 4) and both[1].tolist() == [0, 1, 0, 1]
    with pytest.raises(HypercoreError, match="class labels in 0..1"):
        relabel(y, torch.tensor([0, 1]))
    with pytest.raises(HypercoreTypeError, match="integer tensor"):
        relabel(y.float(), torch.tensor([0, 1, 1]))
    with pytest.raises(ShapeError, match=r"code: expected shape \(C,\) or \(T, C\)"):
        relabel(y, torch.zeros(1, 1, 3, dtype=torch.long))


def test_sample_shots_per_class_and_deterministic():
    y = torch.arange(30) % 3
    idx = sample_shots(y, 4, torch.Generator().manual_seed(0))
    assert idx.shape == (12,) and len(set(idx.tolist())) == 12
    assert torch.bincount(y[idx]).tolist() == [4, 4, 4]
    again = sample_shots(y, 4, torch.Generator().manual_seed(0))
    assert torch.equal(idx, again)
    with pytest.raises(HypercoreError, match="fewer than shots=11"):
        sample_shots(y, 11, torch.Generator())


def test_stratified_folds_partition_and_balance():
    y = torch.tensor([0] * 5 + [1] * 5)
    folds = stratified_folds(y, 2, torch.Generator().manual_seed(1))
    together = torch.cat(folds).sort().values
    assert torch.equal(together, torch.arange(10))
    assert sorted(len(f) for f in folds) == [5, 5]
    for f in folds:
        counts = torch.bincount(y[f], minlength=2)
        assert counts.min() >= 2  # each label spread over both folds
    with pytest.raises(HypercoreError, match="at most len"):
        stratified_folds(torch.tensor([0]), 2, torch.Generator())


def test_multihead_net_matches_a_loop_over_heads():
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
    net = MultiHeadNet(trunk, 6, num_tasks=3, num_classes=2)
    x = torch.randn(5, 4)
    out = net(x)
    assert out.shape == (3, 5, 2)
    h = trunk(x)
    for t in range(3):
        torch.testing.assert_close(out[t], h @ net.weight[t].T + net.bias[t])
    assert num_trainable(net) == 4 * 6 + 6 + 3 * (2 * 6 + 2)
    with pytest.raises(ShapeError, match=r"trunk: expected features of shape \(B, 7\)"):
        MultiHeadNet(trunk, 7, 3, 2)(x)


def test_linear_probe_freezes_features_and_counts_head_only():
    features = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
    probe = LinearProbe(features, 6, 2)
    assert num_trainable(probe) == 6 * 2 + 2
    before = [p.clone() for p in features.parameters()]
    adapt(probe, torch.randn(8, 4), torch.randint(0, 2, (8,)), lr=0.1, steps=5)
    for a, b in zip(before, features.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(HypercoreTypeError, match="features"):
        LinearProbe("not a module", 6, 2)  # type: ignore[arg-type]


def _hnet(generated: str | list[str] = "*") -> hc.HyperNetwork:
    torch.manual_seed(0)
    return hc.HyperNetwork.build(mlp(), hc.TaskEmbedding(3, 5), body_hidden=(), include=generated)


def test_embedding_adapter_equals_the_hypernetwork_at_a_source_embedding():
    hnet = _hnet()
    x = torch.randn(7, 4)
    adapter = EmbeddingAdapter(hnet, hnet.conditioner.weight[1])
    torch.testing.assert_close(adapter(x), hnet(x, 1))
    assert num_trainable(adapter) == 5
    assert all(not p.requires_grad for p in hnet.parameters())


def test_embedding_adapter_trains_only_the_embedding():
    hnet = _hnet(["2.*"])  # last layer generated, first layer shared (frozen too)
    frozen = {k: v.clone() for k, v in hnet.state_dict().items()}
    adapter = EmbeddingAdapter(hnet, torch.zeros(5))
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    loss0 = nn.functional.cross_entropy(adapter(x), y).item()
    adapt(adapter, x, y, lr=0.1, steps=20)
    assert nn.functional.cross_entropy(adapter(x), y).item() < loss0
    assert adapter.embedding.abs().sum() > 0
    for k, v in hnet.state_dict().items():
        assert torch.equal(frozen[k], v), k


def test_embedding_adapter_errors():
    with pytest.raises(
        ShapeError, match=r"init: expected an embedding of shape \(5,\), got \(4,\)"
    ):
        EmbeddingAdapter(_hnet(), torch.zeros(4))
    with pytest.raises(HypercoreTypeError, match="hnet"):
        EmbeddingAdapter(mlp(), torch.zeros(5))  # type: ignore[arg-type]


def test_adapt_checkpoints_and_errors():
    torch.manual_seed(0)
    model = mlp()
    x, y = torch.randn(20, 4), torch.randint(0, 2, (20,))
    marks = adapt(model, x, y, lr=0.05, steps=30, x_val=x, y_val=y, checkpoints=[0, 10, 30])
    assert [m[0] for m in marks] == [0, 10, 30]
    assert marks[-1][2] < marks[0][2]  # the training loss (here also the validation loss) fell
    assert adapt(model, x, y, lr=0.05, steps=0) == []
    with pytest.raises(HypercoreError, match="checkpoints"):
        adapt(model, x, y, lr=0.1, steps=5, x_val=x, y_val=y, checkpoints=[6])
    with pytest.raises(HypercoreError, match="both or neither"):
        adapt(model, x, y, lr=0.1, steps=5, x_val=x)
    with pytest.raises(ShapeError, match="one label per example"):
        adapt(model, x, y[:3], lr=0.1, steps=5)
    with pytest.raises(HypercoreError, match="no trainable parameters"):
        adapt(model.requires_grad_(False), x, y, lr=0.1, steps=1)


def test_select_and_adapt_is_deterministic_and_picks_from_the_grid():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 4, generator=g)
    y = (x[:, 0] > 0).long()
    runs = [
        select_and_adapt(mlp, x, y, lrs=[1e-4, 3e-2], steps=[5, 40], folds=2, seed=3)
        for _ in range(2)
    ]
    (m1, s1), (m2, s2) = runs
    assert s1 == s2 and s1.lr in (1e-4, 3e-2) and s1.steps in (5, 40)
    assert s1.lr == 3e-2  # a learning rate of 1e-4 barely moves in 40 steps
    for a, b in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(HypercoreError, match="non-empty grids"):
        select_and_adapt(mlp, x, y, lrs=[], steps=[5])


def test_pretrain_multitask_fits_two_tasks_with_a_hypernetwork():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()  # 4 classes
    codes = torch.tensor([[0, 1, 0, 1], [0, 0, 1, 1]])  # "x0 > 0" and "x1 > 0"
    torch.manual_seed(0)
    hnet = hc.HyperNetwork.build(mlp(), hc.TaskEmbedding(2, 4), body_hidden=(16,))
    ids = torch.arange(2)
    losses = pretrain_multitask(
        hnet, lambda xb: hnet.forward_sets(xb, ids), x, y, codes, steps=150, lr=1e-2, seed=0
    )
    assert len(losses) == 150 and losses[-1] < 0.5 * losses[0]
    acc = (hnet.forward_sets(x, ids).argmax(-1) == relabel(y, codes)).float().mean()
    assert acc > 0.9
    with pytest.raises(ShapeError, match=r"forward: expected logits of shape \(T=2"):
        pretrain_multitask(hnet, lambda xb: hnet(xb, 0), x, y, codes, steps=1)
