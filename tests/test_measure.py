"""Step measurements: time and peak memory."""

import torch

from hypercore.measure import measure, peak_memory


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
