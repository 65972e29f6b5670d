r"""Calibration and uncertainty metrics for classifiers (shared by the application chapters).

Every function takes probabilities or logits as torch tensors and returns torch
tensors (or a small dataclass of them); nothing here trains a model except
:func:`fit_temperature`, which fits one scalar.

Notation: :math:`N` inputs, :math:`C` classes, :math:`K` sampled predictions
(ensemble members, weight draws of a hypernetwork, dropout masks);
:math:`p_{k}(y \mid x_n)` the :math:`k`-th prediction and
:math:`\bar p(y \mid x_n) = \frac1K \sum_k p_k(y \mid x_n)` the predictive mean.

* :func:`nll`: :math:`-\frac1N \sum_n \log \bar p(y_n \mid x_n)`.
* :func:`reliability_bins` / :func:`expected_calibration_error`: equal-width
  confidence bins :math:`B_b = ((b-1)/M, b/M]`, confidence :math:`\max_y \bar p(y \mid x)`,
  :math:`\mathrm{ECE} = \sum_b \frac{|B_b|}{N}\,|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|`
  (Guo et al., 2017).
* :func:`auroc`: the area under the ROC curve of a score separating positives
  (e.g. out-of-distribution inputs) from negatives, by the Mann-Whitney statistic
  with average ranks for ties (a tie counts one half).
* :func:`predictive_entropy`, :func:`expected_entropy`, :func:`mutual_information`:
  :math:`\mathbb H[\bar p]`, :math:`\frac1K\sum_k \mathbb H[p_k]` and their difference,
  the disagreement between the sampled predictions (epistemic part).
* :func:`fit_temperature`: temperature scaling, :math:`T^\star = \arg\min_T
  \mathrm{NLL}(\mathrm{softmax}(z / T))` on a validation split, by L-BFGS on
  :math:`\log T` (Guo et al., 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hypercore.errors import (
    HypercoreError,
    ShapeError,
    check_positive_int,
    check_tensor,
    shape_str,
)

#: Probabilities are clamped to at least this before a logarithm.
EPS = 1e-12


def _probs(name: str, probs: object, dims: tuple[int, ...] = (2,)) -> torch.Tensor:
    """``probs`` as a floating tensor with one of the allowed numbers of dimensions."""
    t = check_tensor(name, probs)
    if t.dim() not in dims or t.shape[-1] < 1 or t.numel() == 0:
        wanted = " or ".join({2: "(N, C)", 3: "(K, N, C)"}[d] for d in dims)
        raise ShapeError(
            f"{name}: expected probabilities of shape {wanted}, got {shape_str(t.shape)}"
        )
    if not t.is_floating_point():
        raise HypercoreError(f"{name}: expected floating-point probabilities, got {t.dtype}")
    return t


def _labels(name: str, labels: object, n: int) -> torch.Tensor:
    t = check_tensor(name, labels)
    if t.dim() != 1 or t.shape[0] != n:
        raise ShapeError(f"{name}: expected class labels of shape ({n},), got {shape_str(t.shape)}")
    if t.is_floating_point() or t.dtype == torch.bool:
        raise HypercoreError(f"{name}: expected integer class labels, got {t.dtype}")
    return t.long()


def entropy(probs: torch.Tensor) -> torch.Tensor:
    r"""Shannon entropy in nats along the last dimension, :math:`-\sum_c p_c \log p_c`.

    Shapes: ``(..., C) -> (...)``.
    """
    p = check_tensor("probs", probs)
    return -(p * p.clamp_min(EPS).log()).sum(-1)


def nll(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r"""Mean negative log-likelihood :math:`-\frac1N\sum_n \log p(y_n \mid x_n)` (nats).

    Args:
        probs: predicted probabilities ``(N, C)`` (for sampled predictions, their
            mean: ``sample_probs.mean(0)``).
        labels: ``(N,)`` integer classes.

    Returns:
        A scalar tensor.
    """
    p = _probs("probs", probs)
    y = _labels("labels", labels, p.shape[0])
    return -p.gather(1, y[:, None]).clamp_min(EPS).log().mean()


@dataclass
class ReliabilityBins:
    """Equal-width confidence bins of a classifier (a reliability diagram's data).

    Attributes, each ``(M,)`` for ``M`` bins (empty bins have count 0 and
    ``accuracy``/``confidence`` 0), except ``edges``:

    * ``edges``: ``(M + 1,)`` bin edges ``0, 1/M, ..., 1``; bin ``b`` is
      ``(edges[b], edges[b+1]]`` (the first also holds confidence 0).
    * ``counts``: inputs per bin.
    * ``accuracy``: fraction of correct predictions per bin.
    * ``confidence``: mean confidence per bin.
    """

    edges: torch.Tensor
    counts: torch.Tensor
    accuracy: torch.Tensor
    confidence: torch.Tensor

    @property
    def ece(self) -> torch.Tensor:
        r""":math:`\sum_b \frac{n_b}{N} |\mathrm{acc}_b - \mathrm{conf}_b|`."""
        weights = self.counts / self.counts.sum().clamp_min(1)
        return (weights * (self.accuracy - self.confidence).abs()).sum()


def reliability_bins(
    probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 10
) -> ReliabilityBins:
    """Bin the predictions by confidence (the largest probability) into ``num_bins``
    equal-width bins and measure each bin's accuracy and mean confidence.

    Args:
        probs: ``(N, C)`` predicted probabilities.
        labels: ``(N,)`` integer classes.
        num_bins: ``M``, the number of bins over ``[0, 1]``.
    """
    p = _probs("probs", probs)
    y = _labels("labels", labels, p.shape[0])
    m = check_positive_int("num_bins", num_bins)
    confidence, prediction = p.max(1)
    correct = (prediction == y).to(p.dtype)
    index = (torch.ceil(confidence * m).long() - 1).clamp(0, m - 1)
    counts = torch.zeros(m, dtype=p.dtype, device=p.device).index_add_(
        0, index, torch.ones_like(confidence)
    )
    sum_conf = torch.zeros_like(counts).index_add_(0, index, confidence)
    sum_acc = torch.zeros_like(counts).index_add_(0, index, correct)
    safe = counts.clamp_min(1)
    edges = torch.linspace(0, 1, m + 1, dtype=p.dtype, device=p.device)
    return ReliabilityBins(edges, counts, sum_acc / safe, sum_conf / safe)


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, num_bins: int = 10
) -> torch.Tensor:
    """Expected calibration error over ``num_bins`` equal-width confidence bins (a scalar)."""
    return reliability_bins(probs, labels, num_bins).ece


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    r"""Area under the ROC curve of ``scores`` for telling ``positive`` inputs apart.

    The probability that a random positive scores higher than a random negative,
    ties counting one half: with average ranks :math:`r` of the pooled scores
    (1 = lowest), :math:`n_+` positives and :math:`n_-` negatives,

    .. math:: \mathrm{AUROC} = \frac{\sum_{i \in +} r_i - n_+(n_+ + 1)/2}{n_+ n_-}.

    For out-of-distribution detection, ``positive`` marks the OOD inputs and the
    score is an uncertainty (e.g. :func:`predictive_entropy`): higher means "more
    likely OOD".

    Args:
        scores: ``(N,)`` real scores.
        positive: ``(N,)`` booleans (or 0/1 integers), with at least one of each.

    Returns:
        A scalar tensor in ``[0, 1]`` (0.5: no better than chance).
    """
    s = check_tensor("scores", scores)
    if s.dim() != 1 or s.numel() == 0:
        raise ShapeError(f"scores: expected a 1-D tensor (N,), got {shape_str(s.shape)}")
    pos = check_tensor("positive", positive)
    if pos.shape != s.shape:
        raise ShapeError(
            f"positive: expected the shape of scores {shape_str(s.shape)}, "
            f"got {shape_str(pos.shape)}"
        )
    if pos.dtype != torch.bool:
        if pos.is_floating_point() or not bool(((pos == 0) | (pos == 1)).all()):
            raise HypercoreError(f"positive: expected booleans or 0/1 integers, got {pos.dtype}")
        pos = pos.bool()
    n_pos = int(pos.sum())
    n_neg = s.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        raise HypercoreError(
            f"positive: expected at least one positive and one negative, got {n_pos} positive "
            f"and {n_neg} negative"
        )
    s = s.double()
    _, inverse, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()  # rank of the last member of each tie group
    average_rank = ends - (counts.double() - 1) / 2
    rank_sum = average_rank[inverse][pos].sum()
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def predictive_entropy(sample_probs: torch.Tensor) -> torch.Tensor:
    r"""Entropy of the mean prediction, :math:`\mathbb H\big[\frac1K\sum_k p_k\big]`.

    Shapes: ``(K, N, C) -> (N,)``.
    """
    p = _probs("sample_probs", sample_probs, (3,))
    return entropy(p.mean(0))


def expected_entropy(sample_probs: torch.Tensor) -> torch.Tensor:
    r"""Mean entropy of the sampled predictions, :math:`\frac1K\sum_k \mathbb H[p_k]`.

    Shapes: ``(K, N, C) -> (N,)``.
    """
    p = _probs("sample_probs", sample_probs, (3,))
    return entropy(p).mean(0)


def mutual_information(sample_probs: torch.Tensor) -> torch.Tensor:
    r"""Mutual information between the label and the weights (BALD's score):
    :math:`\mathbb H[\bar p] - \frac1K \sum_k \mathbb H[p_k] \ge 0`, ``(K, N, C) -> (N,)``.

    Zero when every sampled prediction is the same; it measures how much the
    samples disagree (the epistemic part of the predictive entropy).
    """
    return (predictive_entropy(sample_probs) - expected_entropy(sample_probs)).clamp_min(0)


def fit_temperature(
    logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100
) -> torch.Tensor:
    r"""Temperature scaling: the :math:`T > 0` minimising the NLL of ``softmax(logits / T)``.

    Fit on a held-out validation split (never the test set), then predict with
    ``softmax(test_logits / T)``: accuracy is unchanged, confidence is rescaled.
    L-BFGS (strong Wolfe line search) on :math:`\log T`, starting at :math:`T = 1`.

    Args:
        logits: ``(N, C)`` validation logits of a trained model (detached).
        labels: ``(N,)`` integer classes.
        max_iter: L-BFGS iterations.

    Returns:
        A scalar tensor ``T``.
    """
    z = _probs("logits", logits).detach()
    y = _labels("labels", labels, z.shape[0])
    check_positive_int("max_iter", max_iter)
    log_t = torch.zeros((), dtype=z.dtype, device=z.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return log_t.detach().exp()
