"""Magnitude-invariant inputs, residual heads, spectral normalisation, matched initial scales."""

import math

import pytest
import torch
from conftest import make_mlp
from torch import nn

import hypercore as hc
from hypercore.heads import ResidualHead
from hypercore.init import init_module_
from hypercore.inputs import ScalarInput
from hypercore.stability import spectral_normalize


def test_cos_sin_encoding_has_unit_norm_and_identity_does_not():
    values = torch.linspace(0, 1, 11)
    e = ScalarInput(encoding="cos_sin")(values)
    assert e.shape == (11, 2)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(11))
    raw = ScalarInput(encoding="identity")(values)
    assert raw.shape == (11, 1) and float(raw[0]) == 0.0


def test_scalar_input_shapes_and_range():
    enc = ScalarInput(num_scalars=2, low=-1, high=3, encoding="identity")
    assert enc(torch.tensor([-1.0, 3.0])).tolist() == [0.0, 1.0]  # shared
    assert enc(torch.zeros(5, 2)).shape == (5, 2)
    assert ScalarInput()(0.5).shape == (2,)
    angle = math.pi / 4
    torch.testing.assert_close(ScalarInput()(0.5), torch.tensor([math.cos(angle), math.sin(angle)]))


def test_scalar_input_errors():
    with pytest.raises(hc.HypercoreError, match="encoding: expected one of"):
        ScalarInput(encoding="fourier")
    with pytest.raises(hc.HypercoreError, match="need high > low"):
        ScalarInput(low=1, high=1)
    with pytest.raises(hc.ShapeError, match=r"\(2,\) / \(B, 2\); got \(4, 3\)"):
        ScalarInput(num_scalars=2)(torch.zeros(4, 3))


@pytest.mark.parametrize("head,options", [("once", {}), ("chunk", {"chunk_size": 16})])
def test_residual_head_starts_near_the_targets_init_and_learns(head, options):
    module = make_mlp((6, 8, 3))
    template = {n: p.detach().clone() for n, p in module.named_parameters()}
    build = {"head": head, "body_hidden": (8,), **options}
    hnet = hc.HyperNetwork.build(module, ScalarInput(), residual=True, **build)
    plain = hc.HyperNetwork.build(make_mlp((6, 8, 3)), ScalarInput(), **build)
    assert isinstance(hnet.head, ResidualHead)
    conditions = torch.linspace(0, 1, 16)
    with torch.no_grad():
        w, w_plain = hnet.generate(conditions), plain.generate(conditions)
    for name, t in template.items():
        deviation = float((w[name] - t).std())  # the condition-dependent part
        assert 0 < deviation < 0.25 * float(w_plain[name].pow(2).mean().sqrt()), name
    hnet(torch.randn(4, 6), torch.rand(4)).sum().backward()
    assert all(p.grad is not None for p in hnet.parameters() if p.requires_grad)


def test_residual_head_refuses_modulation_heads():
    with pytest.raises(hc.HypercoreError, match="already modulates"):
        hc.HyperNetwork.build(make_mlp(), ScalarInput(), head="scaling", residual=True)


def test_spectral_norm_bounds_the_body_and_spares_the_head():
    hnet = hc.HyperNetwork.build(make_mlp(), ScalarInput(), body_hidden=(32, 32))
    spectral_normalize(hnet)
    x = torch.randn(3, 6)
    for _ in range(20):  # power iterations converge during training-mode forwards
        hnet(x, torch.rand(3))
    for module in hnet.body.modules():
        if isinstance(module, torch.nn.Linear):
            sigma = torch.linalg.matrix_norm(module.weight.detach(), ord=2)
            assert float(sigma) < 1.05
    assert not hasattr(hnet.head.linear, "parametrizations")


@pytest.mark.parametrize("spectral", [False, True])
def test_stability_parts_round_trip_through_checkpoints(spectral, tmp_path):
    hnet = hc.HyperNetwork.build(
        make_mlp(), ScalarInput(low=0, high=2), head="chunk", chunk_size=16, residual=True
    )
    if spectral:
        spectral_normalize(hnet)
    hnet.eval()
    hc.save(hnet, tmp_path / "h.safetensors")
    loaded = hc.load(tmp_path / "h.safetensors", make_mlp()).eval()
    x, c = torch.randn(4, 6), torch.rand(4) * 2
    assert torch.equal(hnet(x, c), loaded(x, c))
    assert loaded.config() == hnet.config()


def test_init_module_draws_the_scale_a_hyperfan_init_generates():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.LayerNorm(32), nn.Linear(32, 10))
    assert init_module_(module, "hyperfan_in") is module
    for layer in (module[0], module[3]):  # ReLU gain 2, bias generated: Var(W) = 1 / fan_in
        w = layer.weight.detach()
        assert float(w.var()) * layer.in_features == pytest.approx(1.0, rel=0.15)
        assert float(w.abs().max()) <= math.sqrt(3.0 / layer.in_features) + 1e-6
    biases = torch.cat([module[0].bias, module[3].bias]).detach()
    assert float(biases.var()) == pytest.approx(1.0, rel=0.5)
    assert torch.equal(module[2].weight, torch.ones(32))  # other tensors keep their values
    init_module_(module, "hyperfan_out")
    assert float(module[0].weight.detach().var()) * 32 == pytest.approx(2.0, rel=0.15)


def test_init_module_matches_a_residual_base_to_the_generated_scale():
    def rms(hnet):
        with torch.no_grad():
            w = hnet.generate(torch.linspace(0, 1, 8))
        return float(torch.cat([t.flatten() for t in w.values()]).pow(2).mean().sqrt())

    torch.manual_seed(0)
    sizes = (64, 32, 10)
    plain = hc.HyperNetwork.build(make_mlp(sizes), ScalarInput(encoding="identity"))
    default_base = hc.HyperNetwork.build(make_mlp(sizes), ScalarInput(), residual=True)
    matched = hc.HyperNetwork.build(init_module_(make_mlp(sizes)), ScalarInput(), residual=True)
    assert rms(matched) == pytest.approx(rms(plain), rel=0.15)
    assert rms(default_base) < 0.8 * rms(plain)  # PyTorch's default init is smaller


def test_init_module_needs_a_method_with_a_scale():
    for method in ("default", "bias_hyperinit"):
        with pytest.raises(hc.HypercoreError, match="scale of its own"):
            init_module_(make_mlp(), method)
    with pytest.raises(hc.HypercoreError, match="init: expected one of"):
        init_module_(make_mlp(), "kaiming")
