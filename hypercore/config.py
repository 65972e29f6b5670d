"""Components that can describe themselves as JSON and be rebuilt from it.

Checkpoints (:mod:`hypercore.checkpoint`) store a hypernetwork's configuration
as JSON beside its tensors, so loading one never unpickles code. Every
conditioner, body and head subclasses :class:`Configurable`: it is registered
under its class name and returns its constructor arguments from :meth:`config`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hypercore.errors import HypercoreError


class Configurable:
    """Mixin: a registry of component classes by name, and ``config()``."""

    registry: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Configurable.registry[cls.__name__] = cls

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (without the ones given at build time)."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its configuration")

    def describe(self) -> dict[str, Any]:
        """``{"type": class name, **config()}``."""
        return {"type": type(self).__name__, **self.config()}


def build(description: dict[str, Any], **given: Any) -> Any:
    """Rebuild a component from :meth:`Configurable.describe` output.

    Args:
        description: ``{"type": name, **kwargs}``.
        **given: arguments the description does not hold (e.g. ``in_features``,
            ``spec``).
    """
    kwargs = dict(description)
    name = kwargs.pop("type", None)
    cls = Configurable.registry.get(name)
    if cls is None:
        known = sorted(Configurable.registry)
        raise HypercoreError(f"unknown component type {name!r}; known types: {known}")
    return cls(**given, **kwargs)
