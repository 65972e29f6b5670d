"""The benchmark workloads run (their timings are measured in scripts, not tested)."""

import pytest
import torch

from hypercore.bench.peers import LIBRARIES, WORKLOADS, available_libraries
from hypercore.bench.per_sample import CASES, check_agreement


@pytest.mark.parametrize("library", available_libraries())
def test_every_workload_takes_a_training_step(library):
    steps = LIBRARIES[library](torch.device("cpu"))
    assert set(steps) <= set(WORKLOADS)
    for step, model in steps.values():
        before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
        step()
        after = [p for p in model.parameters() if p.requires_grad]
        assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


def test_hypercore_covers_every_workload():
    assert set(LIBRARIES["hypercore"](torch.device("cpu"))) == set(WORKLOADS)


@pytest.mark.parametrize("case", list(CASES))
def test_per_sample_implementations_agree(case):
    x, weights, fns = CASES[case](8, torch.device("cpu"))
    assert check_agreement(x, weights, fns) < 1e-4
