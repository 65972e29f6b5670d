r"""Ensembles of networks, independent or generated: accuracy, diversity and cost.

An ensemble of :math:`N` classifiers with class probabilities :math:`p_k(y \mid x)`
predicts with their mean,

.. math:: \bar p_N(y \mid x) = \frac1N \sum_{k=1}^N p_k(y \mid x).

Its members can be trained independently (a deep ensemble, Lakshminarayanan et
al., 2017), drawn from a noise-conditioned hypernetwork (HyperGAN, Ratzlaff &
Fuxin, 2019: see :mod:`hypercore.apps.uncertainty`), or generated from one
learned embedding per member (:func:`member_embedding_ensemble`, a
BatchEnsemble-like parameter-sharing ensemble, Wen et al., 2020).

What this module measures, for the first :math:`N` members of ``(K, B, C)``
member probabilities (:func:`nested_metrics`):

* the ensemble's accuracy and negative log-likelihood (NLL) of :math:`\bar p_N`;
* its **gain** over its average member,
  :math:`\frac1N\sum_k \mathrm{NLL}(p_k) - \mathrm{NLL}(\bar p_N) \ge 0`
  (Jensen's inequality: 0 exactly when the members agree on the true class's
  probability), and the same for the accuracy;
* the members' **disagreement**: the fraction of member pairs whose predicted
  classes differ, averaged over the inputs
  (:func:`hypercore.apps.uncertainty.disagreement`).

And the cost: :func:`linear_macs` counts the multiply-accumulates of the
``nn.Linear`` layers a call runs (a target's pass, a generator's weight
generation).

Only torch (and hypercore) is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hypercore.apps.uncertainty import disagreement
from hypercore.errors import (
    HypercoreTypeError,
    ShapeError,
    check_int_sequence,
    check_positive_int,
    check_tensor,
    shape_str,
)
from hypercore.hypernetwork import HyperNetwork


def _member_probs(probs: object) -> torch.Tensor:
    p = check_tensor("member_probs", probs)
    if p.dim() != 3:
        raise ShapeError(
            f"member_probs: expected member probabilities (K, B, C), got {shape_str(p.shape)}"
        )
    return p


def _labels(labels: object, n: int) -> torch.Tensor:
    y = check_tensor("labels", labels)
    if y.dim() != 1 or y.shape[0] != n or y.dtype.is_floating_point:
        raise ShapeError(
            f"labels: expected integer labels of shape ({n},), got {y.dtype} {shape_str(y.shape)}"
        )
    return y


def _nll(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # probs (..., B, C), labels (B,) -> (...) mean NLL over the inputs
    picked = probs.gather(-1, labels.expand(*probs.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    return -picked.clamp_min(1e-12).log().mean(-1)


def ensemble_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""Sum over members of each member's mean cross-entropy:
    :math:`\sum_{k=1}^K \frac1B \sum_i \mathrm{CE}(z_{ki}, y_i)`.

    With one Adam optimiser this trains each member as if alone on the same
    batches (each member's gradient involves only its own term). Shapes: ``logits``
    ``(K, B, C)``, ``labels`` ``(B,)`` -> a scalar.
    """
    z = check_tensor("logits", logits)
    if z.dim() != 3:
        raise ShapeError(f"logits: expected member logits (K, B, C), got {shape_str(z.shape)}")
    y = _labels(labels, z.shape[1])
    k = z.shape[0]
    return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.repeat(k)) * k


def nested_metrics(
    member_probs: torch.Tensor, labels: torch.Tensor, sizes: Sequence[int]
) -> list[dict[str, float]]:
    r"""Accuracy, NLL, gain and disagreement of the ensembles of the first ``N``
    members, for each ``N`` in ``sizes``.

    Args:
        member_probs: ``(K, B, C)`` class probabilities of ``K`` members on ``B`` inputs.
        labels: ``(B,)`` integer labels.
        sizes: ensemble sizes, each in ``1..K``.

    Returns:
        One dict per size, with keys ``members`` (``N``), ``accuracy`` and ``NLL``
        (of :math:`\bar p_N`), ``member accuracy`` and ``member NLL`` (the average
        member's), ``NLL gain`` (member NLL minus ensemble NLL, :math:`\ge 0`),
        ``accuracy gain`` (ensemble minus member accuracy) and ``disagreement``
        (pairwise, 0 for ``N = 1``).
    """
    p = _member_probs(member_probs)
    y = _labels(labels, p.shape[1])
    k = p.shape[0]
    ns = check_int_sequence("sizes", sizes)
    if any(n > k for n in ns):
        raise ShapeError(f"sizes: every size must be at most the {k} members given, got {ns}")
    member_nll = _nll(p, y)  # (K,)
    member_acc = (p.argmax(-1) == y).float().mean(-1)  # (K,)
    rows = []
    for n in ns:
        mean = p[:n].mean(0)
        acc = float((mean.argmax(-1) == y).float().mean())
        nll = float(_nll(mean, y))
        m_nll = float(member_nll[:n].mean())
        m_acc = float(member_acc[:n].mean())
        rows.append(
            {
                "members": float(n),
                "accuracy": acc,
                "NLL": nll,
                "member accuracy": m_acc,
                "member NLL": m_nll,
                "NLL gain": m_nll - nll,
                "accuracy gain": acc - m_acc,
                "disagreement": float(disagreement(p[:n])) if n > 1 else 0.0,
            }
        )
    return rows


def member_embedding_ensemble(
    module: nn.Module, num_members: int, embedding_dim: int = 8
) -> HyperNetwork:
    r"""A hypernetwork ensemble with one learned embedding per member and a scaling head.

    Member :math:`k` has an embedding :math:`e_k` (:class:`~hypercore.TaskEmbedding`);
    one linear layer maps it to a scale per output unit of each weight matrix
    and to the biases (:class:`~hypercore.heads.ScalingHead`):

    .. math:: W_{j,k} = \operatorname{diag}\big(s_j(e_k)\big)\, W_{0,j},\qquad b_{j,k} = b_j(e_k),

    with shared bases :math:`W_{0,j}`. This is BatchEnsemble's parameter sharing
    (Wen et al., 2020: :math:`W_k = W_0 \circ r_k s_k^\top`) with only the output-side
    factor :math:`r_k`, generated from an embedding instead of stored. Run all
    members with ``hnet.forward_sets(x, torch.arange(num_members))`` -> ``(K, B, ...)``.

    Args:
        module: the target network (its weight matrices become the shared bases).
        num_members: ``K``.
        embedding_dim: size of each member's embedding.
    """
    from hypercore.inputs import TaskEmbedding

    if not isinstance(module, nn.Module):
        raise HypercoreTypeError(f"module: expected an nn.Module, got {type(module).__name__}")
    k = check_positive_int("num_members", num_members)
    e = check_positive_int("embedding_dim", embedding_dim)
    return HyperNetwork.build(module, TaskEmbedding(k, e), head="scaling", body_hidden=())


def trainable_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``) of ``model``."""
    if not isinstance(model, nn.Module):
        raise HypercoreTypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def linear_macs(model: nn.Module, call: Callable[[], object]) -> int:
    r"""Multiply-accumulates of the ``nn.Linear`` layers of ``model`` during ``call()``.

    A linear layer applied to ``R`` rows costs :math:`R \cdot \mathrm{in} \cdot
    \mathrm{out}` multiply-accumulates (biases not counted). Layers run
    functionally (e.g. a target under generated weights) are not seen: count
    those from the target's layer sizes.

    Args:
        model: the module whose ``nn.Linear`` layers are counted.
        call: runs the computation, e.g. ``lambda: hnet.generate(noise)``.
    """
    if not isinstance(model, nn.Module):
        raise HypercoreTypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not callable(call):
        raise HypercoreTypeError(f"call: expected a callable, got {type(call).__name__}")
    total = 0

    def hook(layer: nn.Module, inputs: tuple, output: object) -> None:
        nonlocal total
        assert isinstance(layer, nn.Linear)
        rows = inputs[0].numel() // layer.in_features
        total += rows * layer.in_features * layer.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            call()
    finally:
        for h in handles:
            h.remove()
    return total


__all__ = [
    "ensemble_loss",
    "linear_macs",
    "member_embedding_ensemble",
    "nested_metrics",
    "trainable_parameters",
]
