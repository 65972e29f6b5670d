"""Tests for hypercore.apps.generative: SIREN, codes, data, fitting, sampling."""

from __future__ import annotations

import math

import pytest
import torch

import hypercore as hc
from hypercore.apps.generative import (
    LatentCodes,
    Sine,
    box_downsample,
    fit_auto_decoder,
    fit_codes,
    fit_gaussian,
    fit_per_image,
    per_image_table,
    pixel_grid,
    psnr,
    render,
    render_shapes,
    sample_gaussian,
    siren,
    siren_init,
    upsample,
)
from hypercore.errors import HypercoreError, HypercoreTypeError, ShapeError


def small_hnet(n: int = 4, code_dim: int = 3, w0: float = 10.0) -> hc.HyperNetwork:
    torch.manual_seed(0)
    return hc.HyperNetwork.build(
        hc.Target(siren(8, 2, w0)),
        LatentCodes(n, code_dim),
        body_hidden=(16,),
        residual=True,
        gain=math.sqrt(2) / w0,
    )


def test_sine_and_siren_init_bounds():
    assert torch.allclose(Sine(2.0)(torch.tensor([0.25 * math.pi])), torch.tensor([1.0]))
    net = siren(hidden=16, depth=2, w0=30.0)
    first, second = net[0], net[2]
    assert first.weight.abs().max() <= 1.0 / 2 + 1e-7
    assert second.weight.abs().max() <= math.sqrt(6 / 16) / 30 + 1e-7
    assert net(torch.zeros(5, 2)).shape == (5, 1)
    draws = siren_init((4, 8), first=False, w0=5.0, count=3)
    assert draws.shape == (3, 4, 8) and draws.abs().max() <= math.sqrt(6 / 8) / 5
    with pytest.raises(ShapeError, match="shape"):
        siren_init((4,), first=True, w0=1.0)
    with pytest.raises(HypercoreError, match="w0"):
        Sine(0.0)


def test_pixel_grid_nests_and_box_downsample_averages():
    g2, g4 = pixel_grid(2), pixel_grid(4)
    assert g2.shape == (4, 2)
    assert torch.allclose(g2[0], torch.tensor([-0.5, -0.5]))  # (x, y) of pixel (0, 0)
    # the centre of a 2x2 block of the 4-grid is the 2-grid's pixel centre
    block = g4.view(4, 4, 2)[:2, :2].reshape(-1, 2).mean(0)
    assert torch.allclose(block, g2[0])
    img = torch.arange(16.0).view(1, 4, 4)
    assert torch.allclose(box_downsample(img, 2), torch.tensor([[[2.5, 4.5], [10.5, 12.5]]]))
    with pytest.raises(ShapeError, match="divisible"):
        box_downsample(torch.zeros(1, 5, 4), 2)


def test_render_shapes_deterministic_and_antialiased():
    a = render_shapes(3, 16, seed=7)
    b = render_shapes(3, 16, seed=7)
    assert torch.equal(a, b) and a.shape == (3, 16, 16)
    assert not torch.equal(a, render_shapes(3, 16, seed=8))
    assert a.min() >= 0 and a.max() <= 1
    # anti-aliasing: some edge pixels take values between background and shape
    values = torch.unique(a[0])
    assert len(values) > 3


def test_psnr_and_upsample():
    truth = torch.zeros(2, 4, 4)
    pred = torch.full((2, 4, 4), 0.1)
    assert torch.allclose(psnr(pred, truth), torch.full((2,), 20.0))
    with pytest.raises(ShapeError, match="prediction"):
        psnr(pred[0], truth)
    flat = torch.full((1, 4, 4), 0.3)
    for mode in ("bilinear", "bicubic"):
        assert torch.allclose(upsample(flat, 8, mode), torch.full((1, 8, 8), 0.3))
    with pytest.raises(HypercoreError, match="mode"):
        upsample(flat, 8, "nearest")


def test_latent_codes_ids_and_codes():
    codes = LatentCodes(5, 3)
    assert codes(2).shape == (3,)
    assert codes(torch.tensor([0, 4])).shape == (2, 3)
    z = torch.randn(7, 3)
    assert codes(z) is z
    with pytest.raises(ShapeError, match=r"\(K, 3\)"):
        codes(torch.randn(7, 2))
    with pytest.raises(HypercoreError, match="0..4"):
        codes(torch.tensor([5]))
    with pytest.raises(HypercoreTypeError, match="condition"):
        codes("a")


def test_hypernetwork_renders_per_image_and_matches_materialize():
    hnet = small_hnet()
    coords = pixel_grid(4)
    out = render(hnet, coords, torch.tensor([0, 2]))
    assert out.shape == (2, 16)
    single = hnet.materialize(2)(coords).squeeze(-1)
    assert torch.allclose(out[1], single, atol=1e-6)


def test_auto_decoder_learns_and_codes_get_gradients():
    torch.manual_seed(0)
    pixels = torch.rand(4, 16)
    hnet = small_hnet()
    before = hnet.conditioner.weight.detach().clone()
    losses = fit_auto_decoder(hnet, pixel_grid(4), pixels, steps=60, batch_size=2, lr=1e-2)
    assert len(losses) == 60 and losses[-1] < losses[0]
    assert not torch.equal(before, hnet.conditioner.weight)
    with pytest.raises(ShapeError, match="4 images"):
        fit_auto_decoder(hnet, pixel_grid(4), torch.rand(3, 16), steps=1)
    with pytest.raises(ShapeError, match="pixels"):
        fit_auto_decoder(hnet, pixel_grid(4), torch.rand(4, 15), steps=1)


def test_fit_codes_leaves_the_hypernetwork_unchanged():
    hnet = small_hnet()
    state = {k: v.clone() for k, v in hnet.state_dict().items()}
    trainable = [p.requires_grad for p in hnet.parameters()]
    target = render(hnet, pixel_grid(4), torch.tensor([1])).detach()
    codes = fit_codes(hnet, pixel_grid(4), target, steps=40, lr=5e-2, code_reg=0.0)
    assert codes.shape == (1, 3)
    for k, v in hnet.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert [p.requires_grad for p in hnet.parameters()] == trainable
    start = render(hnet, pixel_grid(4), hnet.conditioner.weight.mean(0, keepdim=True))
    after = render(hnet, pixel_grid(4), codes)
    assert (after - target).pow(2).mean() < (start - target).pow(2).mean()


def test_per_image_fit_equals_separate_fits():
    coords, pixels = pixel_grid(4), torch.rand(2, 16)
    target = hc.Target(siren(8, 2, 10.0))
    joint = per_image_table(target, 2, 10.0, seed=3)
    alone = per_image_table(target, 2, 10.0, seed=3)
    fit_per_image(joint, coords, pixels, steps=5, lr=1e-2)
    # image 0 alone: a one-image table holding the same initial weights
    one = per_image_table(target, 1, 10.0)
    with torch.no_grad():
        for t_one, t_alone in zip(one.tables, alone.tables, strict=True):
            t_one.copy_(t_alone[:1])
    fit_per_image(one, coords, pixels[:1], steps=5, lr=1e-2)
    for t_joint, t_one in zip(joint.tables, one.tables, strict=True):
        assert torch.allclose(t_joint[:1], t_one, atol=1e-6)
    assert render(joint, coords, torch.arange(2)).shape == (2, 16)
    with pytest.raises(HypercoreTypeError, match="table"):
        fit_per_image(torch.nn.Linear(2, 1), coords, pixels, steps=1)  # type: ignore[arg-type]


def test_gaussian_fit_and_sampling():
    torch.manual_seed(0)
    codes = torch.randn(4000, 2) @ torch.tensor([[2.0, 0.0], [1.0, 0.5]]) + 3.0
    mean, cov = fit_gaussian(codes)
    draws = sample_gaussian(mean, cov, 4000, seed=1)
    assert draws.shape == (4000, 2)
    assert torch.allclose(draws.mean(0), mean, atol=0.15)
    assert torch.allclose(torch.cov(draws.T), cov, rtol=0.1, atol=0.1)
    assert torch.equal(draws, sample_gaussian(mean, cov, 4000, seed=1))
    with pytest.raises(ShapeError, match="N >= 2"):
        fit_gaussian(codes[:1])
    with pytest.raises(ShapeError, match="cov"):
        sample_gaussian(mean, cov[:1], 3)
