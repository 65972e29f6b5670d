"""Renamed arguments keep working for a release, with a ``DeprecationWarning``."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from hypercore.errors import HypercoreTypeError

F = TypeVar("F", bound=Callable[..., Any])


def renamed(**old_to_new: str) -> Callable[[F], F]:
    """Decorate a function whose keyword arguments ``old`` are now called ``new``.

    Calls with an old name still work and warn once per call site; giving both
    names is an error naming them.

    Example:
        >>> class Noise:
        ...     @renamed(dim="embedding_dim")
        ...     def __init__(self, embedding_dim: int = 8):
        ...         self.embedding_dim = embedding_dim
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     warnings.simplefilter("always")
        ...     Noise(dim=4).embedding_dim
        4
    """

    def decorate(fn: F) -> F:
        owner = fn.__qualname__.removesuffix(".__init__")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise HypercoreTypeError(
                            f"{owner}: got both {old}= (its old name) and {new}=; give {new} only"
                        )
                    warnings.warn(
                        f"{owner}: the argument {old}= is renamed {new}= (hypercore 0.2); "
                        f"the old name will be removed in 0.3",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
