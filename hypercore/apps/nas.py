r"""Neural architecture search with a hypernetwork (SMASH, Brock et al. 2018).

SMASH trains one hypernetwork :math:`H` that maps the encoding :math:`c(a)` of
an architecture :math:`a` to that architecture's weights, drawing a random
architecture at every optimiser step:

.. math:: \min_\phi\; \mathbb E_{a \sim p(a)}\, \mathbb E_{(x, y)}\;
          \ell\big(f_a(x;\, H_\phi(c(a))),\, y\big).

After training, every candidate is *scored* by the validation accuracy of
:math:`f_a(\cdot;\, H_\phi(c(a)))`, a forward pass and no training; the best
scored architecture is then trained from scratch. The method stands on the
rank correlation between this score and the accuracy each architecture reaches
when trained normally, measured here by Kendall's :math:`\tau`.

The search space (:class:`SearchSpace`)
    MLPs with ``1..max_depth`` hidden layers; layer :math:`l` has a width
    :math:`w_l` from ``widths``, an activation :math:`\sigma_l` from
    ``activations`` and, from the second layer on, an optional parameter-free
    skip connection:

    .. math:: h_l = \sigma_l(W_l h_{l-1} + b_l) + s_l\, P_{w_l}(h_{l-1}),

    where :math:`P_w` crops or zero-pads a vector to width :math:`w`, and the
    logits are :math:`W_o h_d + b_o`.

Width-varying weights: generated at full width, then cropped
    The hypernetwork writes the weights of the *largest* network (every layer
    ``max(widths)`` wide, ``max_depth`` layers, plus the output layer);
    architecture :math:`a` uses the top-left block ``W_l[:w_l, :w_{l-1}]`` of
    each of its layers and the first ``w_d`` columns of the output layer. The
    hypernetwork's input is the architecture, so the block it writes for a
    narrow layer can differ from the one it writes for a wide one.

Kendall's tau (:func:`kendall_tau`) is the tau-b of scipy's default,

.. math:: \tau_b = \frac{\sum_{i<j} \operatorname{sgn}(p_i - p_j)\operatorname{sgn}(t_i - t_j)}
          {\sqrt{(n_0 - n_1)(n_0 - n_2)}},

with :math:`n_0 = n(n-1)/2` and :math:`n_1, n_2` the numbers of tied pairs in
each ranking; :func:`bootstrap_tau` gives a percentile interval by resampling
architectures with replacement.

Only torch (and hypercore) is imported here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_int,
    check_positive_int,
    shape_str,
)
from hypercore.hypernetwork import HyperNetwork
from hypercore.inputs import DataEncoder

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}

__all__ = [
    "Architecture",
    "ArchitectureNet",
    "SearchSpace",
    "SmashHyperNetwork",
    "bootstrap_tau",
    "evaluate",
    "kendall_tau",
    "train_architecture",
    "train_smash",
]


@dataclass(frozen=True)
class Architecture:
    """One MLP of the search space: per hidden layer a width, an activation and a skip flag.

    ``skips[0]`` is always ``False`` (the first layer reads the data).
    """

    widths: tuple[int, ...]
    activations: tuple[str, ...]
    skips: tuple[bool, ...]

    @property
    def depth(self) -> int:
        return len(self.widths)

    def __str__(self) -> str:
        layers = [
            f"{'+' if s else ''}{w}{a[0]}"
            for w, a, s in zip(self.widths, self.activations, self.skips, strict=True)
        ]
        return "-".join(layers)


@dataclass(frozen=True)
class SearchSpace:
    """MLPs ``in_features -> hidden layers -> out_features`` (see the module docstring).

    Args:
        in_features, out_features: input and output sizes.
        widths: the widths a hidden layer may have.
        max_depth: hidden layers, 1 to ``max_depth``.
        activations: names from :data:`ACTIVATIONS`.
    """

    in_features: int
    out_features: int
    widths: tuple[int, ...] = (4, 8, 16, 32)
    max_depth: int = 3
    activations: tuple[str, ...] = ("relu", "tanh")

    def __post_init__(self) -> None:
        check_positive_int("in_features", self.in_features)
        check_positive_int("out_features", self.out_features)
        check_positive_int("max_depth", self.max_depth)
        if not self.widths or any(
            not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in self.widths
        ):
            raise HypercoreError(f"widths: expected positive ints, got {self.widths!r}")
        bad = [a for a in self.activations if a not in ACTIVATIONS]
        if not self.activations or bad:
            raise HypercoreError(
                f"activations: expected names from {sorted(ACTIVATIONS)}, got {self.activations!r}"
            )

    @property
    def max_width(self) -> int:
        return max(self.widths)

    def size(self) -> int:
        """Number of architectures: :math:`\\sum_{d} (|W||A|)^d\\, 2^{d-1}`."""
        per_layer = len(self.widths) * len(self.activations)
        return sum(per_layer**d * 2 ** (d - 1) for d in range(1, self.max_depth + 1))

    def all(self) -> list[Architecture]:
        """Every architecture, in a fixed order (depth, then layer choices)."""
        out = []
        layer = list(itertools.product(self.widths, self.activations))
        for d in range(1, self.max_depth + 1):
            for choice in itertools.product(layer, repeat=d):
                for skips in itertools.product((False, True), repeat=d - 1):
                    out.append(
                        Architecture(
                            tuple(w for w, _ in choice),
                            tuple(a for _, a in choice),
                            (False, *skips),
                        )
                    )
        return out

    def sample(
        self, n: int, generator: torch.Generator, distinct: bool = False
    ) -> list[Architecture]:
        """``n`` architectures: depth uniform in ``1..max_depth``, then each choice uniform.

        With ``distinct``, repeats are redrawn (``n`` must not exceed :meth:`size`).
        """
        n = check_positive_int("n", n)
        if distinct and n > self.size():
            raise HypercoreError(f"n: at most {self.size()} distinct architectures, got {n}")
        if not isinstance(generator, torch.Generator):
            raise HypercoreTypeError(
                f"generator: expected a torch.Generator, got {type(generator).__name__}"
            )

        def pick(k: int) -> int:
            return int(torch.randint(k, (1,), generator=generator))

        out: list[Architecture] = []
        while len(out) < n:
            d = 1 + pick(self.max_depth)
            widths = tuple(self.widths[pick(len(self.widths))] for _ in range(d))
            acts = tuple(self.activations[pick(len(self.activations))] for _ in range(d))
            skips = (False, *(bool(pick(2)) for _ in range(d - 1)))
            arch = Architecture(widths, acts, skips)
            if not (distinct and arch in out):
                out.append(arch)
        return out

    def check(self, arch: Architecture) -> Architecture:
        """``arch`` if it belongs to the space, else a :class:`HypercoreError` naming why."""
        if not isinstance(arch, Architecture):
            raise HypercoreTypeError(f"arch: expected an Architecture, got {type(arch).__name__}")
        d = arch.depth
        if not 1 <= d <= self.max_depth:
            raise HypercoreError(f"arch: expected depth 1..{self.max_depth}, got {d}")
        if len(arch.activations) != d or len(arch.skips) != d:
            raise HypercoreError(
                f"arch: widths, activations and skips must have one entry per layer, got "
                f"{len(arch.widths)}, {len(arch.activations)}, {len(arch.skips)}"
            )
        if any(w not in self.widths for w in arch.widths):
            raise HypercoreError(f"arch: widths must be in {self.widths}, got {arch.widths}")
        if any(a not in self.activations for a in arch.activations):
            raise HypercoreError(
                f"arch: activations must be in {self.activations}, got {arch.activations}"
            )
        if arch.skips[0]:
            raise HypercoreError("arch: the first layer cannot have a skip connection")
        return arch

    @property
    def encoding_dim(self) -> int:
        """Per layer slot: present, one-hot width, one-hot activation, skip."""
        return self.max_depth * (2 + len(self.widths) + len(self.activations))

    def encode(self, archs: Sequence[Architecture]) -> torch.Tensor:
        """The binary encodings of ``archs``: ``(N, encoding_dim)`` (absent slots are zero)."""
        rows = []
        slot = 2 + len(self.widths) + len(self.activations)
        for arch in archs:
            self.check(arch)
            row = torch.zeros(self.encoding_dim)
            for layer, (w, a, s) in enumerate(
                zip(arch.widths, arch.activations, arch.skips, strict=True)
            ):
                base = layer * slot
                row[base] = 1.0
                row[base + 1 + self.widths.index(w)] = 1.0
                row[base + 1 + len(self.widths) + self.activations.index(a)] = 1.0
                row[base + slot - 1] = float(s)
            rows.append(row)
        return torch.stack(rows)

    def num_parameters(self, arch: Architecture) -> int:
        """Trainable parameters of ``arch`` trained on its own (no hypernetwork)."""
        self.check(arch)
        sizes = (self.in_features, *arch.widths, self.out_features)
        return sum(a * b + b for a, b in itertools.pairwise(sizes))

    def supernet(self) -> nn.Sequential:
        """The largest network's layers, whose weights the hypernetwork writes:
        ``max_depth`` hidden ``Linear`` layers ``max_width`` wide, then the output layer
        (named ``"0"``, ``"1"``, ..., ``str(max_depth)``)."""
        w = self.max_width
        layers = [nn.Linear(self.in_features, w)]
        layers += [nn.Linear(w, w) for _ in range(self.max_depth - 1)]
        layers.append(nn.Linear(w, self.out_features))
        return nn.Sequential(*layers)


def _pad_or_crop(h: torch.Tensor, width: int) -> torch.Tensor:
    if h.shape[-1] >= width:
        return h[..., :width]
    return F.pad(h, (0, width - h.shape[-1]))


def forward_layers(
    x: torch.Tensor, layers: Sequence[tuple[torch.Tensor, torch.Tensor]], arch: Architecture
) -> torch.Tensor:
    """Apply ``arch`` with the given ``(weight, bias)`` per layer (hidden layers, then output).

    Args:
        x: ``(B, in_features)``.
        layers: ``depth + 1`` pairs, weight ``(out, in)`` and bias ``(out,)``, already of
            the architecture's sizes.

    Returns:
        logits ``(B, out_features)``.
    """
    if len(layers) != arch.depth + 1:
        raise HypercoreError(
            f"layers: expected {arch.depth + 1} (weight, bias) pairs, got {len(layers)}"
        )
    h = x
    for (weight, bias), act, skip in zip(layers[:-1], arch.activations, arch.skips, strict=True):
        out = ACTIVATIONS[act](F.linear(h, weight, bias))
        h = out + _pad_or_crop(h, out.shape[-1]) if skip else out
    weight, bias = layers[-1]
    return F.linear(h, weight, bias)


class ArchitectureNet(nn.Module):
    """One architecture with its own trainable weights (PyTorch's default ``Linear`` init)."""

    def __init__(self, space: SearchSpace, arch: Architecture):
        super().__init__()
        self.arch = space.check(arch)
        sizes = (space.in_features, *arch.widths, space.out_features)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        linears: list[nn.Linear] = list(self.layers)  # type: ignore[arg-type]
        return forward_layers(x, [(m.weight, m.bias) for m in linears], self.arch)


class SmashHyperNetwork(nn.Module):
    """SMASH's hypernetwork: architecture encoding -> full-width weights -> cropped network.

    A hypercore :class:`~hypercore.HyperNetwork` on :meth:`SearchSpace.supernet`,
    conditioned by a :class:`~hypercore.DataEncoder` on the binary encoding (an MLP
    ``encoding_dim -> hidden -> embedding_dim``), with an MLP body and the chosen head.

    Args:
        space: the search space.
        embedding_dim, encoder_hidden, body_hidden, head: the hypernetwork's size.
        **head_options: passed to the head (e.g. ``chunk_size`` for ``head="chunk"``).
    """

    def __init__(
        self,
        space: SearchSpace,
        embedding_dim: int = 32,
        encoder_hidden: Sequence[int] = (64,),
        body_hidden: Sequence[int] = (64,),
        head: str = "once",
        **head_options: Any,
    ):
        super().__init__()
        self.space = space
        conditioner = DataEncoder(space.encoding_dim, embedding_dim, hidden=encoder_hidden)
        self.hnet = HyperNetwork.build(
            space.supernet(), conditioner, head=head, body_hidden=body_hidden, **head_options
        )
        # the supernet's own tensors are only a template of the shapes: never trained
        for p in self.hnet.target.module.parameters():
            p.requires_grad_(False)

    def num_parameters(self) -> int:
        """Trainable parameters: the conditioner, body and head (not the supernet template)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def layers(self, arch: Architecture) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The generated, cropped ``(weight, bias)`` pairs of ``arch`` (``depth + 1``)."""
        enc = self.space.encode([arch]).to(next(self.parameters()))
        full = {k: v[0] for k, v in self.hnet.generate(enc).items()}
        sizes = (self.space.in_features, *arch.widths)
        out = []
        for i in range(arch.depth):
            w, b = full[f"{i}.weight"], full[f"{i}.bias"]
            out.append((w[: sizes[i + 1], : sizes[i]], b[: sizes[i + 1]]))
        last = str(self.space.max_depth)
        out.append((full[f"{last}.weight"][:, : arch.widths[-1]], full[f"{last}.bias"]))
        return out

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        """Logits ``(B, out_features)`` of ``arch`` with generated weights, ``x``: ``(B, in)``."""
        if x.dim() != 2 or x.shape[1] != self.space.in_features:
            raise ShapeError(
                f"x: expected shape (B, {self.space.in_features}), got {shape_str(x.shape)}"
            )
        return forward_layers(x, self.layers(arch), arch)


def _check_data(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise HypercoreTypeError("x, y: expected tensors")
    if x.dim() != 2 or y.dim() != 1 or len(x) != len(y):
        raise ShapeError(
            f"x, y: expected (N, F) and (N,), got {shape_str(x.shape)} and {shape_str(y.shape)}"
        )


def _batches(
    n: int, batch_size: int, steps: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """``steps`` mini-batch index tensors, reshuffling each epoch."""
    perm = torch.randperm(n, generator=generator)
    pos = 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=generator), 0
        yield perm[pos : pos + batch_size]
        pos += batch_size


def train_smash(
    model: SmashHyperNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` with one random architecture (:meth:`SearchSpace.sample`) per step.

    Adam on the cross-entropy of one mini-batch per step. Returns the per-step losses.
    """
    _check_data(x, y)
    steps = check_int("steps", steps, minimum=0)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for idx in _batches(len(x), batch_size, steps, g):
        arch = model.space.sample(1, g)[0]
        loss = F.cross_entropy(model(x[idx], arch), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def train_architecture(
    space: SearchSpace,
    arch: Architecture,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> ArchitectureNet:
    """Train ``arch`` from scratch: ``steps`` Adam steps on mini-batches (init and order
    from ``seed``). The same optimiser-step unit as :func:`train_smash`."""
    _check_data(x, y)
    steps = check_int("steps", steps, minimum=0)
    torch.manual_seed(seed)
    net = ArchitectureNet(space, arch)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for idx in _batches(len(x), batch_size, steps, g):
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, arch: Architecture | None = None
) -> float:
    """Accuracy of ``model(x)`` (or ``model(x, arch)`` for a :class:`SmashHyperNetwork`)."""
    _check_data(x, y)
    logits = model(x) if arch is None else model(x, arch)
    return float((logits.argmax(-1) == y).float().mean())


def _as_vector(name: str, values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64)
    if t.dim() != 1:
        raise ShapeError(f"{name}: expected a 1-d sequence, got shape {shape_str(t.shape)}")
    return t


def kendall_tau(a: Sequence[float] | torch.Tensor, b: Sequence[float] | torch.Tensor) -> float:
    """Kendall's tau-b between two rankings (scipy's default variant); ``nan`` when one
    ranking is constant. ``O(n^2)`` memory, fine for hundreds of items."""
    ta, tb = _as_vector("a", a), _as_vector("b", b)
    if len(ta) != len(tb):
        raise ShapeError(f"a, b: expected the same length, got {len(ta)} and {len(tb)}")
    if len(ta) < 2:
        raise HypercoreError(f"a, b: expected at least 2 items, got {len(ta)}")
    sa = torch.sign(ta[:, None] - ta[None, :])
    sb = torch.sign(tb[:, None] - tb[None, :])
    upper = torch.triu(torch.ones_like(sa, dtype=torch.bool), diagonal=1)
    n0 = float(upper.sum())
    n1 = float(((sa == 0) & upper).sum())
    n2 = float(((sb == 0) & upper).sum())
    denom = math.sqrt((n0 - n1) * (n0 - n2))
    if denom == 0:
        return math.nan
    return float((sa * sb)[upper].sum()) / denom


def bootstrap_tau(
    a: Sequence[float] | torch.Tensor,
    b: Sequence[float] | torch.Tensor,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`kendall_tau` over items (architectures):
    resample the ``n`` pairs with replacement ``resamples`` times; undefined (``nan``)
    resamples are dropped. Returns ``(low, high)``."""
    ta, tb = _as_vector("a", a), _as_vector("b", b)
    if len(ta) != len(tb):
        raise ShapeError(f"a, b: expected the same length, got {len(ta)} and {len(tb)}")
    resamples = check_positive_int("resamples", resamples)
    if not 0 < confidence < 1:
        raise HypercoreError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    g = torch.Generator().manual_seed(seed)
    taus = []
    for _ in range(resamples):
        idx = torch.randint(len(ta), (len(ta),), generator=g)
        taus.append(kendall_tau(ta[idx], tb[idx]))
    t = torch.tensor(taus, dtype=torch.float64)
    t = t[~torch.isnan(t)]
    if len(t) == 0:
        return math.nan, math.nan
    alpha = (1 - confidence) / 2
    q = torch.quantile(t, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return float(q[0]), float(q[1])
