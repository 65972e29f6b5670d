"""HyperNetwork = conditioner -> body -> head: shapes, gradients, sizes, init, errors."""

import pytest
import torch
from conftest import make_convnet, make_mlp, per_sample_loop
from torch import nn

import hypercore as hc
from hypercore import HyperNetwork, MLPBody, OnceHead, Target, TaskEmbedding

HEAD_OPTIONS = {
    "once": {},
    "multiple": {},
    "component": {"embedding_dim": 4, "hidden": 8},
    "chunk": {"chunk_size": 16, "embedding_dim": 4, "hidden": 8},
}


def build(head="once", module=None, conditioner=None, **kw):
    return HyperNetwork.build(
        module or make_mlp(),
        conditioner or TaskEmbedding(3, 5),
        head=head,
        body_hidden=(12,),
        **HEAD_OPTIONS[head],
        **kw,
    )


@pytest.mark.parametrize("head", list(HEAD_OPTIONS))
def test_shared_and_per_sample_shapes(head):
    hnet = build(head)
    w = hnet.generate(1)
    assert {n: tuple(t.shape) for n, t in w.items()} == hnet.target.shapes
    w = hnet.generate(torch.tensor([0, 2, 1, 1]))
    assert {n: tuple(t.shape[1:]) for n, t in w.items()} == hnet.target.shapes
    assert all(t.shape[0] == 4 for t in w.values())
    x = torch.randn(4, 6)
    assert hnet(x, 2).shape == (4, 3)
    assert hnet(x, torch.tensor([0, 2, 1, 1])).shape == (4, 3)


@pytest.mark.parametrize("head", list(HEAD_OPTIONS))
def test_gradients_reach_every_hypernetwork_parameter(head):
    hnet = build(head)
    x = torch.randn(5, 6)
    hnet(x, torch.tensor([0, 1, 2, 0, 1])).pow(2).sum().backward()
    for name, p in hnet.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_per_task_batch_equals_one_task_at_a_time():
    hnet = build("chunk")
    x, tasks = torch.randn(6, 6), torch.tensor([0, 1, 2, 2, 1, 0])
    together = hnet(x, tasks)
    alone = torch.cat([hnet(x[i : i + 1], int(tasks[i])) for i in range(6)])
    torch.testing.assert_close(together, alone)


def test_data_conditioned_weights_are_per_sample():
    mlp = make_mlp()
    hnet = HyperNetwork.build(mlp, hc.DataEncoder(6, 4, hidden=(8,)), head="once", body_hidden=(8,))
    x = torch.randn(5, 6)
    w = hnet.generate(x)
    assert w["0.weight"].shape == (5, 8, 6)
    torch.testing.assert_close(hnet(x), per_sample_loop(hnet.target, x, w))


def test_noise_conditioned_draws_differ_and_are_reproducible():
    hnet = build("once", conditioner=hc.NoiseSource(5))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = hnet.target(torch.randn(2, 6), hnet.generate(hnet.conditioner.sample(None, g1)))
    w1 = hnet.generate(hnet.conditioner.sample(3, g2))
    assert w1["0.weight"].shape == (3, 8, 6)
    assert not torch.allclose(w1["0.weight"][0], w1["0.weight"][1])
    assert a.shape == (2, 3)


def test_chunk_wise_hypernetwork_can_be_smaller_than_its_target():
    target_module = make_mlp((64, 64, 10))
    hnet = HyperNetwork.build(
        target_module,
        TaskEmbedding(1, 4),
        head="chunk",
        body_hidden=(8,),
        chunk_size=64,
        embedding_dim=4,
        hidden=8,
    )
    counts = hnet.parameter_counts()
    assert counts["total trainable"] < counts["generated per weight set"]
    assert hnet(torch.randn(2, 64), 0).shape == (2, 10)


def test_parameter_counts_exclude_the_frozen_templates():
    mlp = make_mlp()
    hnet = build("once", module=mlp, include="*.weight")
    counts = hnet.parameter_counts()
    assert counts["target (not generated)"] == 8 + 3  # the biases stay trainable
    assert counts["generated per weight set"] == 8 * 6 + 3 * 8


def test_convnet_target_with_component_head():
    hnet = build("component", module=make_convnet())
    assert hnet(torch.randn(2, 3, 6, 6), torch.tensor([0, 2])).shape == (2, 5)


# -- initialisation -------------------------------------------------------------------


@torch.no_grad()
@pytest.mark.parametrize("head", list(HEAD_OPTIONS))
def test_hyperfan_in_matches_the_kaiming_variance_within_a_factor_of_two(head):
    module = make_mlp((64, 64, 32))
    hnet = HyperNetwork.build(
        module,
        TaskEmbedding(50, 8),
        head=head,
        body_hidden=(32,),
        include="*.weight",
        init="hyperfan_in",
        **HEAD_OPTIONS[head],
    )
    weights = hnet.generate(torch.arange(50))
    for info in hnet.target.spec:
        kaiming = 2.0 / info.fan_in
        ratio = float(weights[info.name].var()) / kaiming
        assert 0.5 < ratio < 2.0, (info.name, ratio)


@torch.no_grad()
def test_hyperfan_in_splits_the_variance_with_generated_biases():
    hnet = HyperNetwork.build(make_mlp((64, 64, 32)), TaskEmbedding(50, 8), body_hidden=(32,))
    w = hnet.generate(torch.arange(50))
    var_w, var_b = float(w["0.weight"].var()), float(w["0.bias"].var())
    # fan_in * Var(W) + Var(b) = gain^2 = 2 (Chang et al., 2020)
    assert 1.4 < 64 * var_w + var_b < 2.8


@torch.no_grad()
def test_hyperfan_out_uses_the_fan_out():
    hnet = HyperNetwork.build(
        make_mlp((64, 64, 16)),
        TaskEmbedding(50, 8),
        body_hidden=(32,),
        include="*.weight",
        init="hyperfan_out",
    )
    w = hnet.generate(torch.arange(50))
    assert 0.5 < float(w["2.weight"].var()) / (2.0 / 16) < 2.0


@torch.no_grad()
def test_default_init_ignores_the_targets_fan_in():
    # PyTorch's own init of the head gives the same scale whatever the target's
    # fan-in: far too large for a layer with 1024 inputs (Chang et al.'s point).
    hnet = HyperNetwork.build(
        make_mlp((1024, 16, 4)),
        TaskEmbedding(50, 8),
        body_hidden=(16,),
        include="*.weight",
        init="default",
    )
    ratio = float(hnet.generate(torch.arange(50))["0.weight"].var()) / (2.0 / 1024)
    assert ratio > 5.0


@torch.no_grad()
@pytest.mark.parametrize("head", list(HEAD_OPTIONS))
def test_bias_hyperinit_starts_at_the_targets_own_init(head):
    module = make_mlp((16, 16, 4))
    template = {n: p.detach().clone() for n, p in module.named_parameters()}
    hnet = HyperNetwork.build(
        module,
        TaskEmbedding(4, 8),
        head=head,
        body_hidden=(16,),
        init="bias_hyperinit",
        **HEAD_OPTIONS[head],
    )
    for task in range(4):
        for name, w in hnet.generate(task).items():
            spread = float((w - template[name]).std())
            assert spread < 0.35 * float(template[name].std()) + 1e-3, (name, spread)


def test_unknown_init_is_named():
    with pytest.raises(hc.HypercoreError, match="init: expected one of"):
        build("once", init="xavier")


# -- errors -------------------------------------------------------------------------


def test_unknown_task_id_is_named():
    hnet = build("once")
    with pytest.raises(hc.UnknownTaskError, match=r"task id 3 is out of range.*num_tasks=3"):
        hnet(torch.randn(2, 6), 3)
    with pytest.raises(hc.UnknownTaskError, match="task id -1"):
        hnet(torch.randn(2, 6), torch.tensor([0, -1]))


def test_task_id_must_be_an_integer():
    hnet = build("once")
    with pytest.raises(hc.DtypeDeviceError, match="integer tensor"):
        hnet(torch.randn(2, 6), torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="task: expected an int"):
        hnet(torch.randn(2, 6), "task 1")


def test_wrong_input_shape_to_a_data_encoder_is_named():
    hnet = HyperNetwork.build(make_mlp(), hc.DataEncoder(6, 4), body_hidden=(8,))
    with pytest.raises(hc.ShapeError, match=r"6 features per sample, got \(5, 7\)"):
        hnet(torch.randn(5, 7))


def test_mismatched_parts_are_named():
    target = Target(make_mlp())
    cond = TaskEmbedding(2, 4)
    with pytest.raises(hc.HypercoreError, match="body: expects 5 input features"):
        HyperNetwork(target, cond, MLPBody(5, (8,)), OnceHead(8, target.spec))
    with pytest.raises(hc.HypercoreError, match="head: expects 9 input features"):
        HyperNetwork(target, cond, MLPBody(4, (8,)), OnceHead(9, target.spec))
    other = Target(make_mlp((6, 9, 3)))
    with pytest.raises(hc.HypercoreError, match="head: built for"):
        HyperNetwork(target, cond, MLPBody(4, (8,)), OnceHead(8, other.spec))


def test_unknown_head_name_is_named():
    with pytest.raises(hc.HypercoreError, match="head: expected one of"):
        HyperNetwork.build(make_mlp(), TaskEmbedding(2, 4), head="lora")


def test_wrong_dtype_of_generated_weights_is_named():
    hnet = build("once")
    hnet.head.double()
    hnet.body.double()
    hnet.conditioner.double()
    with pytest.raises(hc.DtypeDeviceError, match="float32, got torch.float64"):
        hnet(torch.randn(2, 6), 0)


def test_target_must_wrap_a_module():
    with pytest.raises(TypeError, match="module: expected an nn.Module"):
        Target(lambda x: x)
    with pytest.raises(TypeError, match="target: expected a hypercore.Target"):
        HyperNetwork(nn.Linear(2, 2), TaskEmbedding(1, 2), MLPBody(2), None)


def test_grouped_forward_equals_per_sample_weights():
    hnet = build("once")
    x, tasks = torch.randn(9, 6), torch.tensor([2, 0, 2, 1, 0, 0, 2, 1, 1])
    grouped = hnet(x, tasks)  # few distinct tasks: one dense call per task
    per_sample = hnet.target(x, hnet.generate(tasks))  # gathered per-sample weights
    torch.testing.assert_close(grouped, per_sample)
    grouped.sum().backward()
    assert hnet.conditioner.weight.grad.abs().sum() > 0
