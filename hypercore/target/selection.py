"""Choosing which parameters of a module a hypernetwork generates."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from torch import nn

from hypercore.errors import HypercoreError, HypercoreTypeError
from hypercore.target.spec import ParamInfo, WeightSpec

Patterns = str | Sequence[str]


def _as_patterns(name: str, value: Patterns | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise HypercoreTypeError(
            f"{name}: expected a glob pattern or a list of them (e.g. '*.weight'), got {value!r}"
        )
    return tuple(value)


def _fans(weight_shape: tuple[int, ...]) -> tuple[int, int]:
    """Fan-in and fan-out of a weight of shape ``(out, in, *kernel)``."""
    receptive = 1
    for s in weight_shape[2:]:
        receptive *= s
    return weight_shape[1] * receptive, weight_shape[0] * receptive


def _sibling(local_name: str, old: str, new: str) -> str:
    head, _, tail = local_name.rpartition(old)
    return f"{head}{new}{tail}" if _ else local_name


def select_parameters(
    module: nn.Module,
    include: Patterns | None = "*",
    *,
    exclude: Patterns | None = None,
    module_types: type[nn.Module] | tuple[type[nn.Module], ...] | None = None,
) -> WeightSpec:
    """Describe the parameters of ``module`` that a hypernetwork will generate.

    A parameter is selected when its name (as in ``module.named_parameters()``)
    matches one of the ``include`` glob patterns, matches none of ``exclude``,
    and, if ``module_types`` is given, is owned directly by a module of one of
    those types.

    Args:
        module: any ``nn.Module``; it is not modified.
        include: glob pattern(s) on parameter names, e.g. ``"*.weight"`` or
            ``["0.*", "2.weight"]``. Default: every parameter.
        exclude: glob pattern(s) to leave out.
        module_types: e.g. ``nn.Linear`` or ``(nn.Linear, nn.Conv2d)``.

    Returns:
        The :class:`WeightSpec` of the selection, in ``named_parameters`` order.

    Raises:
        HypercoreError: when nothing is selected (the message lists the names).
    """
    include_p = _as_patterns("include", include if include is not None else "*")
    exclude_p = _as_patterns("exclude", exclude)
    if module_types is not None and not isinstance(module_types, tuple):
        module_types = (module_types,)
    if module_types is not None and not all(
        isinstance(t, type) and issubclass(t, nn.Module) for t in module_types
    ):
        raise HypercoreTypeError(
            f"module_types: expected an nn.Module subclass or a tuple of them (e.g. nn.Linear), "
            f"got {module_types!r}"
        )

    # A tied parameter (one tensor under several names) is generated once, under its
    # first name, when any of its names is selected: it stays tied.
    first: dict[int, tuple[str, nn.Module, str]] = {}
    selected: set[int] = set()
    for owner_name, owner in module.named_modules():
        for local, param in owner.named_parameters(recurse=False):
            full = f"{owner_name}.{local}" if owner_name else local
            first.setdefault(id(param), (full, owner, local))
            if not any(fnmatch.fnmatchcase(full, p) for p in include_p):
                continue
            if any(fnmatch.fnmatchcase(full, p) for p in exclude_p):
                continue
            if module_types is not None and not isinstance(owner, module_types):
                continue
            selected.add(id(param))
    chosen = [entry for key, entry in first.items() if key in selected]

    if not chosen:
        names = [n for n, _ in module.named_parameters()]
        types = None if module_types is None else [t.__name__ for t in module_types]
        raise HypercoreError(
            f"no parameter matched include={list(include_p)}, exclude={list(exclude_p)}, "
            f"module_types={types}; the module's parameters are {names}"
        )

    chosen_names = {full for full, _, _ in chosen}
    infos: list[ParamInfo] = []
    offset = 0
    for full, owner, local in chosen:
        param = owner.get_parameter(local)
        shape = tuple(param.shape)
        prefix = full[: len(full) - len(local)]
        is_embedding = isinstance(owner, nn.Embedding)
        fan_in = fan_out = 0
        layer_has_bias = False
        if param.dim() >= 2 and not is_embedding:
            role = "weight"
            fan_in, fan_out = _fans(shape)
            bias_local = _sibling(local, "weight", "bias")
            layer_has_bias = bias_local != local and prefix + bias_local in chosen_names
        else:
            weight_local = _sibling(local, "bias", "weight")
            weight = getattr(owner, weight_local, None) if weight_local != local else None
            if param.dim() == 1 and isinstance(weight, nn.Parameter) and weight.dim() >= 2:
                role = "bias"
                fan_in, fan_out = _fans(tuple(weight.shape))
                layer_has_bias = True
            else:
                role = "other"
        infos.append(
            ParamInfo(
                name=full,
                shape=shape,
                role=role,
                module_type=type(owner).__name__,
                fan_in=fan_in,
                fan_out=fan_out,
                layer_has_bias=layer_has_bias,
                offset=offset,
            )
        )
        offset += param.numel()
    return WeightSpec(infos)
