"""A hypernetwork: condition -> conditioner -> body -> head -> weights -> target."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import vmap
from torch.nn.modules.batchnorm import _BatchNorm

from hypercore.bodies.mlp import MLPBody
from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_int_sequence,
    check_options,
)
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
        exclude: Patterns | None = None,
        module_types: type[nn.Module] | tuple[type[nn.Module], ...] | None = None,
        batch_dim: int | None = None,
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
            include, exclude, module_types, batch_dim: the selection and batch
                dimension, exactly as for :class:`~hypercore.Target` (default: every
                parameter, batch first). Not with a :class:`Target`, whose selection
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
        selection = {
            "include": include,
            "exclude": exclude,
            "module_types": module_types,
            "batch_dim": batch_dim,
        }
        if isinstance(module, Target):
            for name, value in selection.items():
                if value is not None:
                    raise HypercoreError(
                        f"{name}: given with an existing Target, whose selection is already "
                        f"made ({module.selection}); pass {name} to Target(...) or pass the "
                        f"nn.Module here, got {name}={value!r}"
                    )
            target = module
        elif isinstance(module, nn.Module):
            target = Target(
                module,
                "*" if include is None else include,
                exclude=exclude,
                module_types=module_types,
                batch_dim=batch_dim,
            )
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

    def forward_sets(self, x: torch.Tensor, condition: Any = None, *args, **kwargs) -> Any:
        """The target on the same inputs under ``K`` weight sets: ``(K, B, ...)``.

        For ensembles and noise draws: ``condition`` must give ``K`` embeddings,
        e.g. ``K`` task ids, ``forward_sets(x, 20)`` for 20 draws of a
        :class:`~hypercore.inputs.NoiseSource`, or a ``(K, E)`` tensor of codes.
        (In :meth:`forward`, an int keeps its conditioner's meaning: a task id
        for a task embedding.) The ``K`` sets run in one batched call
        (``torch.func.vmap`` over the weight sets), not a loop.

        Returns:
            The target's output with a leading dimension ``K`` (every tensor
            of a tuple output gets one).
        """
        if condition is None and self.conditioner.conditions_on_data:
            raise HypercoreError(
                "condition: forward_sets needs K conditions; a data-conditioned "
                "hypernetwork makes one weight set per input, use forward(x)"
            )
        weights = {
            name: w.dense() if isinstance(w, StructuredWeight) else w
            for name, w in self.generate(condition).items()
        }
        info = self.target.spec.params[0]
        first = weights[info.name]
        if first.dim() != len(info.shape) + 1:
            raise ShapeError(
                f"condition: forward_sets needs K weight sets, but {condition!r} gives one "
                "(use forward(x, condition) for a single set)"
            )
        for name, module in self.target.module.named_modules():
            if isinstance(module, _BatchNorm) and module.training:
                raise HypercoreError(
                    f"forward_sets runs the K weight sets under vmap, where batch norm "
                    f"{name!r} cannot update its running statistics in training mode: call "
                    ".eval() on the target first"
                )

        def one_set(w: dict[str, torch.Tensor]) -> Any:
            return self.target(x, w, *args, **kwargs)

        return vmap(one_set, randomness="different")(weights)

    @torch.no_grad()
    def materialize(self, condition: Any = None) -> nn.Module:
        """One generated weight set as a plain ``nn.Module``, to deploy without hypercore.

        Returns a deep copy of the target module whose generated parameters hold
        the weights for ``condition`` (trainable again, ``requires_grad=True``);
        ``materialize(c)(x)`` equals ``self(x, c)``. The hypernetwork and the
        original module are not changed.

        Args:
            condition: one condition (e.g. one task id): it must give a single
                weight set, not one per sample.
        """
        weights = self.generate(condition)
        module = copy.deepcopy(self.target.module)
        for info in self.target.spec:
            w = weights[info.name]
            w = w.dense() if isinstance(w, StructuredWeight) else w
            if tuple(w.shape) != info.shape:
                raise ShapeError(
                    f"condition: materialize needs one weight set, but {condition!r} gives "
                    f"weights[{info.name!r}] of shape {tuple(w.shape)} (expected {info.shape})"
                )
            param = module.get_parameter(info.name)
            param.copy_(w.detach())
            param.requires_grad_(True)
        return module

    def _generate(self, condition: Any, distinct: tuple | None) -> dict[str, torch.Tensor]:
        if distinct is not None:
            values, inverse = distinct
            return {name: take(w, inverse) for name, w in self._generate(values, None).items()}
        e = self.conditioner(condition)  # (E,) or (N, E)
        weights = self.head(self.body(self._as_batch(e)))  # {name: (N, *shape)}
        if e.dim() == 1:
            return {name: take(w, 0) for name, w in weights.items()}
        return weights

    def forward(self, x: torch.Tensor, condition: Any = None, *args, **kwargs) -> Any:
        """``target(x)`` with the weights for ``condition``.

        For a data-conditioned hypernetwork (:class:`~hypercore.inputs.DataEncoder`)
        the condition defaults to ``x`` itself. A condition that gives ``N``
        weight sets (e.g. ``N`` task ids) needs ``N`` equal to the batch size.

        A batch whose conditions take only a few distinct values (at most
        :data:`GROUPED_LIMIT`, e.g. a mixed-task batch) runs one dense call per
        value with that value's shared weights; the result equals the per-sample
        computation. The grouping is data-dependent (it reads the distinct values
        on the host), so it is skipped where it could change the result or the
        trace: under ``torch.compile`` (per-sample weights instead), with
        further arguments for the target, and for targets with training-mode
        batch norm (whose statistics must cover the whole batch).
        """
        if condition is None and self.conditioner.conditions_on_data:
            condition = x
        if torch.compiler.is_compiling():
            weights = self._generate(condition, None)
            self._check_count(weights, x)
            return self.target(x, weights, *args, **kwargs)
        distinct = self.conditioner.distinct(condition)
        if distinct is not None:
            self._check_count_of(len(distinct[1]), x)
            if (
                len(distinct[0]) <= GROUPED_LIMIT
                and not args
                and not kwargs
                and self.target.can_split_batch
            ):
                return self._grouped_forward(x, *distinct)
        weights = self._generate(condition, distinct)
        self._check_count(weights, x)
        return self.target(x, weights, *args, **kwargs)

    def _check_count(self, weights: dict[str, Any], x: torch.Tensor) -> None:
        """Per-sample weights must come one per input: name the condition, not the weights."""
        info = self.target.spec.params[0]
        first = weights[info.name]
        lead = first.batch() if isinstance(first, StructuredWeight) else (
            first.shape[0] if first.dim() == len(info.shape) + 1 else None
        )  # fmt: skip
        if lead is not None:
            self._check_count_of(lead, x)

    def _check_count_of(self, count: int, x: torch.Tensor) -> None:
        bd = self.target.batch_dim
        if not isinstance(x, torch.Tensor) or bd is None or x.dim() <= bd:
            return
        if count != x.shape[bd]:
            raise ShapeError(
                f"condition: gives {count} weight sets (e.g. {count} task ids) for a batch of "
                f"{x.shape[bd]} inputs; give one condition per input or a single one for "
                "the whole batch (for K weight sets on the same inputs, use forward_sets)"
            )

    def _grouped_forward(self, x: torch.Tensor, values: Any, inverse: torch.Tensor):
        """A batch drawn from a few distinct conditions: run each group with its shared
        weights (a few dense calls), instead of gathering one weight set per sample."""
        weights = self._generate(values, None)  # one weight set per distinct condition
        order = torch.argsort(inverse, stable=True)
        sizes = torch.bincount(inverse, minlength=len(values)).tolist()
        outputs = [
            self.target(chunk, {name: take(w, group) for name, w in weights.items()})
            for group, chunk in enumerate(self.target.split_input(x, order, sizes))
        ]
        return self.target.concat_outputs(outputs, torch.argsort(order))

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
            described: dict[str, Any] = part.describe()  # type: ignore[operator]
            return described

        return {
            "target": self.target.selection,
            "conditioner": describe(self.conditioner, "conditioner"),
            "body": describe(self.body, "body"),
            "head": describe(self.head, "head"),
            "init": self.init_method,
            "gain": self.gain,
            "spectral_norm": bool(getattr(self, "spectral_norm", False)),
        }
