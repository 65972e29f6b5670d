"""Fuzz-style checks: every class of bad input gets a hypercore error that names the argument.

Each case is a call that must fail, the error class it must raise (always a
:class:`hypercore.HypercoreError` subclass, so ``except ValueError`` catches it,
and ``except TypeError`` too for wrong types) and a string the message must
contain: the argument's name (or, for files, the path). The cases are grouped
by class of mistake: wrong types, zero or negative sizes, non-finite numbers,
out-of-range values and ids, wrong dtypes, empty batches, options of
``HyperNetwork.build`` and bad checkpoint files.

The target's own input ``x`` is validated by :class:`hypercore.Target` and
tested with it.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import make_convnet, make_mlp
from safetensors.torch import load_file, save_file
from torch import nn

import hypercore as hc
from hypercore.baselines import TaskConcat, TaskWeightTable
from hypercore.bodies import HyperLSTMCell, MLPBody, SupportSetTransformer
from hypercore.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    DtypeDeviceError,
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    UnknownTaskError,
)
from hypercore.heads import (
    ChunkWiseHead,
    ComponentWiseHead,
    KernelTileHead,
    LowRankHead,
    OnceHead,
    ScalingHead,
)
from hypercore.inputs import DataEncoder, NoiseSource, ScalarInput, TaskEmbedding

# -- helpers ----------------------------------------------------------------------------


def mlp_spec() -> hc.WeightSpec:
    return hc.Target(make_mlp()).spec


def conv_spec() -> hc.WeightSpec:
    return hc.Target(nn.Conv2d(4, 4, 3), "weight").spec


def task_hnet() -> hc.HyperNetwork:
    return hc.HyperNetwork.build(make_mlp(), TaskEmbedding(3, 4), body_hidden=(8,))


def build(**options) -> hc.HyperNetwork:
    return hc.HyperNetwork.build(make_mlp(), TaskEmbedding(3, 4), **options)


# -- sizes: every size argument of every constructor, crossed with bad values -------------

#: constructor -> (call with keyword overrides, size arguments it takes)
SIZED: dict[str, tuple[Callable[..., object], list[str]]] = {
    "TaskEmbedding": (
        lambda **kw: TaskEmbedding(**{"num_tasks": 3, "embedding_dim": 4, **kw}),
        ["num_tasks", "embedding_dim"],
    ),
    "DataEncoder": (
        lambda **kw: DataEncoder(**{"in_features": 6, "embedding_dim": 4, **kw}),
        ["in_features", "embedding_dim"],
    ),
    "NoiseSource": (lambda **kw: NoiseSource(**{"embedding_dim": 3, **kw}), ["embedding_dim"]),
    "ScalarInput": (lambda **kw: ScalarInput(**kw), ["num_scalars"]),
    "MLPBody": (lambda **kw: MLPBody(**{"in_features": 4, **kw}), ["in_features"]),
    "HyperLSTMCell": (
        lambda **kw: HyperLSTMCell(**{"input_size": 3, "hidden_size": 4, **kw}),
        ["input_size", "hidden_size", "hyper_size", "embedding_dim"],
    ),
    "SupportSetTransformer": (
        lambda **kw: SupportSetTransformer(**{"feature_dim": 4, "num_classes": 3, **kw}),
        ["feature_dim", "num_classes", "d_model", "num_heads", "num_layers", "dim_feedforward"],
    ),
    "OnceHead": (lambda **kw: OnceHead(**{"in_features": 4, "spec": mlp_spec(), **kw}), []),
    "ChunkWiseHead": (
        lambda **kw: ChunkWiseHead(**{"in_features": 4, "spec": mlp_spec(), **kw}),
        ["in_features", "chunk_size", "embedding_dim", "hidden"],
    ),
    "ComponentWiseHead": (
        lambda **kw: ComponentWiseHead(**{"in_features": 4, "spec": mlp_spec(), **kw}),
        ["embedding_dim", "hidden"],
    ),
    "KernelTileHead": (
        lambda **kw: KernelTileHead(
            **{"in_features": 4, "spec": conv_spec(), "tile_in": 2, "tile_out": 2, **kw}
        ),
        ["tile_in", "tile_out", "embedding_dim", "hidden"],
    ),
    "LowRankHead": (
        lambda **kw: LowRankHead(**{"in_features": 4, "spec": mlp_spec(), **kw}),
        ["rank"],
    ),
    "CoordinateHyperNetwork": (
        lambda **kw: hc.CoordinateHyperNetwork(**{"num_layers": 2, **kw}),
        ["num_layers", "frequencies", "hidden", "layer_dim"],
    ),
    "TaskWeightTable": (
        lambda **kw: TaskWeightTable(**{"target": hc.Target(make_mlp()), "num_tasks": 2, **kw}),
        ["num_tasks"],
    ),
    "TaskConcat": (
        lambda **kw: TaskConcat(**{"module": make_mlp(), "num_tasks": 2, **kw}),
        ["num_tasks"],
    ),
}
SIZED["OnceHead"][1].append("in_features")

#: bad value -> the error class it must raise
BAD_SIZES = {0: HypercoreError, -3: HypercoreError, 2.5: HypercoreTypeError}
BAD_SIZES_TYPED = {"4": HypercoreTypeError, None: HypercoreTypeError, True: HypercoreTypeError}

SIZE_CASES = [
    pytest.param(owner, arg, value, error, id=f"{owner}-{arg}={value!r}")
    for owner, (_, args) in SIZED.items()
    for arg in args
    for value, error in (BAD_SIZES | BAD_SIZES_TYPED).items()
]


@pytest.mark.parametrize("owner,arg,value,error", SIZE_CASES)
def test_sizes_must_be_positive_ints(owner, arg, value, error):
    make, _ = SIZED[owner]
    with pytest.raises(error) as caught:
        make(**{arg: value})
    assert isinstance(caught.value, HypercoreError)
    assert f"{arg}:" in str(caught.value), str(caught.value)


# -- sequences of sizes -------------------------------------------------------------------

SEQUENCE_OWNERS = {
    "MLPBody.hidden": (lambda v: MLPBody(4, v), "hidden"),
    "DataEncoder.hidden": (lambda v: DataEncoder(6, 4, hidden=v), "hidden"),
    "build.body_hidden": (lambda v: build(body_hidden=v), "body_hidden"),
}
BAD_SEQUENCES = {
    "int": (64, HypercoreTypeError),
    "str": ("64", HypercoreTypeError),
    "None": (None, HypercoreTypeError),
    "zero": ((0,), HypercoreError),
    "negative": ((8, -2), HypercoreError),
    "float": ((8.0,), HypercoreTypeError),
    "bool": ((True,), HypercoreTypeError),
}


@pytest.mark.parametrize("bad", list(BAD_SEQUENCES))
@pytest.mark.parametrize("owner", list(SEQUENCE_OWNERS))
def test_sequences_of_sizes(owner, bad):
    make, name = SEQUENCE_OWNERS[owner]
    value, error = BAD_SEQUENCES[bad]
    with pytest.raises(error, match=rf"\b{name}(\[\d+\])?:"):
        make(value)


def test_an_int_where_a_sequence_is_expected_gets_a_hint():
    with pytest.raises(HypercoreTypeError, match=r"body_hidden: .*got int 64 \(write \(64,\)"):
        build(body_hidden=64)


# -- non-finite and out-of-range numbers ---------------------------------------------------

NAN, INF = float("nan"), float("inf")
NUMBER_CASES = {
    "build gain=nan": (lambda: build(gain=NAN), "gain"),
    "build gain=inf": (lambda: build(gain=INF), "gain"),
    "build gain=0": (lambda: build(gain=0.0), "gain"),
    "build gain=-1": (lambda: build(gain=-1.0), "gain"),
    "build gain='2'": (lambda: build(gain="2"), "gain"),
    "HyperNetwork gain=nan": (
        lambda: hc.HyperNetwork(
            task_hnet().target, TaskEmbedding(3, 4), MLPBody(4, (8,)), task_hnet().head, gain=NAN
        ),
        "gain",
    ),
    "NoiseSource std=nan": (lambda: NoiseSource(3, std=NAN), "std"),
    "NoiseSource std=0": (lambda: NoiseSource(3, std=0.0), "std"),
    "NoiseSource std=-1": (lambda: NoiseSource(3, std=-1.0), "std"),
    "TaskEmbedding init_std=inf": (lambda: TaskEmbedding(3, 4, init_std=INF), "init_std"),
    "TaskEmbedding init_std=-1": (lambda: TaskEmbedding(3, 4, init_std=-1.0), "init_std"),
    "ScalarInput low=nan": (lambda: ScalarInput(low=NAN), "low"),
    "ScalarInput high=inf": (lambda: ScalarInput(high=INF), "high"),
    "ScalarInput low='0'": (lambda: ScalarInput(low="0"), "low"),
    "ScalarInput encoding=None": (lambda: ScalarInput(encoding=None), "encoding"),
    "activation typo": (lambda: MLPBody(4, (8,), activation="rleu"), "activation"),
    "DataEncoder activation": (lambda: DataEncoder(6, 4, activation=3), "activation"),
    "SupportSetTransformer d_model % heads": (
        lambda: SupportSetTransformer(4, 3, d_model=30, num_heads=4),
        "d_model",
    ),
    "CoordinateHyperNetwork condition_dim=-1": (
        lambda: hc.CoordinateHyperNetwork(2, condition_dim=-1),
        "condition_dim",
    ),
}


@pytest.mark.parametrize("case", list(NUMBER_CASES))
def test_numbers_must_be_finite_and_in_range(case):
    call, name = NUMBER_CASES[case]
    with pytest.raises(HypercoreError, match=rf"\b{name}:"):
        call()


# -- conditions: task ids, scalars, noise codes, data ----------------------------------------

TASKS = TaskEmbedding(3, 4)
SCALAR = ScalarInput(low=0.0, high=1.0)
NOISE = NoiseSource(3)
DATA = DataEncoder(6, 4, hidden=(5,))

CONDITION_CASES = {
    # task ids: types, dtypes (uint8 and bool index as masks), range, overflow, shape
    "task uint8": (lambda: TASKS(torch.tensor([1, 0, 1], dtype=torch.uint8)), DtypeDeviceError),
    "task bool": (lambda: TASKS(torch.tensor([True, False])), DtypeDeviceError),
    "task float tensor": (lambda: TASKS(torch.tensor([1.0, 0.0])), DtypeDeviceError),
    "task float": (lambda: TASKS(1.0), HypercoreTypeError),
    "task str": (lambda: TASKS("1"), HypercoreTypeError),
    "task None": (lambda: TASKS(None), HypercoreTypeError),
    "task True": (lambda: TASKS(True), HypercoreTypeError),
    "task 3 of 3": (lambda: TASKS(3), UnknownTaskError),
    "task -1": (lambda: TASKS(-1), UnknownTaskError),
    "task 2**63": (lambda: TASKS(2**63), UnknownTaskError),
    "task 2**70": (lambda: TASKS(2**70), UnknownTaskError),
    "task -2**70": (lambda: TASKS(-(2**70)), UnknownTaskError),
    "task int64 max in tensor": (
        lambda: TASKS(torch.tensor([0, 2**63 - 1])),
        UnknownTaskError,
    ),
    "task empty": (lambda: TASKS(torch.zeros(0, dtype=torch.long)), ShapeError),
    "task 2-d": (lambda: TASKS(torch.zeros(2, 2, dtype=torch.long)), ShapeError),
    # scalar conditions: NaN, outside [low, high] (cos/sin would wrap around), types
    "scalar 5.0 on [0, 1]": (lambda: SCALAR(5.0), HypercoreError),
    "scalar -0.1": (lambda: SCALAR(-0.1), HypercoreError),
    "scalar nan": (lambda: SCALAR(NAN), HypercoreError),
    "scalar inf": (lambda: SCALAR(INF), HypercoreError),
    "scalar batch with nan": (lambda: SCALAR(torch.tensor([0.5, NAN])), HypercoreError),
    "scalar identity nan": (lambda: ScalarInput(encoding="identity")(NAN), HypercoreError),
    "scalar str": (lambda: SCALAR("0.5"), HypercoreTypeError),
    "scalar None": (lambda: SCALAR(None), HypercoreTypeError),
    "scalar True": (lambda: SCALAR(True), HypercoreTypeError),
    "scalar empty": (lambda: SCALAR(torch.zeros(0)), ShapeError),
    # noise codes: dtype, shape, count
    "noise float64 codes": (
        lambda: NOISE(torch.randn(2, 3, dtype=torch.float64)),
        DtypeDeviceError,
    ),
    "noise wrong size": (lambda: NOISE(torch.randn(2, 4)), ShapeError),
    "noise empty": (lambda: NOISE(torch.randn(0, 3)), ShapeError),
    "noise 0 samples": (lambda: NOISE(0), HypercoreError),
    "noise str": (lambda: NOISE("2"), HypercoreTypeError),
    # data: dtype, features, empty and 0-d batches, not a tensor
    "data float64": (lambda: DATA(torch.randn(2, 6, dtype=torch.float64)), DtypeDeviceError),
    "data features": (lambda: DATA(torch.randn(2, 5)), ShapeError),
    "data empty batch": (lambda: DATA(torch.randn(0, 6)), ShapeError),
    "data 0-d": (lambda: DATA(torch.tensor(1.0)), ShapeError),
    "data list": (lambda: DATA([[0.0] * 6]), HypercoreTypeError),
    # support-set labels: float or uint8 labels would one-hot wrongly or fail in torch
    "labels float": (
        lambda: SupportSetTransformer(4, 3)(torch.randn(1, 2, 4), torch.zeros(1, 2)),
        DtypeDeviceError,
    ),
    "labels uint8": (
        lambda: SupportSetTransformer(4, 3)(
            torch.randn(1, 2, 4), torch.zeros(1, 2, dtype=torch.uint8)
        ),
        DtypeDeviceError,
    ),
}
CONDITION_NAMES = {"task": "task", "scalar": "condition", "noise": "condition", "data": "x"}


@pytest.mark.parametrize("case", list(CONDITION_CASES))
def test_conditions(case):
    call, error = CONDITION_CASES[case]
    name = CONDITION_NAMES.get(case.split()[0], case.split()[0])
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert isinstance(caught.value, HypercoreError)
    assert name in message, message


def test_scalar_messages_name_the_value_and_the_range():
    with pytest.raises(
        HypercoreError, match=r"condition: expected values in \[0.0, 1.0\], got 5.0"
    ):
        SCALAR(5.0)
    with pytest.raises(HypercoreError, match=r"\[-1.0, 3.0\], got nan"):
        ScalarInput(low=-1, high=3)(torch.tensor([0.0, NAN]))


def test_bad_conditions_through_the_hypernetwork():
    hnet = task_hnet()
    x = torch.randn(4, 6)
    with pytest.raises(DtypeDeviceError, match="index as masks"):
        hnet(x, torch.tensor([1, 0, 1, 1], dtype=torch.uint8))
    with pytest.raises(UnknownTaskError, match="task id 1180591620717411303424"):
        hnet(x, 2**70)
    with pytest.raises(ShapeError, match="task: expected shape"):
        conv = hc.HyperNetwork.build(make_convnet(), TaskEmbedding(2, 4), body_hidden=(8,))
        conv(torch.randn(0, 3, 6, 6), torch.zeros(0, dtype=torch.long))  # empty per-sample conv
    with pytest.raises(ShapeError, match="x: expected a batch"):
        data = hc.HyperNetwork.build(make_convnet(), DataEncoder(108, 4), body_hidden=(8,))
        data(torch.randn(0, 3, 6, 6))


def test_valid_edges_still_work():
    assert SCALAR(0.0).shape == SCALAR(1.0).shape == (2,)  # the range is closed
    assert ScalarInput(encoding="identity")(5.0).tolist() == [5.0]  # identity extrapolates
    assert TASKS(torch.tensor([2, 0], dtype=torch.int32)).shape == (2, 4)
    assert TASKS(torch.tensor(1, dtype=torch.int8)).shape == (4,)
    assert NOISE(torch.randn(3)).shape == (3,)
    assert MLPBody(4, ()).out_features == 4  # no hidden layer: a linear hypernetwork
    assert hc.CoordinateHyperNetwork(1, condition_dim=0).condition_dim == 0


def test_type_errors_are_still_type_errors():
    with pytest.raises(TypeError):
        TASKS("1")
    with pytest.raises(TypeError):
        build(body_hidden=64)
    with pytest.raises(ValueError):
        TASKS("1")


# -- HyperNetwork.build and the constructor ------------------------------------------------


def test_unknown_head_option_is_named_with_the_accepted_ones():
    with pytest.raises(HypercoreTypeError) as caught:
        build(head="chunk", chunksize=16)
    message = str(caught.value)
    assert message.startswith("chunksize: not an option of head='chunk' (ChunkWiseHead)")
    assert "['chunk_size', 'embedding_dim', 'hidden', 'activation']" in message
    assert "did you mean 'chunk_size'" in message
    with pytest.raises(HypercoreTypeError, match=r"rank: not an option of head='once'.*\[\]"):
        build(rank=4)
    with pytest.raises(HypercoreTypeError, match="bodyhidden: not an option"):
        build(bodyhidden=(8,))  # a typo of build's own option lands here too


BUILD_CASES = {
    "include with a Target": (
        lambda: hc.HyperNetwork.build(hc.Target(make_mlp()), TaskEmbedding(3, 4), include="0.*"),
        HypercoreError,
        "include",
    ),
    "module not a module": (
        lambda: hc.HyperNetwork.build("mlp", TaskEmbedding(3, 4)),
        HypercoreTypeError,
        "module",
    ),
    "conditioner not a conditioner": (
        lambda: hc.HyperNetwork.build(make_mlp(), 5),
        HypercoreTypeError,
        "conditioner",
    ),
    "head unknown": (lambda: build(head="twice"), HypercoreError, "head"),
    "head not a string": (lambda: build(head=["once"]), HypercoreError, "head"),
    "init typo": (lambda: build(init="hyperfan"), HypercoreError, "init"),
    "HyperNetwork target": (
        lambda: hc.HyperNetwork(make_mlp(), TaskEmbedding(3, 4), MLPBody(4), None),
        HypercoreTypeError,
        "target",
    ),
    "HyperNetwork body": (
        lambda: hc.HyperNetwork(hc.Target(make_mlp()), TaskEmbedding(3, 4), "mlp", None),
        HypercoreTypeError,
        "body",
    ),
    "HyperNetwork head": (
        lambda: hc.HyperNetwork(hc.Target(make_mlp()), TaskEmbedding(3, 4), MLPBody(4), "once"),
        HypercoreTypeError,
        "head",
    ),
    "head spec not a WeightSpec": (lambda: OnceHead(4, {"w": (3, 3)}), HypercoreTypeError, "spec"),
    "DataEncoder encoder not a module": (
        lambda: DataEncoder(6, 6, encoder=lambda x: x),
        HypercoreTypeError,
        "encoder",
    ),
}


@pytest.mark.parametrize("case", list(BUILD_CASES))
def test_build_and_construction(case):
    call, error, name = BUILD_CASES[case]
    with pytest.raises(error, match=rf"\b{name}:"):
        call()


def test_build_with_a_target_and_no_include_uses_the_targets_selection():
    target = hc.Target(make_mlp(), "*.weight")
    hnet = hc.HyperNetwork.build(target, TaskEmbedding(3, 4), body_hidden=(8,))
    assert hnet.target.names == ["0.weight", "2.weight"]
    assert hc.HyperNetwork.build(make_mlp(), TaskEmbedding(3, 4)).target.names == [
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    ]


def test_scaling_head_options_are_empty_and_checked():
    assert ScalingHead.options() == []
    assert ChunkWiseHead.options() == ["chunk_size", "embedding_dim", "hidden", "activation"]


# -- DataEncoder around a module without tensors -------------------------------------------


def test_data_encoder_around_a_parameterless_module():
    encoder = DataEncoder(6, 6, encoder=nn.Identity())
    hnet = hc.HyperNetwork.build(make_mlp(), encoder, head="chunk", chunk_size=16)
    x = torch.randn(5, 6)
    assert hnet(x).shape == (5, 3)
    hnet = hnet.double()  # the encoder's dtype follows .to() through its buffer
    assert encoder.example_condition(2).dtype == torch.float64
    assert hnet(x.double()).dtype == torch.float64


# -- checkpoint files -----------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path) -> Path:
    path = tmp_path / "h.safetensors"
    hc.save(task_hnet(), path)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _with_metadata(tmp_path: Path, metadata: dict[str, str]) -> Path:
    path = tmp_path / "meta.safetensors"
    save_file({"x": torch.zeros(2)}, str(path), metadata=metadata)
    return path


FILE_CASES = {
    "save into a missing folder": (
        lambda tmp, saved: hc.save(task_hnet(), tmp / "no" / "such" / "h.safetensors"),
        CheckpointError,
        "does not exist",
    ),
    "save onto a folder": (lambda tmp, saved: hc.save(task_hnet(), tmp), CheckpointError, "folder"),
    "save something else": (
        lambda tmp, saved: hc.save(make_mlp(), tmp / "m.safetensors"),
        HypercoreTypeError,
        "hnet:",
    ),
    "load a missing file": (
        lambda tmp, saved: hc.load(tmp / "missing.safetensors", make_mlp()),
        CheckpointNotFoundError,
        "no such checkpoint file",
    ),
    "load a folder": (lambda tmp, saved: hc.load(tmp, make_mlp()), CheckpointError, "folder"),
    "load garbage": (
        lambda tmp, saved: hc.load(_write(tmp / "g.safetensors", b"hello world!"), make_mlp()),
        CheckpointError,
        "not a safetensors file",
    ),
    "load an empty file": (
        lambda tmp, saved: hc.load(_write(tmp / "e.safetensors", b""), make_mlp()),
        CheckpointError,
        "not a safetensors file",
    ),
    "load a pickle": (
        lambda tmp, saved: (
            torch.save({"a": torch.zeros(2)}, tmp / "p.pt"),
            hc.load(tmp / "p.pt", make_mlp()),
        ),
        CheckpointError,
        "not a safetensors file",
    ),
    "load a truncated checkpoint": (
        lambda tmp, saved: hc.load(
            _write(tmp / "t.safetensors", saved.read_bytes()[: saved.stat().st_size // 2]),
            make_mlp(),
        ),
        CheckpointError,
        "t.safetensors",
    ),
    "load a foreign safetensors file": (
        lambda tmp, saved: hc.load(_with_metadata(tmp, {}), make_mlp()),
        CheckpointError,
        "not a hypercore checkpoint",
    ),
    "metadata not JSON": (
        lambda tmp, saved: hc.load(_with_metadata(tmp, {"hypercore": "{oops"}), make_mlp()),
        CheckpointError,
        "not JSON",
    ),
    "unknown format": (
        lambda tmp, saved: hc.load(
            _with_metadata(tmp, {"hypercore": json.dumps({"format": 99, "config": {}})}),
            make_mlp(),
        ),
        CheckpointError,
        "format 99",
    ),
    "config lacks keys": (
        lambda tmp, saved: hc.load(
            _with_metadata(tmp, {"hypercore": json.dumps({"format": 1, "config": {}})}),
            make_mlp(),
        ),
        CheckpointError,
        "lacks",
    ),
    "load with another architecture": (
        lambda tmp, saved: hc.load(saved, make_mlp((6, 9, 3))),
        CheckpointError,
        "h.safetensors",
    ),
    "load with a module that is not one": (
        lambda tmp, saved: hc.load(saved, "mlp"),
        HypercoreTypeError,
        "module:",
    ),
    "load onto an absent CUDA device": (
        lambda tmp, saved: hc.load(saved, make_mlp(), device=f"cuda:{torch.cuda.device_count()}"),
        DtypeDeviceError,
        "device:",
    ),
    "load onto no device": (
        lambda tmp, saved: hc.load(saved, make_mlp(), device="gpu"),
        HypercoreError,
        "device:",
    ),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_files(case, tmp_path, saved):
    call, error, text = FILE_CASES[case]
    with pytest.raises(error) as caught:
        call(tmp_path, saved)
    assert isinstance(caught.value, HypercoreError)
    assert text in str(caught.value), str(caught.value)


def test_file_errors_name_the_path(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(CheckpointError, match=str(path)):
        hc.read_config(path)
    with pytest.raises(FileNotFoundError):  # a missing file is still a FileNotFoundError
        hc.load(tmp_path / "missing.safetensors", make_mlp())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_loading_onto_cuda_without_cuda(saved):
    with pytest.raises(DtypeDeviceError, match="CUDA is not available on this machine"):
        hc.load(saved, make_mlp(), device="cuda")


# -- checkpoints keep every dtype --------------------------------------------------------------


@pytest.mark.parametrize("module_dtype", [torch.float64, torch.float32])
def test_float64_checkpoint_round_trips_its_dtype(tmp_path, module_dtype):
    hnet = hc.HyperNetwork.build(
        make_mlp(), ScalarInput(), head="chunk", chunk_size=8, body_hidden=(5,)
    ).double()
    path = tmp_path / "h64.safetensors"
    hc.save(hnet, path)
    loaded = hc.load(path, make_mlp().to(module_dtype))
    for name, tensor in loaded.state_dict().items():
        assert tensor.dtype == hnet.state_dict()[name].dtype, name
        assert torch.equal(tensor, hnet.state_dict()[name]), name
    assert loaded.conditioner._anchor.dtype == torch.float64  # non-persistent buffers too
    c = torch.rand(4, dtype=torch.float64)
    x = torch.randn(4, 6, dtype=torch.float64)
    assert torch.equal(loaded(x, c), hnet(x, c))


def test_mixed_dtype_checkpoint_keeps_each_dtype(tmp_path):
    hnet = task_hnet()
    hnet.target.module.double()  # the target's own tensors in float64, the rest in float32
    path = tmp_path / "mixed.safetensors"
    hc.save(hnet, path)
    loaded = hc.load(path, make_mlp())
    assert {n: t.dtype for n, t in loaded.state_dict().items()} == {
        n: t.dtype for n, t in hnet.state_dict().items()
    }


def test_checkpoints_are_plain_safetensors_both_ways(tmp_path):
    """hypercore writes the format itself (safetensors' torch writer needs NumPy):
    safetensors reads what it writes, and hypercore loads what safetensors writes."""
    hnet = task_hnet()
    path = tmp_path / "h.safetensors"
    hc.save(hnet, path)
    tensors = load_file(str(path))
    state = hnet.state_dict()
    assert tensors.keys() == state.keys()
    assert all(torch.equal(tensors[k], state[k]) for k in state)
    (header_size,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert header_size % 8 == 0
    # the same tensors and metadata written by safetensors itself
    with open(path, "rb") as f:
        f.seek(8)
        metadata = json.loads(f.read(header_size))["__metadata__"]
    again = tmp_path / "by-safetensors.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(again), metadata=metadata)
    loaded = hc.load(again, make_mlp())
    assert all(torch.equal(loaded.state_dict()[k], state[k]) for k in state)


def test_tiny_and_empty_tensors_round_trip(tmp_path):
    from hypercore.checkpoint import write_safetensors

    tensors = {
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(math.pi, dtype=torch.float64),
        "flags": torch.tensor([True, False, True]),
        "half": torch.randn(5, dtype=torch.bfloat16),
        "ids": torch.arange(7, dtype=torch.int16),
    }
    path = tmp_path / "t.safetensors"
    write_safetensors(tensors, path, {"k": "v"})
    back = load_file(str(path))
    assert all(torch.equal(back[k], v) and back[k].dtype == v.dtype for k, v in tensors.items())
