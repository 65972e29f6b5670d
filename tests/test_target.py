"""Target: selection, functional application, shared and per-sample weights."""

import pytest
import torch
from conftest import make_convnet, make_mlp, per_sample_loop, random_weights
from torch import nn

from hypercore import ShapeError, Target, WeightsMismatchError
from hypercore.errors import DtypeDeviceError, HypercoreError


@pytest.mark.parametrize("include", ["*", "*.weight", ["0.*"]])
def test_template_weights_give_exactly_the_module_output(include):
    mlp = make_mlp()
    x = torch.randn(5, 6)
    expected = mlp(x)
    target = Target(mlp, include)
    assert torch.equal(target(x, target.template()), expected)


def test_template_weights_on_a_convnet_give_exactly_the_module_output():
    net = make_convnet()
    x = torch.randn(4, 3, 6, 6)
    expected = net(x)
    target = Target(net)
    assert torch.equal(target(x, target.template()), expected)


def test_selection_by_module_type_and_exclude():
    net = make_convnet()
    target = Target(net, module_types=nn.Conv2d, exclude="*.bias")
    assert target.names == ["0.weight", "2.weight"]
    assert target.spec.by_name["0.weight"].role == "weight"
    assert target.spec.by_name["0.weight"].fan_in == 3 * 9
    # unselected parameters stay trainable, selected ones are frozen templates
    assert net[0].bias.requires_grad and not net[0].weight.requires_grad


def test_spec_roles_fans_and_offsets():
    target = Target(make_mlp((6, 8, 3)))
    p = {i.name: i for i in target.spec}
    assert p["0.weight"].shape == (8, 6) and p["0.weight"].fan_in == 6
    assert p["0.weight"].fan_out == 8 and p["0.weight"].layer_has_bias
    assert p["0.bias"].role == "bias" and p["0.bias"].fan_in == 6
    assert p["2.weight"].offset == 8 * 6 + 8
    assert target.num_generated == 8 * 6 + 8 + 3 * 8 + 3


def test_nothing_selected_lists_the_parameter_names():
    with pytest.raises(HypercoreError, match=r"0\.weight"):
        Target(make_mlp(), "*.gamma")


def test_per_sample_linear_equals_a_loop():
    target = Target(make_mlp())
    x = torch.randn(7, 6)
    w = random_weights(target, batch=7)
    torch.testing.assert_close(target(x, w), per_sample_loop(target, x, w))


def test_per_sample_linear_with_token_dimension():
    target = Target(nn.Linear(4, 3))
    x = torch.randn(5, 9, 4)  # (B, T, in)
    w = random_weights(target, batch=5)
    torch.testing.assert_close(target(x, w), per_sample_loop(target, x, w))


def test_per_sample_conv_equals_a_loop():
    target = Target(make_convnet())
    x = torch.randn(6, 3, 6, 6)
    w = random_weights(target, batch=6)
    torch.testing.assert_close(target(x, w), per_sample_loop(target, x, w))


def test_mixed_shared_and_per_sample_weights():
    target = Target(make_mlp())
    x = torch.randn(4, 6)
    w = random_weights(target, batch=4)
    w["2.weight"] = w["2.weight"][0]  # shared by the batch
    w["0.bias"] = w["0.bias"][0]
    loop = torch.cat(
        [
            target(
                x[i : i + 1],
                {n: (t[i] if t.dim() > len(target.shapes[n]) else t) for n, t in w.items()},
            )
            for i in range(4)
        ]
    )
    torch.testing.assert_close(target(x, w), loop)


def test_per_sample_without_fast_path_uses_vmap():
    net = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 2))
    target = Target(net)
    x = torch.randn(5, 4)
    w = random_weights(target, batch=5)
    torch.testing.assert_close(target(x, w), per_sample_loop(target, x, w))


def test_vmap_path_refuses_training_batch_norm():
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))
    target = Target(net, module_types=nn.BatchNorm1d)
    w = random_weights(target, batch=5)
    with pytest.raises(HypercoreError, match="batch norm"):
        target(torch.randn(5, 4), w)
    net.eval()
    assert target(torch.randn(5, 4), w).shape == (5, 2)


def test_shared_weights_update_batch_norm_statistics():
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
    target = Target(net, "0.*")
    before = net[1].running_mean.clone()
    target(torch.randn(8, 4) + 3, target.template())
    assert not torch.equal(before, net[1].running_mean)


def test_forward_restores_the_module():
    mlp = make_mlp()
    target = Target(mlp)
    target(torch.randn(3, 6), random_weights(target, batch=3))
    assert "forward" not in vars(mlp[0])
    x = torch.randn(2, 6)
    assert torch.equal(target(x, target.template()), mlp(x))


def test_gradients_flow_to_per_sample_weights():
    target = Target(make_convnet())
    w = {n: t.requires_grad_() for n, t in random_weights(target, batch=3).items()}
    target(torch.randn(3, 3, 6, 6), w).sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in w.values())


# -- errors -------------------------------------------------------------------------


def test_missing_and_unexpected_weights_are_named():
    target = Target(make_mlp())
    w = target.template()
    del w["0.bias"]
    w["extra"] = torch.zeros(1)
    with pytest.raises(WeightsMismatchError, match=r"missing \['0.bias'\].*unexpected \['extra'\]"):
        target(torch.randn(2, 6), w)


def test_wrong_weight_shape_names_expected_and_given():
    target = Target(make_mlp())
    w = target.template()
    w["0.weight"] = torch.zeros(6, 8)
    with pytest.raises(ShapeError, match=r"weights\['0.weight'\].*\(8, 6\).*got \(6, 8\)"):
        target(torch.randn(2, 6), w)


def test_per_sample_batch_mismatch_is_named():
    target = Target(make_mlp())
    with pytest.raises(ShapeError, match="for 4 samples but the input batch has 3"):
        target(torch.randn(3, 6), random_weights(target, batch=4))


def test_wrong_dtype_is_named():
    target = Target(make_mlp())
    w = random_weights(target, dtype=torch.float64)
    with pytest.raises(DtypeDeviceError, match="expected dtype torch.float32, got torch.float64"):
        target(torch.randn(2, 6), w)


def test_wrong_device_is_named():
    target = Target(make_mlp())
    w = target.template()
    w["0.weight"] = w["0.weight"].to("meta")
    with pytest.raises(DtypeDeviceError, match="expected device cpu, got meta"):
        target(torch.randn(2, 6), w)


def test_weights_must_be_a_dict():
    target = Target(make_mlp())
    with pytest.raises(TypeError, match="weights: expected a dict"):
        target(torch.randn(2, 6), [torch.zeros(1)])


@pytest.mark.parametrize("strategy", ["grouped", "unfold"])
@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(3, 4, 3, padding=1),
        nn.Conv2d(4, 6, 3, stride=2, groups=2, padding=1, padding_mode="reflect"),
        nn.Conv2d(3, 2, (3, 2), dilation=(2, 1), bias=False),
        nn.Conv2d(3, 4, 3, padding="same"),
    ],
    ids=["plain", "groups-stride-reflect", "dilated-no-bias", "same"],
)
def test_both_conv_strategies_equal_a_loop(strategy, conv, monkeypatch):
    from hypercore.target import per_sample

    monkeypatch.setattr(per_sample, "conv_strategy", strategy)
    target = Target(conv)
    x = torch.randn(5, conv.in_channels, 7, 6)
    w = random_weights(target, batch=5)
    torch.testing.assert_close(target(x, w), per_sample_loop(target, x, w))
