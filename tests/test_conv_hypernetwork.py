"""The convolutional hypernetwork: a CNN encoder (ConvBody) and a transposed-convolution
kernel generator (DynamicFilterHead) writing per-sample conv filters (dynamic filters)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import hypercore as hc
from hypercore.bodies import ConvBody
from hypercore.config import build
from hypercore.errors import HypercoreError, ShapeError
from hypercore.heads import DynamicFilterHead, dynamic_filter_network


def small_cnn(c2: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, c2, 7, padding=3),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 16, 10),
    )


def test_conv_body_reads_flat_and_image_inputs():
    torch.manual_seed(0)
    body = ConvBody(64, (1, 8, 8), channels=(4, 6), out_features=5)
    x = torch.randn(3, 1, 8, 8)
    h = body(x)
    assert h.shape == (3, 5)
    torch.testing.assert_close(body(x.view(3, 64)), h)
    # the parameters of a 3x3 CNN 1 -> 4 -> 6 and a 6 -> 5 linear layer
    assert sum(p.numel() for p in body.parameters()) == (9 * 4 + 4) + (36 * 6 + 6) + (6 * 5 + 5)
    rebuilt = build(body.describe(), in_features=64)
    assert isinstance(rebuilt, ConvBody) and rebuilt.config() == body.config()


def conv_spec():
    net = nn.Sequential(nn.Conv2d(2, 3, 5), nn.ReLU(), nn.Conv2d(3, 4, (3, 4)))
    return hc.Target(net, "*.weight").spec


def test_head_shapes_and_formula():
    torch.manual_seed(0)
    spec = conv_spec()
    head = DynamicFilterHead(6, spec, seed_size=2, channels=3, basis=2)
    with torch.no_grad():
        head.scale.uniform_(0.5, 1.5)
        head.offset.normal_()
    h = torch.randn(4, 6)
    weights = head(h)
    assert weights["0.weight"].shape == (4, 3, 2, 5, 5)
    assert weights["2.weight"].shape == (4, 4, 3, 3, 4)
    # explicit: seed grid -> transposed convolution -> mixing of the basis filters
    for i, name in enumerate(["0.weight", "2.weight"]):
        info = spec.params[i]
        seed = F.relu(head.seeds[i](h).view(4, 3, 2, 2))
        basis = F.conv_transpose2d(seed, head.decoders[i].weight, head.decoders[i].bias)
        assert basis.shape == (4, 2, *info.shape[2:])
        kernel = torch.einsum("pm,nmxy->npxy", head.mixing[i], basis).reshape(4, *info.shape)
        sl = slice(info.offset, info.offset + info.numel)
        expected = head.offset[sl].view(info.shape) + head.scale[sl].view(info.shape) * kernel
        torch.testing.assert_close(weights[name], expected)
    rebuilt = build(head.describe(), in_features=6, spec=spec)
    assert rebuilt.config() == head.config()


def test_dynamic_filters_equal_an_explicit_per_sample_loop():
    torch.manual_seed(0)
    hnet = dynamic_filter_network(small_cnn(), (1, 8, 8), "2.weight")
    x = torch.randn(6, 1, 8, 8)
    out = hnet(x)
    assert out.shape == (6, 10)
    weights = hnet.generate(x)["2.weight"]
    assert weights.shape == (6, 16, 16, 7, 7)
    assert not torch.allclose(weights[0], weights[1])  # every image writes its own filters
    module = hnet.target.module
    loop = torch.cat(
        [functional_call(module, {"2.weight": weights[i]}, (x[i : i + 1],)) for i in range(6)]
    )
    torch.testing.assert_close(out, loop, atol=1e-5, rtol=1e-4)


def test_gradients_reach_the_encoder_the_generator_and_the_target():
    torch.manual_seed(0)
    hnet = dynamic_filter_network(small_cnn(), (1, 8, 8), "2.weight")
    loss = F.cross_entropy(hnet(torch.randn(5, 1, 8, 8)), torch.randint(0, 10, (5,)))
    loss.backward()
    named = dict(hnet.named_parameters())
    missing = [
        n
        for n, p in named.items()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert not missing, missing
    assert any(n.startswith("conditioner.encoder.convs") for n in named)
    assert not named["target.module.2.weight"].requires_grad  # generated, not trained


def test_hyperfan_in_scale_and_parameter_count():
    torch.manual_seed(0)
    hnet = dynamic_filter_network(small_cnn(), (1, 8, 8), "2.weight")
    with torch.no_grad():
        w = hnet.generate(torch.randn(64, 64))["2.weight"]
    assert 0.5 < float(w.var()) * 16 * 49 / 2 < 2.0  # Kaiming variance 2 / fan_in
    counts = hnet.parameter_counts()
    assert counts["generated per weight set"] == 12544
    # encoder 1 -> 8 -> 16 (3x3) + 16 -> 16; seed 16 -> 8*3*3; deconv 8 -> 4 (5x5); mixing 256 x 4
    assert counts["conditioner"] == (9 * 8 + 8) + (72 * 16 + 16) + (16 * 16 + 16)
    assert counts["head"] == (16 * 72 + 72) + (8 * 4 * 25 + 4) + 256 * 4


def test_errors_name_the_argument():
    linear = hc.Target(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 2))).spec
    with pytest.raises(HypercoreError, match=r"spec: .*2\.weight \(2, 4\)"):
        DynamicFilterHead(4, linear)
    small = hc.Target(nn.Conv2d(1, 4, 2), "weight").spec
    with pytest.raises(HypercoreError, match=r"spec: .*seed_size \(3\)"):
        DynamicFilterHead(4, small)
    with pytest.raises(HypercoreError, match="basis"):
        DynamicFilterHead(4, small, seed_size=1, basis=0)
    with pytest.raises(HypercoreError, match="in_features: expected C\\*H\\*W = 64"):
        ConvBody(63, (1, 8, 8))
    with pytest.raises(HypercoreError, match="image_shape: expected \\(C, H, W\\)"):
        ConvBody(64, (8, 8))
    with pytest.raises(HypercoreError, match="kernel_size: expected an odd size"):
        ConvBody(64, (1, 8, 8), kernel_size=4)
    with pytest.raises(HypercoreError, match="channels: expected at least one"):
        ConvBody(64, (1, 8, 8), channels=())
    with pytest.raises(HypercoreError, match="activation"):
        ConvBody(64, (1, 8, 8), activation="swish")
    body = ConvBody(64, (1, 8, 8))
    with pytest.raises(ShapeError, match=r"x: expected shape \(N, 64\) or \(N, 1, 8, 8\)"):
        body(torch.randn(2, 1, 7, 8))
    with pytest.raises(HypercoreError, match="image_shape: expected \\(C, H, W\\)"):
        dynamic_filter_network(small_cnn(), (64,), "2.weight")
    with pytest.raises(HypercoreError, match="module: expected an nn.Module"):
        dynamic_filter_network("cnn", (1, 8, 8), "2.weight")
    with pytest.raises(HypercoreError, match="spec: "):
        dynamic_filter_network(small_cnn(), (1, 8, 8), "6.weight")  # the linear layer


def test_a_dynamic_filter_network_learns():
    torch.manual_seed(0)
    # two classes told apart by the orientation of a bar: per-sample filters can do it
    x = torch.zeros(64, 1, 8, 8)
    y = torch.arange(64) % 2
    x[y == 0, 0, 4, :] = 1.0
    x[y == 1, 0, :, 4] = 1.0
    x = x + 0.1 * torch.randn_like(x)
    hnet = dynamic_filter_network(small_cnn(), (1, 8, 8), "2.weight")
    optimizer = torch.optim.Adam(hnet.parameters(), lr=3e-3)
    for _ in range(30):
        loss = F.cross_entropy(hnet(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = loss.item()
    assert math.isfinite(final) and final < 0.3
