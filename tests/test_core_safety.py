"""The rules the core keeps: the user's module is never changed, not even briefly.

Concurrent calls, an instance-level ``forward``, ``torch.compile``, activation
checkpointing and autocast all work through the target; the optimisations
(grouping a mixed-task batch, fast paths) give the plain computation's result.
"""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from conftest import make_mlp, per_sample_loop, random_weights
from torch import nn
from torch.utils.checkpoint import checkpoint

import hypercore as hc
from hypercore import HyperNetwork, ShapeError, Target, TaskEmbedding


def mlp_reference(x, w):
    """The MLP 6-8-3 of ``make_mlp`` with weights ``w``, in plain torch."""
    h = F.relu(F.linear(x, w["0.weight"], w["0.bias"]))
    return F.linear(h, w["2.weight"], w["2.bias"])


# -- threads ---------------------------------------------------------------------------


def test_concurrent_mixed_task_calls_are_correct_and_leave_the_module_alone():
    torch.manual_seed(0)
    mlp = make_mlp()
    originals = [id(p) for p in mlp.parameters()]
    hnet = HyperNetwork.build(mlp, TaskEmbedding(6, 4), head="chunk", chunk_size=16)
    x = torch.randn(8, 6)
    calls_per_thread, threads = 260, 4
    wrong, changed = [0], [0]

    def worker(seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        for _ in range(calls_per_thread):
            tasks = torch.randint(0, 6, (8,), generator=g)
            with torch.no_grad():
                out = hnet(x, tasks)
                weights = hnet.generate(tasks)
                expected = torch.stack(
                    [mlp_reference(x[i], {n: w[i] for n, w in weights.items()}) for i in range(8)]
                )
            if not torch.allclose(out, expected, atol=1e-5):
                wrong[0] += 1
            if [id(p) for p in mlp.parameters()] != originals:
                changed[0] += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert threads * calls_per_thread >= 1000
    assert wrong[0] == 0, f"{wrong[0]} of {threads * calls_per_thread} outputs were wrong"
    assert changed[0] == 0
    assert all(isinstance(p, nn.Parameter) for p in mlp.parameters())
    assert [id(p) for p in mlp.parameters()] == originals


def test_module_is_untouched_during_a_call():
    seen = []

    class Spy(nn.Module):
        def forward(self, h):
            seen.append(all(type(p) is nn.Parameter for p in net.parameters()))
            seen.append("forward" in vars(net[0]) or "forward" in vars(net[3]))
            return h

    net = nn.Sequential(nn.Linear(6, 8), Spy(), nn.ReLU(), nn.Linear(8, 3))
    target = Target(net)
    target(torch.randn(3, 6), random_weights(target, batch=3))  # per sample
    target(torch.randn(3, 6), random_weights(target))  # shared
    assert seen == [True, False, True, False]


# -- the user's own forward, compilers, checkpointing, autocast --------------------------


def test_an_instance_level_forward_survives_per_sample_calls():
    mlp = make_mlp()
    calls = []
    original = mlp[0].forward

    def logged(x):
        calls.append(x.shape)
        return original(x)

    mlp[0].forward = logged
    target = Target(mlp)
    target(torch.randn(4, 6), random_weights(target, batch=4))
    assert mlp[0].forward is logged and calls == [torch.Size([4, 6])]


@pytest.mark.parametrize("per_sample", [False, True])
def test_compile_fullgraph(per_sample):
    torch._dynamo.reset()
    target = Target(make_mlp())
    x = torch.randn(4, 6)
    w = random_weights(target, batch=4 if per_sample else None)
    compiled = torch.compile(target, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, w), target(x, w))


def test_compile_fullgraph_mixed_task_batch():
    torch._dynamo.reset()
    hnet = HyperNetwork.build(make_mlp(), TaskEmbedding(5, 4), head="once")
    x, tasks = torch.randn(6, 6), torch.tensor([0, 3, 3, 1, 0, 4])
    compiled = torch.compile(hnet, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, tasks), hnet(x, tasks))


class Checkpointed(nn.Module):
    def __init__(self, reentrant: bool):
        super().__init__()
        self.a, self.b, self.reentrant = nn.Linear(6, 8), nn.Linear(8, 3), reentrant

    def forward(self, x):
        h = checkpoint(lambda y: F.relu(self.a(y)), x, use_reentrant=self.reentrant)
        return self.b(h)


@pytest.mark.parametrize("per_sample", [False, True])
def test_activation_checkpointing_inside_the_target(per_sample):
    target = Target(Checkpointed(reentrant=False))
    x = torch.randn(4, 6, requires_grad=True)
    w = {
        n: v.requires_grad_() for n, v in random_weights(target, 4 if per_sample else None).items()
    }
    target(x, w).square().sum().backward()
    got = {n: v.grad.clone() for n, v in w.items()}
    ref = {n: v.detach().clone().requires_grad_() for n, v in w.items()}
    rename = {
        "a.weight": "0.weight",
        "a.bias": "0.bias",
        "b.weight": "2.weight",
        "b.bias": "2.bias",
    }
    plain = {rename[n]: v for n, v in ref.items()}
    if per_sample:
        out = torch.stack(
            [mlp_reference(x[i], {n: v[i] for n, v in plain.items()}) for i in range(4)]
        )
    else:
        out = mlp_reference(x, plain)
    out.square().sum().backward()
    for n in w:
        torch.testing.assert_close(got[n], ref[n].grad)


def test_bf16_autocast_through_the_target():
    hnet = HyperNetwork.build(make_mlp(), TaskEmbedding(3, 4), head="once")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = hnet(torch.randn(5, 6), 1)
        per_sample = hnet(torch.randn(5, 6), torch.arange(5) % 3)
    assert out.dtype == torch.bfloat16 and per_sample.shape == (5, 3)


# -- correctness of the optimisations ---------------------------------------------------


def test_grouped_forward_with_training_batch_norm_equals_one_batched_forward():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    hnet = HyperNetwork.build(net, TaskEmbedding(3, 4), head="once", include=["0.*", "3.*"])
    x, tasks = torch.randn(9, 6), torch.tensor([0, 1, 0, 2, 1, 1, 0, 0, 1])
    grouped = hnet(x, tasks)
    per_sample = hnet.target(x, hnet.generate(tasks).copy())
    torch.testing.assert_close(grouped, per_sample)
    hnet(x, torch.tensor([0, 1, 1, 1, 1, 1, 1, 1, 1]))  # a group of one sample


def test_task_ids_must_match_the_batch():
    hnet = HyperNetwork.build(make_mlp(), TaskEmbedding(3, 4), head="once")
    with pytest.raises(ShapeError, match=r"condition.*3.*batch of 4"):
        hnet(torch.randn(4, 6), torch.tensor([0, 1, 2]))
    with pytest.raises(ShapeError, match=r"condition.*5.*batch of 4"):
        hnet(torch.randn(4, 6), torch.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(ShapeError, match=r"condition.*5.*batch of 4"):
        hnet(torch.randn(4, 6), torch.tensor([0, 1, 2, 0, 0]))  # distinct path


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.encode = nn.Linear(6, 6, bias=False)
        self.decode = nn.Linear(6, 6, bias=False)
        self.decode.weight = self.encode.weight

    def forward(self, x):
        return self.decode(torch.tanh(self.encode(x)))


def test_tied_parameters_stay_tied():
    target = Target(Tied())
    assert target.names == ["encode.weight"]
    w = torch.randn(6, 6)
    x = torch.randn(3, 6)
    torch.testing.assert_close(target(x, {"encode.weight": w}), F.linear(torch.tanh(x @ w.T), w))
    only_decoder = Target(Tied(), "decode.weight")  # the alias selects the shared tensor
    assert only_decoder.names == ["encode.weight"]
    torch.testing.assert_close(
        only_decoder(x, {"encode.weight": w}), F.linear(torch.tanh(x @ w.T), w)
    )


def test_sequence_first_target_needs_and_uses_its_batch_dim():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4)  # (T, B, F)
    x = torch.randn(5, 5, 3)  # T == B: nothing to guess from shapes
    with pytest.raises(hc.HypercoreError, match="batch_dim"):
        t = Target(nn.LSTM(3, 4))
        t(x, random_weights(t, batch=5))
    target = Target(lstm, batch_dim=1)
    w = random_weights(target, batch=5)
    out, _ = target(x, w)
    for b in range(5):
        ref, _ = target(x[:, b : b + 1], {n: v[b] for n, v in w.items()})
        torch.testing.assert_close(out[:, b : b + 1], ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_per_sample_recurrent_targets(cell):
    target = Target(cell(3, 4, batch_first=True))
    x = torch.randn(4, 6, 3)
    w = random_weights(target, batch=4)
    out, _ = target(x, w)
    for b in range(4):
        ref, _ = target(x[b : b + 1], {n: v[b] for n, v in w.items()})
        torch.testing.assert_close(out[b : b + 1], ref, atol=1e-5, rtol=1e-4)


def test_per_sample_attention_with_key_and_value():
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    target = Target(mha, "in_proj_weight")
    q, kv = torch.randn(3, 4, 8), torch.randn(3, 5, 8)
    w = random_weights(target, batch=3)
    out, _ = target(q, w, kv, kv)
    for b in range(3):
        ref, _ = target(q[b : b + 1], {n: v[b] for n, v in w.items()}, kv[b : b + 1], kv[b : b + 1])
        torch.testing.assert_close(out[b : b + 1], ref, atol=1e-5, rtol=1e-4)


def test_per_sample_dropout_in_training_mode():
    net = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.LayerNorm(8), nn.Linear(8, 3))
    target = Target(net, "2.*")  # LayerNorm has no fast path: the general route
    out = target(torch.randn(4, 6), random_weights(target, batch=4))
    assert out.shape == (4, 3) and torch.isfinite(out).all()


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.head(h), h


def test_tuple_returning_target_on_the_grouped_path():
    hnet = HyperNetwork.build(TwoOutputs(), TaskEmbedding(3, 4), head="once")
    x, tasks = torch.randn(6, 6), torch.tensor([0, 2, 2, 1, 0, 0])
    logits, features = hnet(x, tasks)
    ref_logits, ref_features = hnet.target(x, hnet.generate(tasks).copy())
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(features, ref_features)


def test_per_sample_loop_helper_still_agrees():
    target = Target(make_mlp())
    x = torch.randn(5, 6)
    w = random_weights(target, batch=5)
    torch.testing.assert_close(target(x, w), per_sample_loop(target, x, w))


def test_bad_selection_and_empty_per_sample_batches_are_named():
    with pytest.raises(hc.HypercoreError, match="include: expected a glob pattern"):
        Target(make_mlp(), 5)
    with pytest.raises(hc.HypercoreError, match="module_types: expected an nn.Module subclass"):
        Target(make_mlp(), module_types="Linear")
    target = Target(nn.Conv2d(3, 4, 3))
    with pytest.raises(ShapeError, match="non-empty batch"):
        target(torch.randn(0, 3, 5, 5), random_weights(target, batch=0))
    assert target(torch.randn(0, 3, 5, 5), random_weights(target)).shape == (0, 4, 3, 3)


def test_input_dtype_device_and_feature_size_are_named():
    target = Target(make_mlp())
    with pytest.raises(hc.DtypeDeviceError, match="x: expected dtype torch.float32"):
        target(torch.randn(3, 6, dtype=torch.float64), random_weights(target))
    with pytest.raises(ShapeError, match=r"'0.weight'.*expects inputs \(\.\.\., 6\), got \(3, 5\)"):
        target(torch.randn(3, 5), random_weights(target))
    with pytest.raises(ShapeError, match=r"'0.weight'.*expects inputs \(\.\.\., 6\), got \(3, 5\)"):
        target(torch.randn(3, 5), random_weights(target, batch=3))


def test_scalar_conditions_compile_without_host_syncs():
    torch._dynamo.reset()
    hnet = HyperNetwork.build(make_mlp(), hc.ScalarInput(1, 0.0, 1.0), head="once")
    compiled = torch.compile(hnet, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 6)
    torch.testing.assert_close(compiled(x, torch.tensor(0.3)), hnet(x, torch.tensor(0.3)))
