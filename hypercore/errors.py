"""Errors that name what is wrong: which argument, what was expected, what was given.

Every check in hypercore raises one of these *before* the input reaches torch,
so a user sees ``weights['0.weight']: expected shape (64, 64) or (B=32, 64,
64), got (32, 64)`` instead of a stack trace from inside
``torch.nn.functional.linear``. Every error subclasses :class:`HypercoreError`
(a ``ValueError``); a wrong *type* raises :class:`HypercoreTypeError`, which is
also a ``TypeError``.

The ``check_*`` functions below are the reusable checks: each takes the
argument's name first and returns the checked value, so a constructor reads
``self.dim = check_positive_int("dim", dim)``.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

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


class HypercoreTypeError(HypercoreError, TypeError):
    """An argument has the wrong type (also a ``TypeError``)."""


class CheckpointError(HypercoreError):
    """A checkpoint file cannot be written or read (the message names the path)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint file at the path (also a ``FileNotFoundError``)."""


#: Integer dtypes accepted as ids: signed ones (uint8 indexes as a mask, wider
#: unsigned ones do not index at all).
ID_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64)
_MASKS = (torch.bool, torch.uint8)


def shape_str(shape: Sequence[int] | torch.Size) -> str:
    """``(64, 10)`` for a shape, ``(64,)`` for a vector, ``()`` for a scalar."""
    inner = ", ".join(str(int(s)) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def type_name(value: object) -> str:
    """``int``, ``float``, ``str``... for a message; ``None`` for None."""
    return "None" if value is None else type(value).__name__


def check_tensor(name: str, value: object) -> torch.Tensor:
    """Raise :class:`HypercoreTypeError` unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise HypercoreTypeError(f"{name}: expected a torch.Tensor, got {type_name(value)}")
    return value


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """An ``int`` (not a bool, not a float) that is ``>= minimum``; returned as ``int``.

    >>> check_int("dim", 8)
    8
    >>> check_int("dim", 0)
    Traceback (most recent call last):
    ...
    hypercore.errors.HypercoreError: dim: expected an int >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise HypercoreTypeError(
            f"{name}: expected an int >= {minimum}, got {type_name(value)} {value!r}"
        )
    if value < minimum:
        raise HypercoreError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """An ``int >= 1`` (a size, a count)."""
    return check_int(name, value, 1)


def check_int_sequence(name: str, value: Any, minimum: int = 1) -> tuple[int, ...]:
    """A sequence (tuple, list) of ints ``>= minimum``, e.g. hidden widths; returned as a tuple.

    A bare int is refused (write ``(64,)``, not ``64``): it is a common slip.
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        hint = f" (write ({value},) for one layer)" if isinstance(value, numbers.Integral) else ""
        raise HypercoreTypeError(
            f"{name}: expected a sequence of ints >= {minimum} such as (64,), "
            f"got {type_name(value)} {value!r}{hint}"
        )
    return tuple(check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(value))


def check_float(
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
) -> float:
    """A finite real number in ``[low, high]`` (``(low, high]`` with ``low_open``).

    >>> check_float("gain", float("nan"), low=0.0, low_open=True)
    Traceback (most recent call last):
    ...
    hypercore.errors.HypercoreError: gain: expected a finite number > 0.0, got nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise HypercoreTypeError(f"{name}: expected a number, got {type_name(value)} {value!r}")
    value = float(value)
    bounds = []
    if low > -math.inf:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high < math.inf:
        bounds.append(f"<= {high}")
    wanted = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value > high:
        raise HypercoreError(f"{name}: expected {wanted}, got {value}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices`` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise HypercoreError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


def check_finite(name: str, values: torch.Tensor) -> None:
    """Check that every value is finite (one host sync, no loop)."""
    bad = ~torch.isfinite(values)
    if torch.compiler.is_compiling():  # no host sync in a compiled graph
        torch._assert_async(~bad.any(), f"{name}: expected finite values")
        return
    if bool(bad.any()):
        first = float(values[bad].reshape(-1)[0])
        raise HypercoreError(f"{name}: expected finite values, got {first}")


def check_options(what: str, given: Iterable[str], accepted: Sequence[str]) -> None:
    """Refuse keyword options that ``what`` does not take, naming the first and listing the rest.

    Raises :class:`HypercoreTypeError` (an unexpected keyword is a ``TypeError``
    in Python), with a "did you mean" for near misses.
    """
    unknown = [name for name in given if name not in accepted]
    if unknown:
        near = difflib.get_close_matches(unknown[0], accepted, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise HypercoreTypeError(
            f"{unknown[0]}: not an option of {what}; its options are {list(accepted)}{hint}"
        )


def check_in_range(name: str, values: torch.Tensor, low: float, high: float) -> None:
    """Check that every value is finite and in ``[low, high]`` (one host sync, no loop).

    The message names the first offending value and the range.
    """
    bad = ~((values >= low) & (values <= high))  # NaN compares False: it is bad too
    if torch.compiler.is_compiling():  # no host sync in a compiled graph
        torch._assert_async(~bad.any(), f"{name}: expected values in [{low}, {high}]")
        return
    if bool(bad.any()):
        first = float(values[bad].reshape(-1)[0])
        raise HypercoreError(
            f"{name}: expected values in [{low}, {high}], got {first} "
            "(values outside the declared range, or NaN, are refused)"
        )


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


def check_id_dtype(name: str, ids: torch.Tensor) -> None:
    """Ids must be a signed integer tensor: a ``bool`` or ``uint8`` tensor would index
    as a *mask*, a float one is a slip."""
    if ids.dtype not in ID_DTYPES:
        mask = " (bool and uint8 tensors index as masks; use .long())"
        raise DtypeDeviceError(
            f"{name}: expected an integer tensor, got dtype {ids.dtype}"
            + (mask if ids.dtype in _MASKS else "")
        )


def check_task_ids(task: int | torch.Tensor, num_tasks: int, owner: str) -> None:
    """Raise :class:`UnknownTaskError` naming the first id outside ``[0, num_tasks)``.

    ``task`` is an ``int`` or a signed integer tensor (see :func:`check_id_dtype`);
    ids beyond the int64 range are refused without overflowing.
    """
    if isinstance(task, bool) or not isinstance(task, numbers.Integral | torch.Tensor):
        raise HypercoreTypeError(
            f"task: expected an int or an integer tensor, got {type_name(task)}"
        )
    if isinstance(task, numbers.Integral):
        if not 0 <= task < num_tasks:
            raise UnknownTaskError(
                f"task id {task} is out of range: this {owner} has "
                f"num_tasks={num_tasks} (ids 0..{num_tasks - 1})"
            )
        return
    check_id_dtype("task", task)
    ids = task
    bad = (ids < 0) | (ids >= num_tasks)
    if torch.compiler.is_compiling():
        # No host sync inside a compiled graph: a device-side assert (a RuntimeError).
        torch._assert_async(~bad.any(), f"task id out of range [0, {num_tasks}) for {owner}")
        return
    if bool(bad.any()):
        raise UnknownTaskError(
            f"task id {int(ids[bad].reshape(-1)[0])} is out of range: this {owner} has "
            f"num_tasks={num_tasks} (ids 0..{num_tasks - 1})"
        )
