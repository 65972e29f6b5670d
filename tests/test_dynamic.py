"""CoordinateHyperNetwork: weights for linear layers of any width."""

import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.dynamic import CoordinateHyperNetwork


def mlp_target(width: int, inputs: int = 6) -> hc.Target:
    return hc.Target(nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, 3)))


@pytest.mark.parametrize("width", [4, 17, 64])
def test_writes_any_width(width):
    gen = CoordinateHyperNetwork(2, hidden=16)
    target = mlp_target(width)
    weights = gen.generate(target.spec)
    assert {n: tuple(w.shape) for n, w in weights.items()} == target.shapes
    assert target(torch.randn(5, 6), weights).shape == (5, 3)


def test_wide_targets_converge_mean_field():
    gen = CoordinateHyperNetwork(2, hidden=16)
    x = torch.randn(20, 6)
    with torch.no_grad():
        outputs = {w: mlp_target(w)(x, gen.generate(mlp_target(w).spec)) for w in (256, 512)}
    change = (outputs[256] - outputs[512]).norm() / outputs[512].norm()
    assert change < 0.05, change


def test_first_layer_starts_at_kaiming_scale_at_fan_in_64():
    gen = CoordinateHyperNetwork(2)
    with torch.no_grad():
        w = gen.generate(mlp_target(32, inputs=64).spec)
    assert 0.5 < float(w["0.weight"].pow(2).mean()) / (2 / 64) < 2.0
    assert float(w["0.bias"].abs().max()) == 0.0


def test_conditions_give_shared_or_per_sample_weights():
    gen = CoordinateHyperNetwork(2, hidden=16, condition_dim=3)
    spec = mlp_target(8).spec
    assert gen.generate(spec, torch.randn(3))["0.weight"].shape == (8, 6)
    per_sample = gen.generate(spec, torch.randn(4, 3))
    assert per_sample["0.weight"].shape == (4, 8, 6) and per_sample["2.bias"].shape == (4, 3)
    out = mlp_target(8)(torch.randn(4, 6), per_sample)
    out.sum().backward()
    assert all(p.grad is not None for p in gen.parameters())


def test_errors_name_the_problem():
    with pytest.raises(hc.HypercoreError, match="writes 3 linear layers"):
        CoordinateHyperNetwork(3).generate(mlp_target(8).spec)
    with pytest.raises(hc.HypercoreError, match="writes 1 linear layers"):
        CoordinateHyperNetwork(1).generate(hc.Target(nn.Conv2d(2, 3, 3)).spec)
    with pytest.raises(hc.ShapeError, match=r"condition: expected shape \(3,\)"):
        CoordinateHyperNetwork(2, condition_dim=3).generate(mlp_target(8).spec, torch.randn(2))
    with pytest.raises(hc.HypercoreError, match="condition_dim=0"):
        CoordinateHyperNetwork(2).generate(mlp_target(8).spec, torch.randn(3))
