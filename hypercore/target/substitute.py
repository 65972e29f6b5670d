r"""Generated weights travel with the call: the user's module is never changed.

A :class:`Target` runs the user's unmodified module inside a
:class:`WeightSubstitution`, a ``TorchFunctionMode``. While the mode is active
(in the calling thread only: torch keeps the mode stack per thread), every
torch function that receives one of the module's *template* parameters (the
frozen originals of the generated ones, matched by identity) receives the
generated tensor instead. ``nn.Linear.forward`` calls
``F.linear(x, self.weight, self.bias)``; inside the mode that call becomes
``F.linear(x, W, b)`` with the generated ``W`` and ``b``.

Consequences, each tested in ``tests/test_core_safety.py``:

* nothing is written to the module, so concurrent calls on one target from
  several threads are correct, a user's instance-level ``forward`` survives,
  and the module's parameter objects stay its own;
* ``torch.compile(..., fullgraph=True)`` traces through the mode;
* autocast sees ordinary torch calls;
* tied parameters stay tied (one object, one substitution);
* activation checkpointing (``use_reentrant=False``) recomputes under the same
  substitution: the mode marks each checkpoint frame it runs inside so that
  its recomputation re-enters the mode.

Per-sample weights (a leading batch dimension ``B``) are applied in one
batched call: ``F.linear`` and ``F.conv2d`` calls whose template is per-sample
are rerouted to :func:`~hypercore.target.per_sample.linear_per_sample` and
:func:`~hypercore.target.per_sample.conv2d_per_sample`. Targets with other
per-sample layers run under ``torch.func.vmap``, where the mode substitutes the
vmapped slices (recurrent layers, which vmap cannot batch, run through
:mod:`hypercore.target.recurrent`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from hypercore.errors import HypercoreError, ShapeError, shape_str
from hypercore.target.per_sample import conv2d_per_sample, linear_per_sample
from hypercore.target.recurrent import gru_reference, lstm_reference, rnn_reference

_CHECKPOINT_UNPACK = "_checkpoint_hook.__init__.<locals>.unpack_hook"


class WeightSubstitution(TorchFunctionMode):
    """Replace template parameters by generated tensors in every torch call.

    Args:
        templates: the module's template parameters (matched by identity).
        names: their names, for error messages.
        weights: the generated tensor (or structured weight) for each template.
        per_sample: for each, whether it carries a leading batch dimension that
            the batched linear / conv implementations must apply.
        batch: ``B`` when any weight is per sample.
        in_vmap: True inside the ``vmap`` route (recurrent layers then run
            through the reference implementations, which vmap can batch).
    """

    def __init__(
        self,
        templates: Sequence[torch.Tensor],
        names: Sequence[str],
        weights: Sequence[Any],
        per_sample: Sequence[bool],
        batch: int | None = None,
        in_vmap: bool = False,
    ):
        super().__init__()
        self.templates = tuple(templates)
        self.names = tuple(names)
        self.weights = tuple(weights)
        self.per_sample = tuple(per_sample)
        self.batch = batch
        self.in_vmap = in_vmap
        self.any_per_sample = any(self.per_sample)
        # Eager: find templates by identity in a dict; traced (torch.compile): by `is`.
        self.compiling = torch.compiler.is_compiling()
        self._ids = None if self.compiling else {id(t): i for i, t in enumerate(self.templates)}

    def copy(self) -> WeightSubstitution:
        """A fresh mode with the same substitution (a mode is entered once at a time)."""
        return WeightSubstitution(
            self.templates, self.names, self.weights, self.per_sample, self.batch, self.in_vmap
        )

    # -- finding templates ------------------------------------------------------------

    def _index(self, value: torch.Tensor) -> int:
        if not isinstance(value, torch.nn.Parameter):  # templates are the module's Parameters
            return -1
        if self._ids is not None:
            return self._ids.get(id(value), -1)
        for i, template in enumerate(self.templates):
            if value is template:
                return i
        return -1

    def _swap(self, value: Any, used: list[int]) -> Any:
        if isinstance(value, torch.Tensor):
            i = self._index(value)
            if i < 0:
                return value
            used.append(i)
            return self.weights[i]
        if isinstance(value, list | tuple) and value and isinstance(value[0], torch.Tensor):
            return type(value)(self._swap(v, used) for v in value)
        return value

    # -- dispatch ---------------------------------------------------------------------

    def __torch_function__(self, func: Callable, types, args=(), kwargs=None):
        used: list[int] = []
        new_args = tuple([self._swap(a, used) for a in args])
        if kwargs:
            new_kwargs = {k: self._swap(v, used) for k, v in kwargs.items()}
        else:
            new_kwargs = kwargs = {}
        if not used:
            return func(*args, **kwargs)
        if not self.compiling:
            self._follow_checkpoint(used)
        if self.any_per_sample and any(self.per_sample[i] for i in used):
            return self._per_sample_call(func, new_args, new_kwargs, used)
        if func is F.linear:
            self._check_layer_input(func, new_args, used)
        if self.in_vmap and func in _RECURRENT:
            if not isinstance(new_args[2], list | tuple):  # (data, batch_sizes, hx, params, ...)
                raise HypercoreError(
                    "per-sample weights of a recurrent layer run under vmap, which needs padded "
                    "sequences: pass a padded (B, T, F) tensor instead of a PackedSequence"
                )
            return _RECURRENT[func](*new_args, **new_kwargs)
        return func(*new_args, **new_kwargs)

    def _per_sample_call(self, func, args, kwargs, used):
        x = args[0] if args else kwargs.get("input")
        weight = _arg(args, kwargs, 1, "weight")
        bias = _arg(args, kwargs, 2, "bias")
        if func is F.linear:
            self._check_batch(x, used)
            self._check_layer_input(func, args, used)
            return linear_per_sample(x, weight, bias)
        if func is torch.conv2d:
            self._check_batch(x, used)
            return conv2d_per_sample(
                x,
                weight,
                bias,
                stride=_arg(args, kwargs, 3, "stride", 1),
                padding=_arg(args, kwargs, 4, "padding", 0),
                dilation=_arg(args, kwargs, 5, "dilation", 1),
                groups=_arg(args, kwargs, 6, "groups", 1),
            )
        names = [self.names[i] for i in used if self.per_sample[i]]
        raise HypercoreError(
            f"per-sample weights {names} reach {getattr(func, '__name__', func)!r}, which has "
            "no batched implementation; hypercore applies per-sample weights of nn.Linear and "
            "nn.Conv2d layers directly and runs other targets under vmap: use the "
            "weights only through their own layer"
        )

    def _check_batch(self, x: torch.Tensor, used: list[int]) -> None:
        if x.dim() == 0 or x.shape[0] != self.batch:
            name = self.names[used[0]]
            raise ShapeError(
                f"per-sample weights[{name!r}] hold {self.batch} weight sets, but their layer's "
                f"input has shape {shape_str(x.shape)} (expected the batch of {self.batch} "
                "first); a target that reshapes or reorders its batch needs Target(..., "
                "batch_dim=...) and runs each sample under vmap"
            )

    def _check_layer_input(self, func, args, used) -> None:
        x, weight = args[0], args[1]
        if not isinstance(weight, torch.Tensor):
            return
        i = used[0]
        lead = 1 if self.per_sample[i] else 0
        if func is F.linear:
            want = weight.shape[-1]
            if x.dim() == 0 or x.shape[-1] != want:
                raise ShapeError(
                    f"the layer of generated {self.names[i]!r} (weight "
                    f"{shape_str(weight.shape[lead:])}) expects inputs (..., {want}), "
                    f"got {shape_str(x.shape)}"
                )

    # -- activation checkpointing -----------------------------------------------------

    def _follow_checkpoint(self, used: list[int]) -> None:
        """Make the recomputation of an enclosing checkpoint re-enter this substitution."""
        hooks = torch._C._autograd._top_saved_tensors_default_hooks(True)
        if hooks is not None:
            unpack = hooks[1]
            if getattr(unpack, "__qualname__", "").endswith(_CHECKPOINT_UNPACK):
                cells = dict(
                    zip(unpack.__code__.co_freevars, unpack.__closure__ or (), strict=True)
                )
                frame = cells["frame"].cell_contents
                if not getattr(frame, "_hypercore_substitution", False):
                    frame.recompute_fn = _under(self.copy(), frame.recompute_fn)
                    frame._hypercore_substitution = True
            return
        if not torch.is_grad_enabled() and any(
            getattr(self.weights[i], "requires_grad", False) for i in used
        ):
            _refuse_reentrant_checkpoint()


def _under(mode: WeightSubstitution, fn: Callable) -> Callable:
    def recompute(*args, **kwargs):
        with mode.copy():
            return fn(*args, **kwargs)

    return recompute


def _refuse_reentrant_checkpoint() -> None:
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "forward" and "CheckpointFunction" in repr(
            frame.f_locals.get("ctx", "")
        ):
            raise HypercoreError(
                "torch.utils.checkpoint(..., use_reentrant=True) inside a target: its "
                "recomputation cannot see the generated weights; use use_reentrant=False"
            )
        frame = frame.f_back


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


_RECURRENT: dict[Callable, Callable] = {
    torch.lstm: lstm_reference,
    torch.gru: gru_reference,
    torch.rnn_tanh: rnn_reference(torch.tanh),
    torch.rnn_relu: rnn_reference(torch.relu),
}
