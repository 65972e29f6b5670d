"""Ha et al.'s kernel-tile hypernetwork for convolutional targets."""

import pytest
import torch
from torch import nn

import hypercore as hc
from hypercore.heads import KernelTileHead


def conv_target():
    net = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 16, 3, padding=1))
    return hc.Target(net, module_types=nn.Conv2d, exclude="*.bias")


def test_tiles_are_assembled_where_they_belong():
    target = conv_target()
    head = KernelTileHead(4, target.spec, tile_in=16, tile_out=16, embedding_dim=3, hidden=5)
    h = torch.randn(2, 4)
    weights = head.spec.unflatten(head.raw(h))
    assert weights["0.weight"].shape == (2, 32, 16, 3, 3)
    assert weights["2.weight"].shape == (2, 16, 32, 3, 3)
    # tile 3 is the second tile of layer 2 (1 row x 2 columns): rows 0..16, cols 16..32
    z = head.embeddings[3] + head.from_condition(h)  # (2, N_z)
    a = torch.einsum("nz,idz->nid", z, head.weight_in) + head.bias_in  # (2, tile_in, N_d)
    tile = head.out(a).view(2, 16, 16, 3, 3).transpose(1, 2)  # (2, out, in, k, k)
    torch.testing.assert_close(weights["2.weight"][:, :, 16:32], tile)


def test_ha_mnist_configuration_has_4244_parameters():
    net = nn.Sequential(nn.Conv2d(1, 16, 3), nn.Conv2d(16, 16, 7))
    target = hc.Target(net, "1.weight")
    head = KernelTileHead(4, target.spec, embedding_dim=4, hidden=4)
    generator = sum(p.numel() for n, p in head.named_parameters() if n != "from_condition.weight")
    assert target.num_generated == 12544
    assert generator == 4244


def test_a_tile_hypernetwork_trains_a_cnn_and_has_hyperfan_scale():
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 5, padding=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 36, 3),
    )
    hnet = hc.HyperNetwork.build(
        net,
        hc.TaskEmbedding(1, 4),
        head="tiles",
        body_hidden=(),
        include="2.weight",
        embedding_dim=4,
        hidden=4,
    )
    with torch.no_grad():
        w = hnet.generate(0)["2.weight"]
    assert 0.5 < float(w.var()) * 16 * 25 / 2 < 2.0  # Kaiming variance 2 / fan_in
    out = hnet(torch.randn(5, 1, 6, 6), 0)
    out.sum().backward()
    assert hnet.head.weight_in.grad.abs().sum() > 0 and hnet.head.embeddings.grad.abs().sum() > 0


def test_non_conv_tensors_are_refused_by_name():
    target = hc.Target(nn.Sequential(nn.Conv2d(16, 16, 3), nn.Flatten(), nn.Linear(16, 2)))
    with pytest.raises(hc.HypercoreError, match="cannot generate"):
        KernelTileHead(4, target.spec)
    with pytest.raises(hc.HypercoreError, match="cannot generate"):
        KernelTileHead(4, hc.Target(nn.Conv2d(8, 16, 3), "weight").spec)
