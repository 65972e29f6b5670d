"""Step measurements: time and peak memory."""

import pytest
import torch

from hypercore.measure import block_time, interleaved_times, measure, peak_memory, spread


def test_peak_memory_sees_a_temporary_allocation():
    def allocate():
        t = torch.ones(1024, 1024)  # 4 MiB, freed on return
        return float(t.sum())

    peak = peak_memory(allocate, torch.device("cpu"))
    assert 4 * 2**20 <= peak < 6 * 2**20


def test_measure_times_and_sizes_a_step():
    x = torch.randn(256, 256)
    m = measure(lambda: x @ x, "cpu", repeats=3)
    assert m.seconds > 0 and m.ms == 1e3 * m.seconds
    assert m.peak_bytes >= 256 * 256 * 4


def test_interleaved_times_rotate_and_pair_repeats():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = interleaved_times(fns, "cpu", repeats=3, block=0.0, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for v in times.values() for t in v)
    # one warm-up call each, then one call per block (block=0), the order rotating
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")


def test_spread_is_min_median_max():
    s = spread([3.0, 1.0, 2.0, 10.0])
    assert (s.min, s.median, s.max) == (1.0, 2.5, 10.0)
    assert str(spread([2.0])) == "2 (2-2)"


def test_memory_repeats_keep_the_smallest_peak():
    m = measure(lambda: torch.ones(256, 256).sum(), "cpu", repeats=1, memory_repeats=3)
    assert 256 * 256 * 4 <= m.peak_bytes < 2 * 256 * 256 * 4 + 4096


def test_block_time_is_the_median_call(monkeypatch):
    # A fake clock that only the calls advance: the test does not depend on the machine's
    # load (a real sleep(0) can take 20 ms on a busy CI machine).
    import types

    import hypercore.measure as measure_module

    now = [0.0]
    monkeypatch.setattr(measure_module, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    durations = iter([0.001, 0.03])
    calls = []

    def call():
        calls.append(1)
        now[0] += next(durations, 0.001)

    # one slow call (a descheduled one) among fast ones does not move the block's time;
    # the block ends at the first call that reaches 0.04 s: 0.001 + 0.03 + 9 x 0.001
    assert block_time(call, 0.04, torch.device("cpu")) == pytest.approx(0.001)
    assert len(calls) == 11
