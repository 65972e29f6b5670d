"""Errors that name what is wrong: which argument, what was expected, what was given.

Every check in hypercore raises one of these (or a plain ``TypeError``) *before*
the input reaches torch, so a user sees ``weights['0.weight']: expected shape
(64, 64) or (B=32, 64, 64), got (32, 64)`` instead of a stack trace from inside
``torch.nn.functional.linear``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class HypercoreError(ValueError):
    """Base class of hypercore's input errors (a ``ValueError``)."""


class ShapeError(HypercoreError):
    """A tensor has the wrong shape."""


class WeightsMismatchError(HypercoreError):
    """A set of generated weights does not match the target's selected parameters."""


class UnknownTaskError(HypercoreError, IndexError):
    """A task id is outside ``[0, num_tasks)``."""


class DtypeDeviceError(HypercoreError):
    """A tensor has the wrong dtype or lives on the wrong device."""


def shape_str(shape: Sequence[int] | torch.Size) -> str:
    """``(64, 10)`` for a shape, ``(64,)`` for a vector, ``()`` for a scalar."""
    inner = ", ".join(str(int(s)) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def check_tensor(name: str, value: object) -> torch.Tensor:
    """Raise ``TypeError`` unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def check_features(name: str, x: torch.Tensor, features: int) -> None:
    """Check that ``x`` has shape ``(B, features)``."""
    check_tensor(name, x)
    if x.dim() != 2 or x.shape[1] != features:
        raise ShapeError(f"{name}: expected shape (B, {features}), got {shape_str(x.shape)}")


def check_like(name: str, value: torch.Tensor, reference: torch.Tensor) -> None:
    """Check that ``value`` has the dtype and device of ``reference``."""
    if value.dtype != reference.dtype:
        raise DtypeDeviceError(f"{name}: expected dtype {reference.dtype}, got {value.dtype}")
    if value.device != reference.device:
        raise DtypeDeviceError(
            f"{name}: expected device {reference.device}, got {value.device} "
            "(move the hypernetwork and its inputs to one device with .to(device))"
        )


def check_task_ids(task: int | torch.Tensor, num_tasks: int, owner: str) -> None:
    """Raise :class:`UnknownTaskError` naming the first id outside ``[0, num_tasks)``."""
    ids = torch.as_tensor(task)
    bad = (ids < 0) | (ids >= num_tasks)
    if bool(bad.any()):
        raise UnknownTaskError(
            f"task id {int(ids[bad].reshape(-1)[0])} is out of range: this {owner} has "
            f"num_tasks={num_tasks} (ids 0..{num_tasks - 1})"
        )
