"""Save and load hypernetworks as safetensors: tensors plus a JSON configuration, no pickled code.

The file holds every tensor of ``hnet.state_dict()`` (including the target
module's own parameters and buffers), each in its own dtype, and, in its
metadata, the hypernetwork's configuration (:meth:`HyperNetwork.config`).
Loading rebuilds the conditioner, body and head from that configuration; the
target module's *architecture* is code, so the caller passes a module of the
same architecture.

The file is written here, in the `safetensors format
<https://github.com/huggingface/safetensors#format>`_ (an 8-byte little-endian
header size, a JSON header of names, dtypes, shapes and byte offsets, then the
raw bytes), because ``safetensors.torch``'s writer needs NumPy, which hypercore
does not otherwise require; it is read with ``safetensors.safe_open``.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from hypercore.config import build
from hypercore.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    DtypeDeviceError,
    HypercoreError,
    HypercoreTypeError,
)
from hypercore.hypernetwork import HyperNetwork
from hypercore.stability import spectral_normalize
from hypercore.target import Target

FORMAT_VERSION = 1
METADATA_KEY = "hypercore"
#: What a configuration must hold for :func:`load` to rebuild the hypernetwork.
CONFIG_KEYS = ("target", "conditioner", "body", "head", "init", "gain")

#: torch dtype -> safetensors dtype name.
SAFETENSORS_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.complex64: "C64",
}


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]):
    """Write CPU tensors and string metadata as a safetensors file, atomically.

    The tensors are laid out one after another in name order; the header is
    padded with spaces to a multiple of 8 bytes (as safetensors does).
    """
    if sys.byteorder != "little":
        raise CheckpointError(f"{path}: saving needs a little-endian machine")
    header: dict[str, Any] = {"__metadata__": metadata}
    items = sorted(tensors.items())
    offset = 0
    for name, t in items:
        if t.dtype not in SAFETENSORS_DTYPES:
            raise HypercoreError(
                f"{name}: cannot save dtype {t.dtype}; supported: "
                f"{[str(d) for d in SAFETENSORS_DTYPES]}"
            )
        size = t.numel() * t.element_size()
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for _, t in items:
                if t.numel():  # the bytes of a contiguous CPU tensor, without a copy
                    f.write(
                        (ctypes.c_ubyte * (t.numel() * t.element_size())).from_address(t.data_ptr())
                    )
        os.replace(partial, path)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot write the checkpoint ({err})") from None
    finally:
        partial.unlink(missing_ok=True)


def save(hnet: HyperNetwork, path: str | Path) -> None:
    """Write ``hnet`` (tensors and configuration) to ``path`` (a ``.safetensors`` file).

    Raises:
        CheckpointError: when ``path``'s folder does not exist or ``path`` is a folder.
    """
    from hypercore import __version__

    if not isinstance(hnet, HyperNetwork):
        raise HypercoreTypeError(f"hnet: expected a HyperNetwork, got {type(hnet).__name__}")
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: expected a file path to save to, got a folder")
    if not path.parent.is_dir():
        raise CheckpointError(
            f"{path}: cannot save, the folder {path.parent} does not exist (create it first)"
        )
    meta = {"format": FORMAT_VERSION, "hypercore_version": __version__, "config": hnet.config()}
    tensors = {k: v.detach().cpu().contiguous() for k, v in hnet.state_dict().items()}
    write_safetensors(tensors, path, {METADATA_KEY: json.dumps(meta)})


def _metadata(path: Path) -> dict[str, str]:
    if not path.exists():
        raise CheckpointNotFoundError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: expected a checkpoint file, got a folder")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as err:  # safetensors' own error types vary between versions
        raise CheckpointError(f"{path}: not a safetensors file, or a damaged one ({err})") from None


def read_config(path: str | Path) -> dict[str, Any]:
    """The configuration stored in a checkpoint, without loading its tensors.

    Raises:
        CheckpointError: naming ``path``, when it is not a safetensors file,
            holds no hypercore configuration or a damaged one.
    """
    path = Path(path)
    metadata = _metadata(path)
    if METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{path}: not a hypercore checkpoint (no {METADATA_KEY!r} metadata; "
            f"found {sorted(metadata) or 'none'})"
        )
    try:
        meta = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: its hypercore configuration is not JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(
            f"{path}: checkpoint format {found} is not supported "
            f"(this hypercore reads format {FORMAT_VERSION})"
        )
    config = meta.get("config")
    missing = [k for k in CONFIG_KEYS if not isinstance(config, dict) or k not in config]
    if missing:
        raise CheckpointError(f"{path}: the hypercore configuration lacks {missing}")
    assert isinstance(config, dict)
    return config


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; a clear error for a CUDA device this machine lacks."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise HypercoreError(
            f"device: expected a torch device such as 'cpu' or 'cuda:0', got {device!r} ({err})"
        ) from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DtypeDeviceError(
                f"device: {str(resolved)!r} requested, but CUDA is not available on this "
                "machine (load with device='cpu')"
            )
        if resolved.index is not None and resolved.index >= count:
            raise DtypeDeviceError(
                f"device: {str(resolved)!r} requested, but this machine has {count} CUDA "
                f"device(s): cuda:0..cuda:{count - 1}"
            )
    return resolved


def _module_types(names: list[str]) -> tuple[type[nn.Module], ...] | None:
    types = []
    for name in names:
        t = getattr(nn, name, None)
        if not (isinstance(t, type) and issubclass(t, nn.Module)):
            raise HypercoreError(
                f"module type {name!r} is not in torch.nn; pass target=Target(...) when loading"
            )
        types.append(t)
    return tuple(types) or None


def load(
    path: str | Path,
    module: nn.Module | None = None,
    *,
    target: Target | None = None,
    conditioner: nn.Module | None = None,
    body: nn.Module | None = None,
    head: nn.Module | None = None,
    device: str | torch.device = "cpu",
) -> HyperNetwork:
    """Rebuild a hypernetwork saved with :func:`save`.

    Args:
        path: the checkpoint file.
        module: a target module of the saved architecture (its values are
            overwritten by the checkpoint's).
        target, conditioner, body, head: parts to use instead of rebuilding
            them from the configuration (needed for custom parts).
        device: where to put the tensors (checked first: a CUDA device this
            machine lacks raises :class:`~hypercore.DtypeDeviceError`).

    Returns:
        The hypernetwork, with every tensor in the dtype it was saved in.

    Raises:
        CheckpointError: when the file is missing, not a hypercore checkpoint,
            or its tensors do not match the rebuilt hypernetwork (names listed).
    """
    device = check_device(device)
    path = Path(path)
    config = read_config(path)
    if module is not None and not isinstance(module, nn.Module):
        raise HypercoreTypeError(f"module: expected an nn.Module, got {type(module).__name__}")
    if target is None and module is None:
        raise HypercoreError("load: pass the target module (module=...) or target=Target(...)")
    try:
        hnet = _rebuild(config, module, target, conditioner, body, head)
    except (HypercoreError, TypeError, KeyError) as err:  # KeyError, TypeError: a damaged config
        raise CheckpointError(
            f"{path}: cannot rebuild the hypernetwork from its configuration: {err}"
        ) from err
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as err:  # a damaged data section
        raise CheckpointError(f"{path}: cannot read its tensors ({err})") from None
    hnet.to(device)
    _take_dtypes(hnet, tensors)
    hint = "is the target module of the saved architecture?"
    try:
        missing, unexpected = hnet.load_state_dict(tensors, strict=False)
    except RuntimeError as err:  # size mismatches
        details = str(err).split("\n", 1)[-1].strip()
        raise CheckpointError(
            f"{path}: tensors do not match the rebuilt hypernetwork ({hint}): {details}"
        ) from None
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: tensors do not match the rebuilt hypernetwork ({hint}): "
            f"missing {missing}, unexpected {unexpected}"
        )
    return hnet


def _rebuild(config, module, target, conditioner, body, head) -> HyperNetwork:
    """The hypernetwork that ``config`` describes, with the parts given instead of built."""
    if target is None:
        sel = config["target"]
        target = Target(
            module,
            sel["include"],
            exclude=sel["exclude"] or None,
            module_types=_module_types(sel["module_types"]),
            batch_dim=sel.get("batch_dim"),
        )
    with torch.random.fork_rng(devices=[]):  # building runs an init; keep the caller's RNG
        conditioner = conditioner or build(config["conditioner"])
        body = body or build(config["body"], in_features=conditioner.out_features)
        head = head or build(config["head"], in_features=body.out_features, spec=target.spec)
        hnet = HyperNetwork(
            target, conditioner, body, head, init=config["init"], gain=config["gain"]
        )
        if config.get("spectral_norm"):
            spectral_normalize(hnet)
    return hnet


def _take_dtypes(hnet: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Give ``hnet``'s tensors the dtypes of the saved ones (``load_state_dict`` would
    cast the saved values to the freshly built float32 instead).

    When every saved floating tensor has one dtype, the whole module moves to it
    (so do non-persistent buffers); otherwise each tensor takes its own. Tied
    parameters are one object and stay tied.
    """
    floating = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(floating) == 1:
        hnet.to(dtype=floating.pop())
    own = hnet.state_dict(keep_vars=True)
    for name, saved in tensors.items():
        mine = own.get(name)
        if mine is None:
            continue
        if mine.is_floating_point() and saved.is_floating_point() and mine.dtype != saved.dtype:
            mine.data = mine.data.to(saved.dtype)
