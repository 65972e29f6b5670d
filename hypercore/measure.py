"""Measuring a step: wall-clock time and peak memory, on the CPU or a GPU.

Used by the complexity and performance chapters and the benchmark scripts.
:func:`measure` times one step (the *fastest* of several repeats after a
warm-up: the estimate least disturbed by other work on a shared machine) and
its peak memory. :func:`interleaved_times` compares implementations: it times
each of them several times, interleaved, so that load on a shared machine
falls on all of them alike and the spread over the repeats (:func:`spread`:
min / median / max) shows how far the numbers move from run to run. Ratios
between implementations are only meaningful when measured in the same run,
and best taken repeat by repeat.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
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
    fn: Callable[[], object],
    device: torch.device | str = "cpu",
    repeats: int = 5,
    memory_repeats: int = 1,
) -> Measurement:
    """Time ``fn`` (fastest of ``repeats`` after one warm-up) and its peak memory.

    ``memory_repeats > 1`` measures the peak that many times and keeps the
    smallest: the first call under the CPU profiler can record allocations that
    later, steady-state calls do not make.
    """
    device = torch.device(device)
    fn()  # warm-up
    best = float("inf")
    for _ in range(max(1, repeats)):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    peak = min(peak_memory(fn, device) for _ in range(max(1, memory_repeats)))
    return Measurement(best, peak)


def block_time(fn: Callable[[], object], seconds: float, device: torch.device) -> float:
    """Seconds per call in one block of calls lasting about ``seconds`` (at least one call):
    the median over the block's calls, so that a call descheduled by other work on a
    shared machine does not move it."""
    durations: list[float] = []
    _synchronize(device)
    start = time.perf_counter()
    while True:
        begin = time.perf_counter()
        fn()
        _synchronize(device)
        end = time.perf_counter()
        durations.append(end - begin)
        if end - start >= seconds:
            return statistics.median(durations)


def interleaved_times(
    fns: Mapping[str, Callable[[], object]],
    device: torch.device | str = "cpu",
    repeats: int = 5,
    block: float = 0.05,
    warmup: int = 2,
) -> dict[str, list[float]]:
    """Seconds per call of every function, measured ``repeats`` times, interleaved.

    After ``warmup`` calls of each function, every repeat times one block of
    calls (about ``block`` seconds, at least one call) of each function in
    turn (:func:`block_time`: the median call of the block); the order rotates
    from repeat to repeat. A change of load on a shared machine therefore falls
    on every implementation alike, and repeat ``r`` of two functions forms a
    pair: take ratios repeat by repeat.

    Returns:
        ``{name: [seconds per call in repeat 0, 1, ...]}``.
    """
    device = torch.device(device)
    if repeats < 1 or block < 0 or warmup < 0:
        raise ValueError(
            f"repeats >= 1, block >= 0 and warmup >= 0 expected, got repeats={repeats}, "
            f"block={block}, warmup={warmup}"
        )
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(block_time(fns[name], block, device))
    return times


@dataclass(frozen=True)
class Spread:
    """The spread of repeated measurements: smallest, median and largest."""

    min: float
    median: float
    max: float

    def __str__(self) -> str:
        return f"{self.median:.3g} ({self.min:.3g}-{self.max:.3g})"


def spread(values: Sequence[float]) -> Spread:
    """Min, median and max of repeated measurements (or of per-repeat ratios)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("spread: expected at least one value, got none")
    return Spread(min(values), statistics.median(values), max(values))
