"""Save and load hypernetworks as safetensors: tensors plus a JSON configuration, no pickled code.

The file holds every tensor of ``hnet.state_dict()`` (including the target
module's own parameters and buffers) and, in its metadata, the hypernetwork's
configuration (:meth:`HyperNetwork.config`). Loading rebuilds the conditioner,
body and head from that configuration; the target module's *architecture* is
code, so the caller passes a module of the same architecture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from hypercore.config import build
from hypercore.errors import HypercoreError
from hypercore.hypernetwork import HyperNetwork
from hypercore.stability import spectral_normalize
from hypercore.target import Target

FORMAT_VERSION = 1
METADATA_KEY = "hypercore"


def save(hnet: HyperNetwork, path: str | Path) -> None:
    """Write ``hnet`` (tensors and configuration) to ``path`` (a ``.safetensors`` file)."""
    from hypercore import __version__

    meta = {"format": FORMAT_VERSION, "hypercore_version": __version__, "config": hnet.config()}
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in hnet.state_dict().items()}
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(meta)})


def read_config(path: str | Path) -> dict[str, Any]:
    """The configuration stored in a checkpoint, without loading its tensors."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if METADATA_KEY not in metadata:
        raise HypercoreError(f"{path}: not a hypercore checkpoint (no {METADATA_KEY!r} metadata)")
    meta = json.loads(metadata[METADATA_KEY])
    if meta.get("format") != FORMAT_VERSION:
        raise HypercoreError(
            f"{path}: checkpoint format {meta.get('format')} is not supported "
            f"(this hypercore reads format {FORMAT_VERSION})"
        )
    return meta["config"]


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
        device: where to put the tensors.

    Raises:
        HypercoreError: when the file is not a hypercore checkpoint or its
            tensors do not match the rebuilt hypernetwork (names listed).
    """
    config = read_config(path)
    if target is None:
        if module is None:
            raise HypercoreError("load: pass the target module (module=...) or target=Target(...)")
        sel = config["target"]
        target = Target(
            module,
            sel["include"],
            exclude=sel["exclude"] or None,
            module_types=_module_types(sel["module_types"]),
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
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    hnet.to(device)
    hint = "is the target module of the saved architecture?"
    try:
        missing, unexpected = hnet.load_state_dict(tensors, strict=False)
    except RuntimeError as err:  # size mismatches
        details = str(err).split("\n", 1)[-1].strip()
        raise HypercoreError(
            f"{path}: tensors do not match the rebuilt hypernetwork ({hint}): {details}"
        ) from None
    if missing or unexpected:
        raise HypercoreError(
            f"{path}: tensors do not match the rebuilt hypernetwork ({hint}): "
            f"missing {missing}, unexpected {unexpected}"
        )
    return hnet
