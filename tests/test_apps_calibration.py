"""hypercore.apps.calibration: NLL, ECE, reliability bins, AUROC, entropies, temperatures."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hypercore.apps import calibration as cal
from hypercore.errors import HypercoreError, ShapeError


def test_nll_by_hand():
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1])
    expected = -(math.log(0.5) + math.log(0.9) + math.log(0.8)) / 3
    assert cal.nll(probs, labels).item() == pytest.approx(expected)


def test_nll_matches_cross_entropy_of_logits():
    logits = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 4, (50,), generator=torch.Generator().manual_seed(1))
    assert cal.nll(logits.softmax(-1), labels).item() == pytest.approx(
        F.cross_entropy(logits, labels).item(), rel=1e-5
    )


def test_reliability_bins_and_ece_by_hand():
    # confidences 0.95, 0.95 (one right, one wrong), 0.65 (right), 0.55 (wrong) in 10 bins
    probs = torch.tensor([[0.95, 0.05], [0.05, 0.95], [0.65, 0.35], [0.45, 0.55]])
    labels = torch.tensor([0, 0, 0, 0])
    bins = cal.reliability_bins(probs, labels, num_bins=10)
    assert bins.counts.tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 2]
    assert bins.accuracy[9].item() == pytest.approx(0.5)
    assert bins.confidence[9].item() == pytest.approx(0.95)
    assert bins.accuracy[6].item() == 1.0 and bins.accuracy[5].item() == 0.0
    expected = (2 * abs(0.5 - 0.95) + abs(1 - 0.65) + abs(0 - 0.55)) / 4
    assert cal.expected_calibration_error(probs, labels, 10).item() == pytest.approx(expected)
    assert bins.edges.shape == (11,)


def test_ece_bin_edges_are_right_closed():
    # a confidence of exactly 0.6 belongs to the bin (0.5, 0.6]
    probs = torch.tensor([[0.6, 0.4]])
    bins = cal.reliability_bins(probs, torch.tensor([0]), num_bins=10)
    assert bins.counts[5].item() == 1


def test_ece_zero_when_perfectly_calibrated():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert cal.expected_calibration_error(probs, torch.tensor([0, 1])).item() == 0.0


def test_auroc_matches_sklearn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (200,), generator=g).float()  # many ties
    positive = torch.rand(200, generator=g) < 0.3
    ours = cal.auroc(scores, positive).item()
    assert ours == pytest.approx(metrics.roc_auc_score(positive.numpy(), scores.numpy()))
    continuous = torch.randn(300, generator=g)
    labels = torch.rand(300, generator=g) < 0.5
    assert cal.auroc(continuous, labels).item() == pytest.approx(
        metrics.roc_auc_score(labels.numpy(), continuous.numpy())
    )


def test_auroc_known_cases():
    scores = torch.tensor([0.1, 0.2, 0.8, 0.9])
    assert cal.auroc(scores, torch.tensor([0, 0, 1, 1])).item() == 1.0
    assert cal.auroc(scores, torch.tensor([1, 1, 0, 0])).item() == 0.0
    assert cal.auroc(torch.ones(4), torch.tensor([0, 1, 0, 1])).item() == 0.5


def test_auroc_errors():
    with pytest.raises(HypercoreError, match="at least one positive"):
        cal.auroc(torch.randn(3), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ShapeError, match="positive"):
        cal.auroc(torch.randn(3), torch.zeros(4, dtype=torch.bool))
    with pytest.raises(HypercoreError, match="0/1"):
        cal.auroc(torch.randn(3), torch.tensor([0, 2, 1]))


def test_entropies_and_mutual_information():
    # two draws that disagree completely on input 0 and agree on input 1
    sample = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])
    total = cal.predictive_entropy(sample)
    aleatoric = cal.expected_entropy(sample)
    mi = cal.mutual_information(sample)
    assert total.tolist() == pytest.approx([math.log(2), math.log(2)])
    assert aleatoric.tolist() == pytest.approx([0.0, math.log(2)], abs=1e-6)
    assert mi.tolist() == pytest.approx([math.log(2), 0.0], abs=1e-6)
    with pytest.raises(ShapeError, match=r"\(K, N, C\)"):
        cal.predictive_entropy(sample[0])


def test_fit_temperature_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(0)
    true_logits = 3 * torch.randn(4000, 5, generator=g)
    labels = torch.multinomial(true_logits.softmax(-1), 1, generator=g).squeeze(1)
    temperature = cal.fit_temperature(2.0 * true_logits, labels)  # twice too confident
    assert temperature.item() == pytest.approx(2.0, rel=0.1)
    assert temperature.shape == ()


def test_fit_temperature_lowers_validation_nll():
    g = torch.Generator().manual_seed(1)
    logits = 4 * torch.randn(500, 3, generator=g)
    labels = torch.randint(0, 3, (500,), generator=g)  # unrelated labels: T should grow
    t = cal.fit_temperature(logits, labels)
    before = F.cross_entropy(logits, labels).item()
    after = F.cross_entropy(logits / t, labels).item()
    assert t.item() > 1 and after < before


def test_shape_and_type_errors_name_the_argument():
    with pytest.raises(ShapeError, match="probs"):
        cal.nll(torch.rand(3), torch.tensor([0, 1, 0]))
    with pytest.raises(ShapeError, match="labels"):
        cal.nll(torch.rand(3, 2), torch.tensor([0, 1]))
    with pytest.raises(HypercoreError, match="integer"):
        cal.nll(torch.rand(3, 2), torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(HypercoreError, match="num_bins"):
        cal.reliability_bins(torch.rand(3, 2), torch.tensor([0, 1, 0]), num_bins=0)
