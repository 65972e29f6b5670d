"""Checkpoints: safetensors + JSON config, bit-identical round trips, clear errors."""

import pytest
import torch
from conftest import make_convnet, make_mlp
from safetensors.torch import save_file
from torch import nn

import hypercore as hc
from hypercore import HyperNetwork, TaskEmbedding

CASES = {
    "once-task": lambda: HyperNetwork.build(make_mlp(), TaskEmbedding(3, 4), body_hidden=(8,)),
    "multiple-weights-only": lambda: HyperNetwork.build(
        make_mlp(), TaskEmbedding(2, 4), head="multiple", include="*.weight", init="hyperfan_out"
    ),
    "component-conv": lambda: HyperNetwork.build(
        make_convnet(), TaskEmbedding(2, 4), head="component", embedding_dim=3, hidden=6
    ),
    "chunk-data": lambda: HyperNetwork.build(
        make_mlp(),
        hc.DataEncoder(6, 4, hidden=(5,)),
        head="chunk",
        chunk_size=10,
        init="bias_hyperinit",
    ),
    "once-noise": lambda: HyperNetwork.build(make_mlp(), hc.NoiseSource(3), body_hidden=()),
    "scaling-task": lambda: HyperNetwork.build(make_mlp(), TaskEmbedding(2, 4), head="scaling"),
    "lowrank-conv": lambda: HyperNetwork.build(
        make_convnet(), TaskEmbedding(2, 4), head="lowrank", rank=2
    ),
}


def module_for(case):
    return make_convnet() if "conv" in case else make_mlp()


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_is_bit_identical(case, tmp_path):
    hnet = CASES[case]()
    with torch.no_grad():  # move away from the init so the test sees trained values
        for p in hnet.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "hnet.safetensors"
    hc.save(hnet, path)
    loaded = hc.load(path, module_for(case))
    original, restored = hnet.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    assert loaded.config() == hnet.config()
    x = torch.randn(3, 3, 6, 6) if "conv" in case else torch.randn(3, 6)
    cond = {"data": None, "noise": torch.randn(3)}.get(case.split("-")[-1], 1)
    assert torch.equal(hnet(x, cond), loaded(x, cond))


def test_loading_does_not_touch_the_global_rng(tmp_path):
    path = tmp_path / "h.safetensors"
    hc.save(CASES["once-task"](), path)
    module = make_mlp()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    hc.load(path, module)
    assert torch.equal(torch.rand(3), expected)


def test_config_is_readable_without_loading(tmp_path):
    path = tmp_path / "h.safetensors"
    hc.save(CASES["chunk-data"](), path)
    config = hc.read_config(path)
    assert config["head"] == {
        "type": "ChunkWiseHead",
        "chunk_size": 10,
        "embedding_dim": 16,
        "hidden": 64,
        "activation": "relu",
    }
    assert config["conditioner"]["type"] == "DataEncoder"


def test_wrong_architecture_is_named(tmp_path):
    path = tmp_path / "h.safetensors"
    hc.save(HyperNetwork.build(make_mlp(), TaskEmbedding(3, 4), include="*.weight"), path)
    with pytest.raises(hc.HypercoreError, match="do not match the rebuilt hypernetwork"):
        hc.load(path, nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3), nn.Linear(3, 3)))


def test_not_a_checkpoint_is_named(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(hc.HypercoreError, match="not a hypercore checkpoint"):
        hc.load(path, make_mlp())


def test_custom_parts_must_be_given_when_loading(tmp_path):
    encoder = nn.Sequential(nn.Linear(6, 4))
    hnet = HyperNetwork.build(make_mlp(), hc.DataEncoder(6, 4, encoder=encoder))
    with pytest.raises(hc.HypercoreError, match="pass conditioner="):
        hc.save(hnet, tmp_path / "h.safetensors")
