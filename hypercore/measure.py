"""Measuring a step: wall-clock time and peak memory, on the CPU or a GPU.

Used by the complexity and performance chapters and the benchmark scripts.
Timings are the *fastest* of several repeats after a warm-up (the minimum is
the estimate least disturbed by other work on a shared machine); ratios
between implementations are only meaningful when measured in the same run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2: the profiler's C++ side logs every start and stop."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass(frozen=True)
class Measurement:
    """``seconds``: fastest repeat; ``peak_bytes``: memory allocated at the peak of one
    call, above what was allocated before it."""

    seconds: float
    peak_bytes: int

    @property
    def ms(self) -> float:
        return 1e3 * self.seconds

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Bytes allocated at the peak of one call of ``fn``, above the level before it.

    On CUDA: the caching allocator's peak statistic. On the CPU: the PyTorch
    profiler's per-operator allocation records, accumulated in time order.
    """
    if device.type == "cuda":
        _synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start
    )
    level = peak = 0
    for event in events:
        level += event.self_cpu_memory_usage
        peak = max(peak, level)
    return peak


def measure(
    fn: Callable[[], object], device: torch.device | str = "cpu", repeats: int = 5
) -> Measurement:
    """Time ``fn`` (fastest of ``repeats`` after one warm-up) and its peak memory."""
    device = torch.device(device)
    fn()  # warm-up
    best = float("inf")
    for _ in range(max(1, repeats)):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return Measurement(best, peak_memory(fn, device))
