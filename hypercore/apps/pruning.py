r"""Channel pruning with a hypernetwork that writes weights for any width (MetaPruning).

The target is an MLP :math:`D \to w_1 \to \dots \to w_L \to K` with ReLUs, whose
hidden widths :math:`w = (w_1, \dots, w_L)` may be anything up to the full widths
:math:`W = (W_1, \dots, W_L)`. MetaPruning (Liu et al., ICCV 2019) prunes it in
three steps:

PruningNet (:class:`PruningNet`)
    A hypernetwork :math:`h_\phi` takes the *network encoding vector*
    :math:`c = (w_1/W_1, \dots, w_L/W_L)` and writes the weights of the
    **full-width** layers, which are **cropped** to the sampled widths,

    .. math:: \theta(c) = h_\phi(c), \qquad
              W_l(w) = \theta_l(c)[{:}w_l,\ {:}w_{l-1}], \quad b_l(w) = \theta_l(c)[{:}w_l]

    (:func:`crop_mlp`; :math:`w_0 = D`, :math:`w_{L+1} = K`). It is trained with a
    new random width vector at every step (:func:`train_pruningnet`),
    :math:`\min_\phi \mathbb{E}_{w}\, \ell\big(f(x;\ \theta(c(w))[w]),\ y\big)`.
Evolutionary search (:func:`evolutionary_search`)
    Width vectors under a budget :math:`\mathrm{cost}(w) \le B` (FLOPs or
    parameters, :func:`mlp_flops`, :func:`mlp_params`) are scored by the
    validation accuracy of the network with the *generated* weights (no training
    at search time); the top :math:`k` of each generation breed the next one by
    mutation and crossover, and candidates over the budget are discarded.
Final training
    The best width vector is trained **from scratch** (as the paper does).

Baselines (same budgets): uniform width scaling (:func:`uniform_widths`, every
layer scaled by one factor) trained from scratch, and magnitude pruning of a
trained full network with ``torch.nn.utils.prune`` followed by fine-tuning:
channels (:func:`prune_channels`, ``ln_structured`` on the rows of each hidden
layer, its bias masked too) or single weights (:func:`prune_weights`,
``l1_unstructured``). Unstructured pruning lowers the number of non-zero
parameters but not the dense FLOPs (:func:`dense_flops` of
:func:`effective_widths`).

FLOPs here are multiply-accumulates of the dense layers,
:math:`\sum_{l=1}^{L+1} w_{l-1} w_l`; parameters add the biases,
:math:`\sum_l (w_{l-1} + 1) w_l`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_float,
    check_int,
    check_positive_int,
    shape_str,
)
from hypercore.hypernetwork import HyperNetwork
from hypercore.inputs import ScalarInput

__all__ = [
    "PruningNet",
    "SearchResult",
    "amount_for",
    "crop_mlp",
    "dense_flops",
    "effective_widths",
    "evolutionary_search",
    "make_mlp",
    "mlp_flops",
    "mlp_forward",
    "mlp_params",
    "nonzero_params",
    "prune_channels",
    "prune_weights",
    "sample_widths",
    "train_pruningnet",
    "train_steps",
    "uniform_widths",
]


def _widths(name: str, widths: object, full: Sequence[int] | None = None) -> tuple[int, ...]:
    if isinstance(widths, torch.Tensor):
        widths = widths.tolist()
    if not isinstance(widths, (list, tuple)) or not widths:
        raise HypercoreTypeError(
            f"{name}: expected a non-empty sequence of ints, got {type(widths).__name__}"
        )
    out = tuple(check_int(f"{name}[{i}]", w, minimum=1) for i, w in enumerate(widths))
    if full is not None:
        if len(out) != len(full):
            raise ShapeError(f"{name}: expected {len(full)} widths (one per layer), got {len(out)}")
        for i, (w, m) in enumerate(zip(out, full, strict=True)):
            if w > m:
                raise HypercoreError(f"{name}[{i}]: {w} exceeds the full width {m}")
    return out


def mlp_flops(widths: Sequence[int], in_features: int, out_features: int) -> int:
    r"""Multiply-accumulates of one input through the MLP: :math:`\sum_l w_{l-1} w_l`."""
    sizes = (in_features, *_widths("widths", widths), out_features)
    return sum(a * b for a, b in itertools.pairwise(sizes))


def mlp_params(widths: Sequence[int], in_features: int, out_features: int) -> int:
    r"""Weights and biases of the MLP: :math:`\sum_l (w_{l-1} + 1) w_l`."""
    sizes = (in_features, *_widths("widths", widths), out_features)
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def make_mlp(in_features: int, widths: Sequence[int], out_features: int) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear``: the target at hidden widths ``widths``."""
    sizes = (in_features, *_widths("widths", widths), out_features)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _linears(model: nn.Module) -> list[nn.Linear]:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(linears) < 2:
        raise HypercoreTypeError(
            f"model: expected an MLP with at least two nn.Linear layers, got {len(linears)}"
        )
    return linears


def crop_mlp(
    weights: Sequence[tuple[torch.Tensor, torch.Tensor]], widths: Sequence[int]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    r"""Crop full-width layers ``[(W_l, b_l)]`` to hidden widths ``widths``.

    ``W_l`` is ``(W_l, W_{l-1})`` (``nn.Linear`` layout); the result keeps the
    first ``widths[l]`` rows and the first ``widths[l-1]`` columns (the input and
    output sizes stay), i.e. the top-left block, as MetaPruning crops.
    """
    if len(weights) != len(widths) + 1:
        raise ShapeError(
            f"weights: expected {len(widths) + 1} layers for {len(widths)} hidden widths, "
            f"got {len(weights)}"
        )
    full = [w.shape[0] for w, _ in weights[:-1]]
    widths = _widths("widths", widths, full)
    rows = (*widths, weights[-1][0].shape[0])
    cols = (weights[0][0].shape[1], *widths)
    return [(w[:r, :c], b[:r]) for (w, b), r, c in zip(weights, rows, cols, strict=True)]


def mlp_forward(x: torch.Tensor, layers: Sequence[tuple[torch.Tensor, torch.Tensor]]):
    """``(B, D) -> (B, K)``: linear layers with ReLUs between them."""
    for i, (w, b) in enumerate(layers):
        x = F.linear(x, w, b)
        if i < len(layers) - 1:
            x = torch.relu(x)
    return x


class PruningNet(nn.Module):
    r"""MetaPruning's PruningNet: full-width MLP weights from the width vector, cropped.

    A :class:`~hypercore.HyperNetwork` over the full-width MLP
    ``in_features -> full_widths -> out_features``, conditioned on the encoding
    :math:`c = w / W` by a :class:`~hypercore.inputs.ScalarInput` (one scalar per
    hidden layer on ``[0, 1]``, hypercore's magnitude-invariant ``cos_sin``
    encoding), with an MLP body and a ``once`` head that writes every weight.

    Args:
        in_features, out_features: the target's input and output sizes.
        full_widths: the full hidden widths :math:`W`.
        body_hidden: the hypernetwork body's hidden widths.

    Call with ``x`` ``(B, in_features)`` and ``widths`` (``len(full_widths)``
    ints, each in ``[1, W_l]``): logits ``(B, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        full_widths: Sequence[int],
        out_features: int,
        body_hidden: Sequence[int] = (64,),
    ):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.full_widths = _widths("full_widths", full_widths)
        full = make_mlp(in_features, self.full_widths, out_features)
        self.hnet = HyperNetwork.build(
            full, ScalarInput(len(self.full_widths), 0.0, 1.0), body_hidden=body_hidden
        )
        self.names = [(f"{2 * i}.weight", f"{2 * i}.bias") for i in range(len(_linears(full)))]

    def encode(self, widths: Sequence[int]) -> torch.Tensor:
        """The network encoding vector ``(L,)``: each width over its full width."""
        widths = _widths("widths", widths, self.full_widths)
        anchor = next(self.parameters())
        return torch.tensor(
            [w / m for w, m in zip(widths, self.full_widths, strict=True)],
            dtype=anchor.dtype,
            device=anchor.device,
        )

    def layers(self, widths: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The cropped generated layers ``[(W_l, b_l)]`` for ``widths``."""
        theta = self.hnet.generate(self.encode(widths))
        return crop_mlp([(theta[w], theta[b]) for w, b in self.names], widths)

    def forward(self, x: torch.Tensor, widths: Sequence[int]) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ShapeError(f"x: expected (B, {self.in_features}), got {shape_str(x.shape)}")
        return mlp_forward(x, self.layers(widths))

    def materialize(self, widths: Sequence[int]) -> nn.Sequential:
        """A plain MLP at ``widths`` holding the generated (cropped) weights."""
        model = make_mlp(self.in_features, widths, self.out_features)
        with torch.no_grad():
            for lin, (w, b) in zip(_linears(model), self.layers(widths), strict=True):
                lin.weight.copy_(w)
                lin.bias.copy_(b)
        return model.to(next(self.parameters()).device)


def sample_widths(choices: Sequence[Sequence[int]], generator: torch.Generator) -> tuple[int, ...]:
    """One width per layer, each drawn uniformly from that layer's ``choices``."""
    return tuple(int(c[int(torch.randint(len(c), (1,), generator=generator))]) for c in choices)


def _batches(n: int, batch_size: int, steps: int, generator: torch.Generator):
    for _ in range(steps):
        yield torch.randint(n, (batch_size,), generator=generator)


def train_pruningnet(
    net: PruningNet,
    x: torch.Tensor,
    y: torch.Tensor,
    choices: Sequence[Sequence[int]],
    steps: int,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> list[float]:
    r"""MetaPruning's stochastic training: a random width vector per step.

    Each step draws :math:`w` (:func:`sample_widths`) and a minibatch, and takes
    one Adam step on :math:`\ell(f(x;\ \theta(c(w))[w]), y)` w.r.t. the
    PruningNet's parameters. Returns the per-step losses.
    """
    steps = check_positive_int("steps", steps)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    if len(choices) != len(net.full_widths):
        raise ShapeError(
            f"choices: expected {len(net.full_widths)} lists (one per layer), got {len(choices)}"
        )
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for idx in _batches(len(y), batch_size, steps, g):
        widths = sample_widths(choices, g)
        idx = idx.to(x.device)
        loss = F.cross_entropy(net(x[idx], widths), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def train_steps(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> list[float]:
    """``steps`` Adam steps on minibatch cross-entropy (training, fine-tuning)."""
    steps = check_positive_int("steps", steps)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for idx in _batches(len(y), batch_size, steps, g):
        idx = idx.to(x.device)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@dataclass
class SearchResult:
    """The best width vector found, its score and cost, and every evaluation."""

    widths: tuple[int, ...]
    score: float
    cost: float
    evaluations: int
    history: list[tuple[tuple[int, ...], float]] = field(default_factory=list)


def evolutionary_search(
    score: Callable[[tuple[int, ...]], float],
    choices: Sequence[Sequence[int]],
    cost: Callable[[tuple[int, ...]], float],
    budget: float,
    min_cost: float = 0.0,
    population: int = 20,
    generations: int = 10,
    top_k: int = 8,
    mutation_prob: float = 0.1,
    seed: int = 0,
    max_tries: int = 1000,
) -> SearchResult:
    r"""MetaPruning's evolutionary search for widths with ``min_cost <= cost(w) <= budget``.

    Generation 0 is ``population`` random feasible width vectors. Each next
    generation keeps the ``top_k`` best so far and fills the rest half with
    mutations (each gene of a random parent redrawn from its choices with
    probability ``mutation_prob``) and half with uniform crossovers of two
    parents; infeasible or already evaluated children are discarded. ``score``
    (higher is better; here validation accuracy with generated weights) is
    evaluated once per distinct vector. ``min_cost`` keeps the search near the
    budget: with generated weights, small networks can score as well as larger
    ones within the validation noise, and a result far under the budget is not
    a comparison at equal budget. Each fill of a generation gives up after
    ``max_tries`` draws (a small feasible set is soon exhausted).
    """
    population = check_positive_int("population", population)
    generations = check_int("generations", generations, minimum=0)
    top_k = check_positive_int("top_k", top_k)
    mutation_prob = check_float("mutation_prob", mutation_prob, low=0.0, high=1.0)
    if not choices or any(len(c) == 0 for c in choices):
        raise HypercoreError("choices: expected a non-empty list of widths for every layer")
    g = torch.Generator().manual_seed(seed)
    seen: dict[tuple[int, ...], float] = {}
    history: list[tuple[tuple[int, ...], float]] = []

    def evaluate(w: tuple[int, ...]) -> None:
        seen[w] = float(score(w))
        history.append((w, seen[w]))

    def fill(make: Callable[[], tuple[int, ...]], count: int) -> None:
        made, tries = 0, 0
        while made < count and tries < max_tries:
            tries += 1
            w = make()
            if w not in seen and min_cost <= cost(w) <= budget:
                evaluate(w)
                made += 1

    def pick(pool: list[tuple[int, ...]]) -> tuple[int, ...]:
        return pool[int(torch.randint(len(pool), (1,), generator=g))]

    fill(lambda: sample_widths(choices, g), population)
    if not seen:
        raise HypercoreError(
            f"budget: no width vector among {max_tries} random draws costs between "
            f"{min_cost} and {budget}"
        )
    for _ in range(generations):
        parents = sorted(seen, key=lambda w: -seen[w])[:top_k]

        def mutate(parents: list[tuple[int, ...]] = parents) -> tuple[int, ...]:
            p = pick(parents)
            redraw = sample_widths(choices, g)
            flips = torch.rand(len(p), generator=g) < mutation_prob
            return tuple(r if f else v for v, r, f in zip(p, redraw, flips.tolist(), strict=True))

        def cross(parents: list[tuple[int, ...]] = parents) -> tuple[int, ...]:
            a, b = pick(parents), pick(parents)
            take_a = torch.rand(len(a), generator=g) < 0.5
            return tuple(u if t else v for u, v, t in zip(a, b, take_a.tolist(), strict=True))

        fill(mutate, population // 2)
        fill(cross, population - population // 2)
    best = max(seen, key=lambda w: (seen[w], -cost(w)))
    return SearchResult(best, seen[best], float(cost(best)), len(seen), history)


def uniform_widths(
    full_widths: Sequence[int], cost: Callable[[tuple[int, ...]], float], budget: float
) -> tuple[int, ...]:
    r"""The widest uniformly scaled widths :math:`\lfloor \alpha W_l \rceil` (at least 1)
    with ``cost <= budget``: the largest :math:`\alpha \in (0, 1]` (by bisection on
    the rounded widths)."""
    full = _widths("full_widths", full_widths)

    def at(alpha: float) -> tuple[int, ...]:
        return tuple(max(1, min(m, round(alpha * m))) for m in full)

    if cost(at(0.0)) > budget:
        raise HypercoreError(f"budget: even width 1 everywhere costs {cost(at(0.0))} > {budget}")
    candidates = sorted({at(k / max(full)) for k in range(max(full) + 1)}, key=lambda w: sum(w))
    feasible = [w for w in candidates if cost(w) <= budget]
    return max(feasible, key=lambda w: (cost(w), sum(w)))


def _hidden(model: nn.Module) -> list[nn.Linear]:
    return _linears(model)[:-1]


def prune_channels(model: nn.Module, widths: Sequence[int]) -> nn.Module:
    """Keep ``widths[l]`` units of hidden layer ``l``: those with the largest L2 row norm.

    ``torch.nn.utils.prune.ln_structured(n=2, dim=0)`` on each hidden layer's
    weight (its rows are the units), pruning ``W_l - widths[l]`` rows, and the
    same mask on its bias, so a pruned unit outputs exactly 0 and the next
    layer's matching columns see nothing. The masks stay during fine-tuning
    (pruned weights get no update). Returns ``model``, pruned in place.
    """
    from torch.nn.utils import prune

    hidden = _hidden(model)
    widths = _widths("widths", widths, [lin.out_features for lin in hidden])
    for lin, w in zip(hidden, widths, strict=True):
        prune.ln_structured(lin, "weight", amount=lin.out_features - w, n=2, dim=0)
        mask: torch.Tensor = getattr(lin, "weight_mask")  # noqa: B009 (set by prune)
        keep = mask.any(dim=1).to(lin.bias.dtype)
        prune.custom_from_mask(lin, "bias", keep)
    return model


def prune_weights(model: nn.Module, amount: float) -> nn.Module:
    """Zero the fraction ``amount`` of each layer's weights, smallest magnitude first
    (``torch.nn.utils.prune.l1_unstructured``; biases are kept)."""
    from torch.nn.utils import prune

    amount = check_float("amount", amount, low=0.0, high=1.0)
    for lin in _linears(model):
        prune.l1_unstructured(lin, "weight", amount=amount)
    return model


def nonzero_params(model: nn.Module) -> int:
    """Non-zero weights and biases of ``model``'s linear layers (masks applied) that
    still matter: a weight reading a dead unit (all-zero row and bias in the layer
    before, see :func:`effective_widths`) is not counted."""
    total, alive = 0, None
    for lin in _linears(model):
        w = lin.weight if alive is None else lin.weight[:, alive]
        total += int((w != 0).sum()) + int((lin.bias != 0).sum())
        alive = (lin.weight != 0).any(dim=1) | (lin.bias != 0)
    return total


def effective_widths(model: nn.Module) -> tuple[int, ...]:
    """Hidden units that are alive (a non-zero weight row or bias): the widths after
    removing dead units, which a dense implementation of the pruned MLP needs."""
    return tuple(
        int(((lin.weight != 0).any(dim=1) | (lin.bias != 0)).sum()) for lin in _hidden(model)
    )


def dense_flops(model: nn.Module) -> int:
    """Multiply-accumulates of a dense MLP at :func:`effective_widths` (zeros inside
    the remaining matrices are still multiplied)."""
    linears = _linears(model)
    return mlp_flops(effective_widths(model), linears[0].in_features, linears[-1].out_features)


def amount_for(full: int, target: int) -> float:
    """The pruning fraction that keeps ``target`` of ``full`` items (clamped to [0, 1])."""
    if full <= 0:
        raise HypercoreError(f"full: expected > 0, got {full}")
    return min(1.0, max(0.0, 1.0 - target / full))
