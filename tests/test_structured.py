"""Structured weights (row scaling, low rank) and the heads that generate them."""

import pytest
import torch
from conftest import make_convnet, make_mlp
from torch import nn

import hypercore as hc
from hypercore import LowRank, RowScaled, ShapeError, Target
from hypercore.errors import DtypeDeviceError


def structured(kind, shape, batch=None):
    lead = () if batch is None else (batch,)
    base = torch.randn(shape)
    if kind == "scaled":
        return RowScaled(base, torch.randn(*lead, shape[0]))
    in_flat = int(torch.tensor(shape[1:]).prod())
    return LowRank(base, torch.randn(*lead, shape[0], 2), torch.randn(*lead, in_flat, 2))


def as_dense(weights):
    return {
        n: w.dense() if isinstance(w, hc.target.StructuredWeight) else w for n, w in weights.items()
    }


@pytest.mark.parametrize("kind", ["scaled", "lowrank"])
def test_dense_matches_the_definition(kind):
    w = structured(kind, (4, 3), batch=2)
    if kind == "scaled":
        expected = torch.stack([torch.diag(w.scale[b]) @ w.base for b in range(2)])
    else:
        expected = torch.stack([w.base + w.u[b] @ w.v[b].T for b in range(2)])
    torch.testing.assert_close(w.dense(), expected)
    torch.testing.assert_close(w.select(1).dense(), expected[1])


@pytest.mark.parametrize("kind", ["scaled", "lowrank"])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("x_shape", [(5, 6), (5, 7, 6)], ids=["(B,in)", "(B,T,in)"])
def test_linear_applies_structured_weights_like_their_dense_form(kind, batched, x_shape):
    target = Target(make_mlp((6, 8, 3)))
    weights = {
        "0.weight": structured(kind, (8, 6), 5 if batched else None),
        "0.bias": torch.randn(5, 8),
        "2.weight": structured(kind, (3, 8), 5 if batched else None),
        "2.bias": torch.randn(3),
    }
    x = torch.randn(*x_shape)
    torch.testing.assert_close(target(x, weights), target(x, as_dense(weights)))


@pytest.mark.parametrize("kind", ["scaled", "lowrank"])
def test_conv_applies_structured_weights_like_their_dense_form(kind):
    net = make_convnet()
    target = Target(net, module_types=nn.Conv2d)
    weights = {n: torch.randn(4, *s) for n, s in target.shapes.items()}
    weights["0.weight"] = structured(kind, target.shapes["0.weight"], batch=4)
    weights["2.weight"] = structured(kind, target.shapes["2.weight"], batch=4)
    x = torch.randn(4, 3, 6, 6)
    torch.testing.assert_close(target(x, weights), target(x, as_dense(weights)))


def test_modules_without_fast_path_get_dense_structured_weights():
    class MyLinear(nn.Linear):  # a subclass: no fast path, so vmap
        pass

    target = Target(nn.Sequential(MyLinear(6, 4)))
    w = {"0.weight": structured("lowrank", (4, 6), batch=3), "0.bias": torch.randn(3, 4)}
    x = torch.randn(3, 6)
    torch.testing.assert_close(target(x, w), target(x, as_dense(w)))


def test_structured_errors_name_the_factor():
    target = Target(nn.Linear(6, 4))
    bad_base = RowScaled(torch.randn(6, 4), torch.randn(4))
    with pytest.raises(ShapeError, match=r"weights\['weight'\].base: expected shape \(4, 6\)"):
        target(torch.randn(2, 6), {"weight": bad_base, "bias": torch.zeros(4)})
    bad_scale = RowScaled(torch.randn(4, 6), torch.randn(2, 5))
    with pytest.raises(ShapeError, match=r"weights\['weight'\].scale: expected shape \(4,\)"):
        target(torch.randn(2, 6), {"weight": bad_scale, "bias": torch.zeros(4)})
    mixed = LowRank(torch.randn(4, 6), torch.randn(2, 4, 1), torch.randn(6, 1))
    with pytest.raises(ShapeError, match="factors disagree"):
        target(torch.randn(2, 6), {"weight": mixed, "bias": torch.zeros(4)})
    wrong_batch = RowScaled(torch.randn(4, 6), torch.randn(3, 4))
    with pytest.raises(ShapeError, match="for 3 samples but the input batch has 2"):
        target(torch.randn(2, 6), {"weight": wrong_batch, "bias": torch.zeros(4)})
    wrong_dtype = RowScaled(torch.randn(4, 6), torch.randn(4, dtype=torch.float64))
    with pytest.raises(DtypeDeviceError, match=r"scale: expected dtype torch.float32"):
        target(torch.randn(2, 6), {"weight": wrong_dtype, "bias": torch.zeros(4)})


@pytest.mark.parametrize("head,options", [("scaling", {}), ("lowrank", {"rank": 2})])
def test_structured_heads_start_at_the_targets_init_and_learn(head, options):
    module = make_mlp((6, 8, 3))
    template = {n: p.detach().clone() for n, p in module.named_parameters()}
    hnet = hc.HyperNetwork.build(
        module, hc.TaskEmbedding(3, 4), head=head, body_hidden=(8,), **options
    )
    with torch.no_grad():
        w = {
            n: v.dense() if hasattr(v, "dense") else v
            for n, v in hnet.generate(torch.arange(3)).items()
        }
    for name in ("0.weight", "2.weight"):
        dense = w[name]
        assert dense.shape == (3, *template[name].shape)
        spread = float((dense - template[name]).std())
        assert spread < 0.3 * float(template[name].std()), (name, spread)
    x = torch.randn(4, 6)
    hnet(x, torch.tensor([0, 1, 2, 0])).pow(2).sum().backward()
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0 for p in hnet.parameters() if p.requires_grad
    )


def test_scaling_head_generates_far_fewer_numbers_than_the_target():
    hnet = hc.HyperNetwork.build(make_mlp((64, 64, 10)), hc.TaskEmbedding(2, 4), head="scaling")
    assert hnet.head.numbers_per_condition == 64 + 64 + 10 + 10
    assert hnet.target.num_generated == 64 * 64 + 64 + 10 * 64 + 10


def test_low_rank_head_rejects_a_bad_rank():
    with pytest.raises(ValueError, match="rank: expected an int >= 1"):
        hc.HyperNetwork.build(make_mlp(), hc.TaskEmbedding(2, 4), head="lowrank", rank=0)


def test_structured_heads_drive_a_convnet_per_sample():
    hnet = hc.HyperNetwork.build(make_convnet(), hc.DataEncoder(3 * 36, 4), head="scaling")
    x = torch.randn(3, 3, 6, 6)
    assert hnet(x).shape == (3, 5)
