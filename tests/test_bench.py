"""The benchmark workloads run (their timings are measured in scripts, not tested)."""

import pytest
import torch

from hypercore.bench.peers import (
    LIBRARIES,
    VMAP_LIBRARIES,
    WORKLOADS,
    available_libraries,
    peer_times,
)
from hypercore.bench.per_sample import CASES, check_agreement, per_sample_times


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


@pytest.mark.parametrize(
    "library", [name for name in available_libraries(vmap=True) if name.endswith(" + vmap")]
)
def test_vmap_variants_take_the_loops_step(library):
    cpu = torch.device("cpu")
    loop_step, loop_model = LIBRARIES[library.removesuffix(" + vmap")](cpu)["per-sample weights"]
    vmap_step, vmap_model = VMAP_LIBRARIES[library](cpu)["per-sample weights"]
    vmap_model.load_state_dict(loop_model.state_dict())
    before = [p.detach().clone() for p in loop_model.parameters()]
    loop_step()
    vmap_step()
    for a, b, start in zip(loop_model.parameters(), vmap_model.parameters(), before, strict=True):
        assert not torch.equal(a, start)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_repeated_interleaved_measurements_have_one_row_per_repeat():
    rows = per_sample_times(torch.device("cpu"), batch=4, repeats=2, block=0.0, warmup=0)
    assert len(rows) == len(CASES) * 2 * 2
    assert all(r["loop speed-up"] > 0 and r["vs hand-written"] > 0 for r in rows)
    peers = peer_times(torch.device("cpu"), repeats=2, block=0.0, warmup=0)
    pairs = {(r["workload"], r["library"]) for r in peers}
    assert len(peers) == 2 * len(pairs)
    assert ("per-sample weights", "hypercore") in pairs
