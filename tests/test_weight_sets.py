"""K weight sets on the same inputs (forward_sets) and export as a plain module (materialize)."""

import pytest
import torch
from conftest import make_convnet, make_mlp
from torch import nn

import hypercore
from hypercore import HyperNetwork, NoiseSource, ShapeError, TaskEmbedding


def test_forward_sets_of_noise_draws_equal_one_call_per_draw():
    hnet = HyperNetwork.build(make_mlp(), NoiseSource(4), head="chunk", chunk_size=16)
    x, codes = torch.randn(7, 6), torch.randn(5, 4)
    out = hnet.forward_sets(x, codes)
    assert out.shape == (5, 7, 3)
    for k in range(5):
        torch.testing.assert_close(out[k], hnet(x, codes[k]))
    assert hnet.forward_sets(x, 20).shape == (20, 7, 3)  # 20 fresh draws


def test_an_int_in_forward_stays_a_task_id_and_a_mismatch_points_to_forward_sets():
    hnet = HyperNetwork.build(make_mlp(), NoiseSource(4), head="once")
    with pytest.raises(ShapeError, match="forward_sets"):
        hnet(torch.randn(7, 6), 20)
    tasks = HyperNetwork.build(make_mlp(), TaskEmbedding(3, 4), head="once")
    assert tasks(torch.randn(7, 6), 2).shape == (7, 3)


def test_forward_sets_of_task_ids_and_structured_heads():
    for head in ("once", "scaling", "lowrank"):
        hnet = HyperNetwork.build(make_mlp(), TaskEmbedding(3, 4), head=head)
        x = torch.randn(5, 6)
        out = hnet.forward_sets(x, torch.arange(3))
        for t in range(3):
            torch.testing.assert_close(out[t], hnet(x, t))


def test_forward_sets_on_a_convnet_and_gradients():
    hnet = HyperNetwork.build(make_convnet(), NoiseSource(4), head="chunk", chunk_size=64)
    x, codes = torch.randn(2, 3, 6, 6), torch.randn(3, 4)
    out = hnet.forward_sets(x, codes)
    torch.testing.assert_close(out[1], hnet(x, codes[1]))
    out.sum().backward()
    assert all(p.grad is not None for p in hnet.head.parameters())


def test_forward_sets_needs_several_sets():
    hnet = HyperNetwork.build(make_mlp(), TaskEmbedding(3, 4), head="once")
    with pytest.raises(ShapeError, match="K weight sets"):
        hnet.forward_sets(torch.randn(5, 6), 1)


def test_materialize_gives_a_plain_module_with_the_same_function():
    mlp = make_mlp()
    hnet = HyperNetwork.build(mlp, TaskEmbedding(3, 4), head="chunk", chunk_size=16)
    plain = hnet.materialize(2)
    x = torch.randn(5, 6)
    torch.testing.assert_close(plain(x), hnet(x, 2))
    assert type(plain) is nn.Sequential and plain is not mlp
    assert all(not type(m).__module__.startswith("hypercore") for m in plain.modules())
    assert all(p.requires_grad for p in plain.parameters())
    assert not mlp[0].weight.requires_grad  # the original keeps its frozen template
    with pytest.raises(ShapeError, match="one weight set"):
        hnet.materialize(torch.tensor([0, 1]))


def test_materialize_round_trips_through_a_plain_state_dict(tmp_path):
    hnet = HyperNetwork.build(make_convnet(), TaskEmbedding(2, 4), head="once")
    plain = hnet.materialize(1)
    torch.save(plain.state_dict(), tmp_path / "plain.pt")
    fresh = make_convnet()
    fresh.load_state_dict(torch.load(tmp_path / "plain.pt"))
    x = torch.randn(3, 3, 6, 6)
    torch.testing.assert_close(fresh(x), hnet(x, 1))
    assert hypercore.Target  # the export needs no hypercore object to run


def test_build_takes_the_selection_arguments_of_target(tmp_path):
    net = make_convnet()
    hnet = HyperNetwork.build(
        net, TaskEmbedding(2, 4), exclude="*.bias", module_types=nn.Conv2d, batch_dim=0
    )
    assert hnet.target.names == ["0.weight", "2.weight"]
    assert hnet.target.batch_dim == 0
    hypercore.save(hnet, tmp_path / "h.safetensors")
    back = hypercore.load(tmp_path / "h.safetensors", module=make_convnet())
    assert back.target.names == hnet.target.names and back.target.selection == hnet.target.selection
    with pytest.raises(hypercore.HypercoreError, match="exclude: given with an existing Target"):
        HyperNetwork.build(hnet.target, TaskEmbedding(2, 4), exclude="*.bias")


def test_sequence_first_build_and_checkpoint_keep_batch_dim(tmp_path):
    lstm = nn.LSTM(3, 4)  # (T, B, F)
    hnet = HyperNetwork.build(lstm, TaskEmbedding(3, 4), batch_dim=1, include="weight_ih_l0")
    x = torch.randn(5, 2, 3)
    out, _ = hnet(x, torch.tensor([0, 2]))
    assert out.shape == (5, 2, 4)
    hypercore.save(hnet, tmp_path / "l.safetensors")
    back = hypercore.load(tmp_path / "l.safetensors", module=nn.LSTM(3, 4))
    assert back.target.batch_dim == 1
    torch.testing.assert_close(back(x, torch.tensor([0, 2]))[0], out)


@pytest.mark.parametrize(
    ("make", "old", "new"),
    [
        (lambda **kw: hypercore.TaskEmbedding(3, **kw), "dim", "embedding_dim"),
        (lambda **kw: NoiseSource(**kw), "dim", "embedding_dim"),
        (lambda **kw: hypercore.DataEncoder(6, **kw), "dim", "embedding_dim"),
        (lambda **kw: hypercore.HyperLSTM(3, 4, **kw), "embedding_size", "embedding_dim"),
        (lambda **kw: hypercore.SupportSetTransformer(4, 3, d_model=8, **kw), "heads", "num_heads"),
    ],
)
def test_renamed_arguments_still_work_with_a_deprecation_warning(make, old, new):
    with pytest.warns(DeprecationWarning, match=f"{old}= is renamed {new}="):
        old_way = make(**{old: 4 if new != "num_heads" else 2})
    new_way = make(**{new: 4 if new != "num_heads" else 2})
    assert type(old_way) is type(new_way)
    with pytest.raises(hypercore.HypercoreError, match=f"both {old}="):
        make(**{old: 2, new: 2})
