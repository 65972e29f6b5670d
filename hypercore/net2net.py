r"""Function-preserving widening (Net2WiderNet), a baseline for hypernetworks that write
networks of new widths.

Chen, Goodfellow & Shlens (ICLR 2016) widen a trained layer without changing the
function it computes: every new hidden unit copies the incoming weights and bias of an
existing unit, and each original unit's outgoing weights are split among its copies.
For a hidden layer :math:`h = \sigma(W_1 x + b_1)` feeding :math:`y = W_2 h + b_2`,
with a map :math:`g: \{1..W'\} \to \{1..W\}` from new units to old ones (onto),

.. math::

    W_1'[j, :] = W_1[g(j), :], \qquad b_1'[j] = b_1[g(j)], \qquad
    W_2'[:, j] = p_j\, W_2[:, g(j)],

with fractions :math:`p_j > 0` that sum to one over the copies of each old unit, so
:math:`\sum_{j: g(j) = i} p_j\, h'_j = h_i` and :math:`y' = y` for any element-wise
:math:`\sigma`. The paper splits equally (:math:`p_j = 1/\text{copies}`) and adds a
little noise to break the symmetry between copies; with an equal split and no noise the
copies receive identical gradients and stay identical. :func:`net2wider` offers
``split="random"`` instead: unequal positive fractions keep the function exactly and
still give the copies different gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from hypercore.errors import HypercoreError

SPLITS = ("equal", "random")


@torch.no_grad()
def net2wider(
    first: nn.Linear,
    second: nn.Linear,
    width: int,
    *,
    split: str = "random",
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[nn.Linear, nn.Linear]:
    """Widen the hidden layer between ``first`` and ``second`` to ``width`` units.

    The old units keep their places (new unit ``j < W`` is old unit ``j``); the extra
    units copy old units chosen at random. The result computes the same function (up
    to floating-point rounding) whenever ``noise == 0``.

    Args:
        first: the layer producing the hidden units, ``(W, in)``.
        second: the layer consuming them (after an element-wise activation), ``(out, W)``.
        width: the new hidden width, ``>= W``.
        split: how an old unit's outgoing weights are shared among its copies:
            ``"equal"`` (Net2Net's) or ``"random"`` (positive fractions from a flat
            Dirichlet: still exact, and it breaks the symmetry between copies).
        noise: standard deviation, relative to the std of ``first.weight``, of
            Gaussian noise added to the copied incoming weights (Net2Net's symmetry
            breaker; the function is then only approximately preserved).
        generator: for the choice of copied units, the fractions and the noise.

    Returns:
        New ``(first, second)`` layers (the originals are not modified).
    """
    if not isinstance(first, nn.Linear) or not isinstance(second, nn.Linear):
        raise HypercoreError(
            f"net2wider: expected two nn.Linear layers, got {type(first).__name__} and "
            f"{type(second).__name__}"
        )
    old = first.out_features
    if second.in_features != old:
        raise HypercoreError(
            f"net2wider: first has {old} outputs but second has {second.in_features} inputs"
        )
    if not isinstance(width, int) or width < old:
        raise HypercoreError(
            f"width: expected an integer >= {old} (the current width), got {width!r}"
        )
    if split not in SPLITS:
        raise HypercoreError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    if not noise >= 0:
        raise HypercoreError(f"noise: expected a number >= 0, got {noise!r}")
    device = first.weight.device
    extra = torch.randint(0, old, (width - old,), generator=generator).to(device)
    source = torch.cat([torch.arange(old, device=device), extra])  # g: new unit -> old unit
    counts = torch.bincount(source, minlength=old).to(first.weight.dtype)
    if split == "equal":
        fractions = 1.0 / counts[source]
    else:  # flat Dirichlet per old unit: exponentials normalised over each unit's copies
        draws = torch.empty(width, dtype=first.weight.dtype).exponential_(generator=generator)
        draws = draws.to(device)
        totals = torch.zeros(old, dtype=draws.dtype, device=device).index_add_(0, source, draws)
        fractions = draws / totals[source]

    wide_first = nn.Linear(first.in_features, width, bias=first.bias is not None)
    wide_second = nn.Linear(width, second.out_features, bias=second.bias is not None)
    wide_first.to(device=device, dtype=first.weight.dtype)
    wide_second.to(device=device, dtype=second.weight.dtype)
    weight = first.weight[source].clone()
    if noise > 0 and width > old:
        scale = noise * float(first.weight.std())
        jitter = torch.randn(width - old, first.in_features, generator=generator) * scale
        weight[old:] += jitter.to(device=device, dtype=weight.dtype)
    wide_first.weight.copy_(weight)
    if first.bias is not None:
        wide_first.bias.copy_(first.bias[source])
    wide_second.weight.copy_(second.weight[:, source] * fractions)
    if second.bias is not None:
        wide_second.bias.copy_(second.bias)
    return wide_first, wide_second
