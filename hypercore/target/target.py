"""The target network: an unmodified ``nn.Module`` whose chosen weights are generated."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from hypercore.errors import (
    HypercoreError,
    ShapeError,
    WeightsMismatchError,
    check_like,
    shape_str,
)
from hypercore.target.per_sample import FAST_PATHS, has_fast_path
from hypercore.target.selection import Patterns, select_parameters
from hypercore.target.spec import WeightSpec
from hypercore.target.structured import StructuredWeight


class Target(nn.Module):
    r"""Wrap any ``nn.Module`` so that some of its parameters come from outside.

    The selected parameters (see :func:`~hypercore.target.selection.select_parameters`)
    are *generated*: :meth:`forward` takes them as a dict of tensors and applies
    the module functionally (``torch.func.functional_call``). The module's own
    copies of them are frozen (``requires_grad=False``) and serve only as a
    template (shape, dtype, device, and the standard initial values used by
    bias-HyperInit). Every other parameter stays an ordinary trainable one.

    Each generated tensor may be

    * **shared** by the batch: shape ``shape``; or
    * **per sample**: shape ``(B, *shape)``, where ``B = x.shape[0]``; or
    * **structured** (:class:`~hypercore.target.structured.RowScaled`,
      :class:`~hypercore.target.structured.LowRank`): a shared base modulated
      by a few numbers, shared or per sample; linear and conv layers apply
      them without building per-sample matrices.

    Per-sample weights are applied in one batched call, never a loop over
    samples: ``nn.Linear`` through ``bmm``/``baddbmm``, ``nn.Conv2d`` through a
    grouped convolution, and any other module through
    ``torch.func.vmap(functional_call)``.

    Buffers: the module's buffers are used as they are. With shared weights and
    on the fast paths, batch-norm layers see the whole batch and update their
    running statistics as usual. The ``vmap`` path runs each sample as a batch
    of one, where training-mode batch norm is meaningless, so it raises an error
    (call ``.eval()`` or keep batch-norm parameters ungenerated).

    Args:
        module: the target network; not modified apart from freezing the
            selected parameters.
        include, exclude, module_types: which parameters to generate (glob
            patterns on names, and owning module types).

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
    ):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module: expected an nn.Module, got {type(module).__name__}")
        self.module = module
        types = (
            ()
            if module_types is None
            else (module_types if isinstance(module_types, tuple) else (module_types,))
        )
        #: The selection, as JSON-able values (checkpoints store it).
        self.selection = {
            "include": [include] if isinstance(include, str) else list(include or ["*"]),
            "exclude": [exclude] if isinstance(exclude, str) else list(exclude or []),
            "module_types": [t.__name__ for t in types],
        }
        self.spec: WeightSpec = select_parameters(
            module, include, exclude=exclude, module_types=module_types
        )
        # name -> (owner module path, local parameter name); owner path -> module
        self._owner: dict[str, tuple[str, str]] = {}
        self._owner_modules: dict[str, nn.Module] = {}
        for info in self.spec:
            owner, _, local = info.name.rpartition(".")
            self._owner[info.name] = (owner, local)
            self._owner_modules[owner] = module.get_submodule(owner)
            module.get_parameter(info.name).requires_grad_(False)
        self._fast = {path: has_fast_path(m) for path, m in self._owner_modules.items()}

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

    def _own(self, name: str) -> torch.Tensor:
        owner, local = self._owner[name]
        return self._owner_modules[owner]._parameters[local]

    def template(self) -> dict[str, torch.Tensor]:
        """The module's own values of the generated parameters (detached copies)."""
        return {n: self._own(n).detach().clone() for n in self.names}

    def extra_repr(self) -> str:
        return f"generated={self.spec.names}, numel={self.spec.total}"

    # -- checking ---------------------------------------------------------------

    def _sort_weights(
        self, weights: Mapping[str, torch.Tensor], batch: int | None
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
        for info in self.spec:
            w = weights[info.name]
            own = self._own(info.name)
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
            if w.dtype != own.dtype or w.device != own.device:
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
        self, x: torch.Tensor, weights: Mapping[str, torch.Tensor], *args, **kwargs
    ) -> torch.Tensor:
        """Run the module on ``x`` with the generated ``weights``.

        Args:
            x: the module's first input, ``(B, ...)``.
            weights: ``{name: tensor}`` for every generated parameter, each of
                shape ``shape`` (shared) or ``(B, *shape)`` (per sample), or a
                structured weight.
            args, kwargs: further inputs of the module (shared by the batch).

        Returns:
            Whatever the module returns.
        """
        batch = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() > 0 else None
        shared, per_sample = self._sort_weights(weights, batch)
        if not per_sample:
            with self._substituted(shared):
                return self.module(x, *args, **kwargs)
        groups: dict[str, dict[str, torch.Tensor]] = {}
        for name, w in per_sample.items():
            owner, local = self._owner[name]
            groups.setdefault(owner, {})[local] = w
        if all(self._fast[path] for path in groups):
            return self._fast_per_sample(x, shared, groups, args, kwargs)
        return self._vmap_per_sample(x, shared, per_sample, args, kwargs)

    @contextlib.contextmanager
    def _substituted(self, shared: dict[str, torch.Tensor]):
        """Put ``shared`` tensors in place of the module's parameters for one call.

        A direct swap in each owner's parameter dict: what
        ``torch.func.functional_call`` does, without its generality (and its
        cost, about a third of a small hypernetwork's forward pass).
        """
        saved = []
        try:
            for name, w in shared.items():
                owner, local = self._owner[name]
                module = self._owner_modules[owner]
                saved.append((module, local, module._parameters[local]))
                module._parameters[local] = w
            yield
        finally:
            for module, local, original in reversed(saved):
                module._parameters[local] = original

    def _fast_per_sample(self, x, shared, groups, args, kwargs):
        # Swap in a batched forward for each layer with per-sample weights, for
        # the duration of one call (an instance attribute shadows the class's
        # forward; nn.Module.__call__ looks it up on the instance).
        owners = [self._owner_modules[path] for path in groups]
        for mod, local_weights in zip(owners, groups.values(), strict=True):
            object.__setattr__(mod, "forward", FAST_PATHS[type(mod)](mod, local_weights))
        try:
            with self._substituted(shared):
                return self.module(x, *args, **kwargs)
        finally:
            for mod in owners:
                object.__delattr__(mod, "forward")

    def _vmap_per_sample(self, x, shared, per_sample, args, kwargs):
        per_sample = {
            n: w.dense() if isinstance(w, StructuredWeight) else w for n, w in per_sample.items()
        }
        for name, mod in self.module.named_modules():
            if isinstance(mod, _BatchNorm) and mod.training:
                raise HypercoreError(
                    f"per-sample weights for a module without a batched fast path run "
                    f"under vmap, one sample at a time; batch norm {name!r} is in training "
                    "mode, which needs the whole batch: call .eval() on the target, "
                    "or generate shared weights"
                )

        def one_sample(sample_weights, xi):
            out = functional_call(
                self.module, {**shared, **sample_weights}, (xi.unsqueeze(0), *args), kwargs
            )
            return out.squeeze(0)

        return vmap(one_sample)(per_sample, x)
