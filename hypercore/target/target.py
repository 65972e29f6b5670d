"""The target network: an unmodified ``nn.Module`` whose chosen weights are generated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.func import vmap
from torch.nn.modules.batchnorm import _BatchNorm

from hypercore.errors import (
    DtypeDeviceError,
    HypercoreError,
    ShapeError,
    WeightsMismatchError,
    check_like,
    shape_str,
)
from hypercore.target.selection import Patterns, select_parameters
from hypercore.target.spec import WeightSpec
from hypercore.target.structured import StructuredWeight
from hypercore.target.substitute import WeightSubstitution

#: Layer types whose per-sample weights are applied by batched kernels directly
#: (``baddbmm`` / grouped convolution); any other per-sample layer runs under vmap.
FAST_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)


class Target(nn.Module):
    r"""Wrap any ``nn.Module`` so that some of its parameters come from outside.

    The selected parameters (see :func:`~hypercore.target.selection.select_parameters`)
    are *generated*: :meth:`forward` takes them as a dict of tensors and runs the
    module with them. The weights travel with the call
    (:class:`~hypercore.target.substitute.WeightSubstitution`): nothing is
    written into the module, so one target serves several threads at once,
    ``torch.compile`` traces it, and the user's own ``forward`` methods stay. The
    module's own copies of the generated parameters are frozen
    (``requires_grad=False``, the one change made to it) and serve only as a
    template (shape, dtype, device, and the standard initial values used by
    bias-HyperInit). Every other parameter stays an ordinary trainable one. A
    tied parameter (one tensor under several names) is generated once, under
    its first name, and stays tied.

    Each generated tensor may be

    * **shared** by the batch: shape ``shape``; or
    * **per sample**: shape ``(B, *shape)``, where ``B = x.shape[0]``; or
    * **structured** (:class:`~hypercore.target.structured.RowScaled`,
      :class:`~hypercore.target.structured.LowRank`): a shared base modulated
      by a few numbers, shared or per sample; linear and conv layers apply
      them without building per-sample matrices.

    Per-sample weights are applied in one batched call, never a loop over
    samples: ``nn.Linear`` through ``bmm``/``baddbmm``, ``nn.Conv2d`` through a
    grouped convolution, and any other module under ``torch.func.vmap`` (each
    sample as a batch of one; recurrent layers through plain-op reference
    implementations, dropout with independent masks per sample). On the vmap
    route, further positional tensor arguments (e.g. the key and value of an
    attention layer) are split along the batch dimension like ``x``; keyword
    arguments are shared by the batch.

    The batch dimension is never guessed: it is ``batch_dim`` (default 0); a
    module holding a layer with ``batch_first=False`` (a sequence-first RNN or
    attention layer) must say ``batch_dim=`` before it takes per-sample weights.
    Outputs carry the batch at the same dimension, except the hidden states
    returned by a bare ``nn.RNN``/``nn.LSTM``/``nn.GRU`` target (dimension 1,
    as PyTorch returns them).

    Buffers: the module's buffers are used as they are. With shared weights and
    on the fast paths, batch-norm layers see the whole batch and update their
    running statistics as usual. The ``vmap`` route runs each sample as a batch
    of one, where training-mode batch norm is meaningless, so it raises an error
    (call ``.eval()`` or keep batch-norm parameters ungenerated).

    Args:
        module: the target network; not modified apart from freezing the
            selected parameters.
        include, exclude, module_types: which parameters to generate (glob
            patterns on names, and owning module types).
        batch_dim: where the batch is in the module's input (and outputs);
            ``None`` (default) means 0, unless the module holds a sequence-first
            layer, whose per-sample use then asks for it.

    Example:
        >>> mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> target = Target(mlp, "*.weight")   # biases stay trainable
        >>> target.spec.names
        ['0.weight', '2.weight']
    """

    def __init__(
        self,
        module: nn.Module,
        include: Patterns | None = "*",
        *,
        exclude: Patterns | None = None,
        module_types: type[nn.Module] | tuple[type[nn.Module], ...] | None = None,
        batch_dim: int | None = None,
    ):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module: expected an nn.Module, got {type(module).__name__}")
        if batch_dim is not None and (
            isinstance(batch_dim, bool) or not isinstance(batch_dim, int) or batch_dim < 0
        ):
            raise HypercoreError(f"batch_dim: expected an int >= 0 or None, got {batch_dim!r}")
        self.module = module
        types = (
            ()
            if module_types is None
            else (module_types if isinstance(module_types, tuple) else (module_types,))
        )
        self.spec: WeightSpec = select_parameters(
            module, include, exclude=exclude, module_types=module_types
        )
        #: The selection, as JSON-able values (checkpoints store it).
        self.selection: dict[str, Any] = {
            "include": [include] if isinstance(include, str) else list(include or ["*"]),
            "exclude": [exclude] if isinstance(exclude, str) else list(exclude or []),
            "module_types": [t.__name__ for t in types],
        }
        if batch_dim is not None:
            self.selection["batch_dim"] = batch_dim
        # (owner module, local name) of each generated parameter: its template is
        # looked up at every call, so .to(), load_state_dict and the like stay in force.
        self._slots: tuple[tuple[nn.Module, str], ...] = tuple(
            (module.get_submodule(owner), local)
            for owner, _, local in (info.name.rpartition(".") for info in self.spec)
        )
        for owner, local in self._slots:
            _param(owner, local).requires_grad_(False)
        self._fast = all(type(owner) in FAST_LAYERS for owner, _ in self._slots)
        sequence_first = any(getattr(m, "batch_first", True) is False for m in module.modules())
        default_dim = None if sequence_first else 0
        self.batch_dim: int | None = batch_dim if batch_dim is not None else default_dim
        self._output_dims = _output_dims(module, self.batch_dim)

    @property
    def names(self) -> list[str]:
        """Names of the generated parameters, in generation order."""
        return self.spec.names

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of the generated parameters."""
        return self.spec.shapes

    @property
    def num_generated(self) -> int:
        """How many numbers one complete weight set holds."""
        return self.spec.total

    def _templates(self) -> tuple[torch.Tensor, ...]:
        return tuple(_param(owner, local) for owner, local in self._slots)

    def template(self) -> dict[str, torch.Tensor]:
        """The module's own values of the generated parameters (detached copies)."""
        return {n: t.detach().clone() for n, t in zip(self.names, self._templates(), strict=True)}

    def extra_repr(self) -> str:
        return f"generated={self.spec.names}, numel={self.spec.total}"

    # -- checking ---------------------------------------------------------------

    def _sort_weights(
        self,
        weights: Mapping[str, torch.Tensor],
        batch: int | None,
        templates: tuple[torch.Tensor, ...] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Check ``weights`` against the spec; split into shared and per-sample."""
        if not isinstance(weights, Mapping):
            raise TypeError(
                f"weights: expected a dict {{name: tensor}} with keys {self.names}, "
                f"got {type(weights).__name__}"
            )
        if len(weights) != len(self.spec) or any(n not in weights for n in self.spec.by_name):
            missing = [n for n in self.names if n not in weights]
            unexpected = [n for n in weights if n not in self.spec.by_name]
            raise WeightsMismatchError(
                f"weights: keys do not match the target's generated parameters "
                f"{self.names}: missing {missing}, unexpected {unexpected}"
            )
        shared: dict[str, torch.Tensor] = {}
        per_sample: dict[str, torch.Tensor] = {}
        if templates is None:
            templates = self._templates()
        for info, own in zip(self.spec, templates, strict=True):
            w = weights[info.name]
            if isinstance(w, StructuredWeight):
                b = w.validate(f"weights[{info.name!r}]", info.shape, own)
                if b is None:
                    shared[info.name] = w.dense()
                elif b != batch:
                    raise ShapeError(
                        f"weights[{info.name!r}]: per-sample factors for {b} samples but "
                        f"the input batch has {batch}"
                    )
                else:
                    per_sample[info.name] = w
                continue
            if not isinstance(w, torch.Tensor):
                raise TypeError(
                    f"weights[{info.name!r}]: expected a torch.Tensor or a structured weight, "
                    f"got {type(w).__name__}"
                )
            if w.device != own.device or (w.dtype != own.dtype and not _autocast_enabled()):
                check_like(f"weights[{info.name!r}]", w, own)
            if w.shape == info.shape:
                shared[info.name] = w
            elif w.dim() == len(info.shape) + 1 and w.shape[1:] == info.shape:
                if batch is None or w.shape[0] != batch:
                    raise ShapeError(
                        f"weights[{info.name!r}]: per-sample weights for {w.shape[0]} samples "
                        f"but the input batch has {batch} (shape {shape_str(w.shape)})"
                    )
                per_sample[info.name] = w
            else:
                raise ShapeError(
                    f"weights[{info.name!r}]: expected shape {shape_str(info.shape)} (shared) "
                    f"or (B, {', '.join(map(str, info.shape))}) (per sample), "
                    f"got {shape_str(w.shape)}"
                )
        return shared, per_sample

    # -- application ------------------------------------------------------------

    def forward(
        self, x: torch.Tensor, weights: Mapping[str, torch.Tensor], *args: Any, **kwargs: Any
    ) -> Any:
        """Run the module on ``x`` with the generated ``weights``.

        Args:
            x: the module's first input, with the batch at ``batch_dim``
                (``(B, ...)`` by default).
            weights: ``{name: tensor}`` for every generated parameter, each of
                shape ``shape`` (shared) or ``(B, *shape)`` (per sample), or a
                structured weight.
            args, kwargs: further inputs of the module. Shared weights: passed
                as they are. Per-sample weights on the vmap route: positional
                tensors are split along ``batch_dim`` like ``x``, keywords are
                shared.

        Returns:
            Whatever the module returns.
        """
        templates = self._templates()
        batch = self._check_input(x, templates[0])
        shared, per_sample = self._sort_weights(weights, batch, templates)
        if not per_sample:
            whole = [shared[n] for n in self.names]
            with WeightSubstitution(templates, self.names, whole, [False] * len(whole)):
                return self.module(x, *args, **kwargs)
        if batch == 0:
            raise ShapeError(
                f"x: per-sample weights need a non-empty batch, got shape {shape_str(x.shape)}"
            )
        if self.batch_dim is None:
            raise HypercoreError(
                f"per-sample weights need the batch dimension of {type(self.module).__name__}'s "
                "input, and it holds a layer with batch_first=False: pass "
                "Target(..., batch_dim=1) for (T, B, ...) inputs (or batch_dim=0)"
            )
        if self._fast and self.batch_dim == 0:
            ordered: list[Any] = [per_sample.get(n, shared.get(n)) for n in self.names]
            flags = [n in per_sample for n in self.names]
            with WeightSubstitution(templates, self.names, ordered, flags, batch=batch):
                return self.module(x, *args, **kwargs)
        return self._vmap_per_sample(x, shared, per_sample, templates, args, kwargs)

    def _check_input(self, x: Any, reference: torch.Tensor) -> int | None:
        """Validate ``x`` against the module's parameters; return the batch size (or None)."""
        if not isinstance(x, torch.Tensor):
            return None
        if x.device != reference.device:
            raise DtypeDeviceError(
                f"x: expected device {reference.device} (the target's parameters), got "
                f"{x.device}; move the input or the hypernetwork with .to(device)"
            )
        if (
            x.is_floating_point()
            and reference.is_floating_point()
            and x.dtype != reference.dtype
            and not _autocast_enabled()
        ):
            raise DtypeDeviceError(
                f"x: expected dtype {reference.dtype} (the target's parameters), got {x.dtype}"
            )
        bd = self.batch_dim
        if bd is None:
            return x.shape[0] if x.dim() > 0 else None
        if x.dim() <= bd:
            raise ShapeError(
                f"x: expected a batch at dimension {bd} (B, ...), got shape {shape_str(x.shape)}"
            )
        return x.shape[bd]

    @property
    def can_split_batch(self) -> bool:
        """True when running sub-batches separately equals one batched call: the batch
        dimension is known and no layer normalises with batch statistics."""
        if self.batch_dim is None or self._output_dims is None:
            return False
        return not any(isinstance(m, _BatchNorm) and m.training for m in self.module.modules())

    def concat_outputs(self, outputs: list[Any], order: torch.Tensor) -> Any:
        """Join the outputs of sub-batches and put the samples back in ``order``."""
        return _join(outputs, self._output_dims, order)

    def split_input(self, x: torch.Tensor, order: torch.Tensor, sizes: list[int]):
        """``x`` reordered by ``order`` and split into sub-batches of ``sizes``."""
        assert self.batch_dim is not None
        return x.index_select(self.batch_dim, order).split(sizes, dim=self.batch_dim)

    def _vmap_per_sample(self, x, shared, per_sample, templates, args, kwargs):
        for name, mod in self.module.named_modules():
            if isinstance(mod, _BatchNorm) and mod.training:
                raise HypercoreError(
                    f"per-sample weights for a module without a batched fast path run "
                    f"under vmap, one sample at a time; batch norm {name!r} is in training "
                    "mode, which needs the whole batch: call .eval() on the target, "
                    "or generate shared weights"
                )
        if self._output_dims is None:
            raise HypercoreError(
                "per-sample weights under vmap need to know where each output's batch "
                "dimension is; pass Target(..., batch_dim=...)"
            )
        bd = self.batch_dim
        names = self.names
        dense = {
            n: w.dense() if isinstance(w, StructuredWeight) else w for n, w in per_sample.items()
        }
        out_dims = self._output_dims

        def one_sample(sample_weights, xi, *rest):
            ordered = [sample_weights[n] if n in sample_weights else shared[n] for n in names]
            rest = tuple(a.unsqueeze(bd) if isinstance(a, torch.Tensor) else a for a in rest)
            mode = WeightSubstitution(templates, names, ordered, [False] * len(names), in_vmap=True)
            with mode:
                out = self.module(xi.unsqueeze(bd), *rest, **kwargs)
            return _squeeze(out, out_dims)

        in_dims = (0, bd, *(bd if isinstance(a, torch.Tensor) else None for a in args))
        run = vmap(one_sample, in_dims=in_dims, out_dims=out_dims, randomness="different")
        return run(dense, x, *args)


def _param(owner: nn.Module, local: str) -> torch.Tensor:
    """The module's own parameter ``local`` of ``owner`` (a template of a generated one)."""
    param = owner._parameters[local]
    assert param is not None
    return param


def _autocast_enabled() -> bool:
    try:
        return torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def _output_dims(module: nn.Module, batch_dim: int | None) -> Any:
    """Where the batch is in each output: ``batch_dim``, except a bare recurrent layer's
    hidden states (dimension 1). ``None`` when the batch dimension is unknown."""
    if batch_dim is None:
        return None
    if isinstance(module, nn.LSTM):
        return (batch_dim, (1, 1))
    if isinstance(module, nn.RNNBase):
        return (batch_dim, 1)
    return batch_dim


def _squeeze(out: Any, dims: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.squeeze(dims) if isinstance(dims, int) else out
    if isinstance(out, list | tuple):
        parts = [_squeeze(o, dims if isinstance(dims, int) else d) for o, d in _pair_up(out, dims)]
        return type(out)(parts) if not hasattr(out, "_fields") else type(out)(*parts)
    return out


def _pair_up(out, dims):
    if isinstance(dims, int):
        return [(o, dims) for o in out]
    return list(zip(out, dims, strict=True))


def _join(outputs: list[Any], dims: Any, order: torch.Tensor) -> Any:
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(outputs, dim=dims).index_select(dims, order)
    if isinstance(first, list | tuple):
        parts = [
            _join([o[i] for o in outputs], dims if isinstance(dims, int) else dims[i], order)
            for i in range(len(first))
        ]
        return type(first)(parts) if not hasattr(first, "_fields") else type(first)(*parts)
    raise HypercoreError(
        f"cannot join sub-batch outputs of type {type(first).__name__}: the target should "
        "return tensors, or tuples or lists of them"
    )
