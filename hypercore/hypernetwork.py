"""A hypernetwork: condition -> conditioner -> body -> head -> weights -> target."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from hypercore.bodies.mlp import MLPBody
from hypercore.errors import HypercoreError
from hypercore.heads import (
    ChunkWiseHead,
    ComponentWiseHead,
    Head,
    KernelTileHead,
    LowRankHead,
    MultiHead,
    OnceHead,
    ResidualHead,
    ScalingHead,
)
from hypercore.init import DEFAULT_INIT, check_method
from hypercore.inputs.base import Conditioner
from hypercore.target import StructuredWeight, Target
from hypercore.target.selection import Patterns

#: Head names accepted by :meth:`HyperNetwork.build`.
HEADS: dict[str, type[Head]] = {
    "once": OnceHead,
    "multiple": MultiHead,
    "component": ComponentWiseHead,
    "chunk": ChunkWiseHead,
    "scaling": ScalingHead,
    "lowrank": LowRankHead,
    "tiles": KernelTileHead,
}


def take(weight: torch.Tensor | StructuredWeight, index: int | torch.Tensor):
    """``weight[index]`` along the leading (condition) dimension; structured weights too."""
    if isinstance(weight, StructuredWeight):
        return weight.select(index)
    return weight[index]


#: A batch with at most this many distinct conditions (e.g. task ids) runs one
#: dense call per condition; more run with per-sample weights.
GROUPED_LIMIT = 16

#: How many example conditions the init runs through the body to measure E[h^2].
INIT_EXAMPLES = 256


class HyperNetwork(nn.Module):
    r"""A network that generates (some of) the weights of a target network.

    .. math:: y = f\big(x;\ \theta(c)\big), \qquad
              \theta(c) = \mathrm{head}\big(\mathrm{body}(\mathrm{conditioner}(c))\big)

    Each part is swappable: the conditioner decides what the weights depend on
    (a task id, the input itself, noise), the body is the hypernetwork's own
    architecture, the head is the output strategy (once, multiple heads,
    component-wise, chunk-wise, or a structured modulation of learned base
    weights).

    Args:
        target: the :class:`~hypercore.Target` whose selected weights are generated.
        conditioner: a :class:`~hypercore.inputs.Conditioner`.
        body: maps ``(N, conditioner.out_features)`` to ``(N, F)``; needs an
            ``out_features`` attribute.
        head: a :class:`~hypercore.heads.Head` built for ``F`` and ``target.spec``.
        init: ``"hyperfan_in"`` (default), ``"hyperfan_out"``, ``"bias_hyperinit"``
            or ``"default"``; see :mod:`hypercore.init`.
        gain: the target's activation gain, :math:`\sqrt 2` for ReLU targets (default).

    Example:
        >>> mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        >>> hnet = HyperNetwork.build(mlp, TaskEmbedding(5, 8), head="chunk", chunk_size=128)
        >>> logits = hnet(torch.randn(16, 64), 3)          # task 3, shared weights
        >>> logits = hnet(torch.randn(16, 64), torch.randint(0, 5, (16,)))  # per sample
    """

    def __init__(
        self,
        target: Target,
        conditioner: Conditioner,
        body: nn.Module,
        head: Head,
        init: str = DEFAULT_INIT,
        gain: float = math.sqrt(2.0),
    ):
        super().__init__()
        from hypercore.errors import HypercoreTypeError, check_float  # local: hoist when convenient

        for name, value, wanted, described in (
            ("target", target, Target, "a hypercore.Target"),
            ("conditioner", conditioner, Conditioner, "a hypercore Conditioner"),
            ("body", body, nn.Module, "an nn.Module"),
            ("head", head, Head, "a hypercore Head"),
        ):
            if not isinstance(value, wanted):
                raise HypercoreTypeError(
                    f"{name}: expected {described}, got {type(value).__name__}"
                )
        gain = check_float("gain", gain, low=0.0, low_open=True)
        body_in = getattr(body, "in_features", conditioner.out_features)
        if body_in != conditioner.out_features:
            raise HypercoreError(
                f"body: expects {body_in} input features but the conditioner gives "
                f"{conditioner.out_features}"
            )
        if head.in_features != body.out_features:
            raise HypercoreError(
                f"head: expects {head.in_features} input features but the body gives "
                f"{body.out_features}"
            )
        if head.spec is not target.spec and head.spec.shapes != target.spec.shapes:
            raise HypercoreError(
                f"head: built for {head.spec.shapes}, but the target generates {target.spec.shapes}"
            )
        self.target = target
        self.conditioner = conditioner
        self.body = body
        self.head = head
        self.gain = gain
        self.init_method = check_method(init)
        self.initialize(init)

    @classmethod
    def build(
        cls,
        module: nn.Module | Target,
        conditioner: Conditioner,
        head: str = "once",
        body_hidden: Sequence[int] = (64,),
        *,
        include: Patterns | None = None,
        init: str = DEFAULT_INIT,
        gain: float = math.sqrt(2.0),
        residual: bool = False,
        **head_options: Any,
    ) -> HyperNetwork:
        """The common case in one call: an MLP body and a head chosen by name.

        Args:
            module: the target module (or an existing :class:`Target`).
            conditioner: what the weights depend on.
            head: ``"once"``, ``"multiple"``, ``"component"``, ``"chunk"``,
                ``"scaling"``, ``"lowrank"`` or ``"tiles"`` (conv kernels).
            body_hidden: the MLP body's hidden widths, a sequence such as ``(64,)``.
            include: which parameters of ``module`` to generate (glob patterns on
                names; default: all). Not with a :class:`Target`, whose selection
                is made.
            init: see :mod:`hypercore.init`.
            gain: the target's activation gain (``sqrt(2)`` for ReLU, 1 for tanh);
                finite and > 0.
            residual: wrap the head in a :class:`~hypercore.heads.ResidualHead`
                (learned base weights plus a generated deviation).
            **head_options: passed to the head (e.g. ``chunk_size=256``); an
                option the head does not take raises a
                :class:`~hypercore.errors.HypercoreTypeError` listing the ones it does.
        """
        from hypercore.errors import (  # local: hoist when convenient
            HypercoreTypeError,
            check_float,
            check_int_sequence,
            check_options,
        )

        if not isinstance(head, str) or head not in HEADS:
            raise HypercoreError(f"head: expected one of {list(HEADS)}, got {head!r}")
        if not isinstance(conditioner, Conditioner):
            raise HypercoreTypeError(
                f"conditioner: expected a hypercore Conditioner (e.g. TaskEmbedding), "
                f"got {type(conditioner).__name__}"
            )
        check_float("gain", gain, low=0.0, low_open=True)
        body_hidden = check_int_sequence("body_hidden", body_hidden)
        check_method(init)
        accepted = HEADS[head].options()
        if accepted is not None:
            check_options(f"head={head!r} ({HEADS[head].__name__})", head_options, accepted)
        if isinstance(module, Target):
            if include is not None:
                raise HypercoreError(
                    f"include: given with an existing Target, whose selection is already "
                    f"made ({module.selection}); pass include to Target(...) or pass the "
                    f"nn.Module here, got include={include!r}"
                )
            target = module
        elif isinstance(module, nn.Module):
            target = Target(module, "*" if include is None else include)
        else:
            raise HypercoreTypeError(
                f"module: expected an nn.Module or a hypercore.Target, got {type(module).__name__}"
            )
        body = MLPBody(conditioner.out_features, body_hidden)
        made = HEADS[head](body.out_features, target.spec, **head_options)
        if residual:
            made = ResidualHead(body.out_features, target.spec, made)
        return cls(
            target,
            conditioner,
            body,
            made,
            init=init,
            gain=gain,
        )

    @torch.no_grad()
    def initialize(self, method: str | None = None, condition: Any = None) -> None:
        """(Re)initialise the head for ``method`` (default: the one given at construction).

        Args:
            method: see :mod:`hypercore.init`.
            condition: example conditions to measure the body's output scale on;
                default: ``conditioner.example_condition(256)``.
        """
        method = check_method(method or self.init_method)
        self.init_method = method
        if condition is None:
            condition = self.conditioner.example_condition(INIT_EXAMPLES)
        features = self.body(self._as_batch(self.conditioner(condition)))
        self.head.initialize_(method, self.gain, self.target.template(), features)

    @staticmethod
    def _as_batch(e: torch.Tensor) -> torch.Tensor:
        return e.unsqueeze(0) if e.dim() == 1 else e

    def generate(self, condition: Any = None) -> dict[str, torch.Tensor]:
        """Weights for ``condition``.

        When a condition repeats values (e.g. a batch of task ids drawn from a
        few tasks), the weights are generated once per distinct value and
        gathered for every sample (see :meth:`Conditioner.distinct`).

        Returns:
            ``{name: (*shape)}`` when the conditioner gives one embedding (e.g.
            one task id), ``{name: (N, *shape)}`` when it gives ``N``.
        """
        return self._generate(condition, self.conditioner.distinct(condition))

    def _generate(self, condition: Any, distinct: tuple | None) -> dict[str, torch.Tensor]:
        if distinct is not None:
            values, inverse = distinct
            return {name: take(w, inverse) for name, w in self._generate(values, None).items()}
        e = self.conditioner(condition)  # (E,) or (N, E)
        weights = self.head(self.body(self._as_batch(e)))  # {name: (N, *shape)}
        if e.dim() == 1:
            return {name: take(w, 0) for name, w in weights.items()}
        return weights

    def forward(self, x: torch.Tensor, condition: Any = None, *args, **kwargs) -> torch.Tensor:
        """``target(x)`` with the weights for ``condition``.

        For a data-conditioned hypernetwork (:class:`~hypercore.inputs.DataEncoder`)
        the condition defaults to ``x`` itself. A batch whose conditions take only
        a few distinct values (at most :data:`GROUPED_LIMIT`, e.g. a mixed-task
        batch) runs one dense call per value with that value's shared weights;
        the result equals the per-sample computation.
        """
        if condition is None and self.conditioner.conditions_on_data:
            condition = x
        distinct = self.conditioner.distinct(condition)
        if distinct is not None and len(distinct[0]) <= GROUPED_LIMIT and not args and not kwargs:
            return self._grouped_forward(x, *distinct)
        return self.target(x, self._generate(condition, distinct), *args, **kwargs)

    def _grouped_forward(self, x: torch.Tensor, values: Any, inverse: torch.Tensor):
        """A batch drawn from a few distinct conditions: run each group with its shared
        weights (a few dense calls), instead of gathering one weight set per sample."""
        weights = self._generate(values, None)  # one weight set per distinct condition
        order = torch.argsort(inverse, stable=True)
        sizes = torch.bincount(inverse, minlength=len(values)).tolist()
        outputs = [
            self.target(chunk, {name: take(w, group) for name, w in weights.items()})
            for group, chunk in enumerate(x[order].split(sizes))
        ]
        return torch.cat(outputs)[torch.argsort(order)]

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters of each part, and the size of one generated weight set."""

        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters() if p.requires_grad)

        counts = {
            "conditioner": count(self.conditioner),
            "body": count(self.body),
            "head": count(self.head),
            "target (not generated)": count(self.target),
        }
        counts["total trainable"] = sum(counts.values())
        counts["generated per weight set"] = self.target.num_generated
        return counts

    def config(self) -> dict[str, Any]:
        """The JSON-able description that :func:`hypercore.load` rebuilds from."""

        def describe(part: nn.Module, role: str) -> dict[str, Any]:
            if not hasattr(part, "describe"):
                raise HypercoreError(
                    f"{role} {type(part).__name__} cannot describe itself as JSON; "
                    f"pass {role}=... when loading instead"
                )
            return part.describe()

        return {
            "target": self.target.selection,
            "conditioner": describe(self.conditioner, "conditioner"),
            "body": describe(self.body, "body"),
            "head": describe(self.head, "head"),
            "init": self.init_method,
            "gain": self.gain,
            "spectral_norm": bool(getattr(self, "spectral_norm", False)),
        }
