"""Benchmark: eager vs ``torch.compile`` hypercore, against hand-written kernels and the peers.

Two tables, each measured in one run with the implementations interleaved
(repeat r times: one timed block of every implementation in turn), so that
load on the machine hits all of them alike; every cell is the median over the
repeats, with the spread (min-max over repeats) of the ratio beside it.

1. Per-sample weights (the workloads of :mod:`hypercore.bench.per_sample`:
   MLP 64-64-10 and conv 16->16 3x3 at batch 256, forward and
   forward+backward): hypercore eager, hypercore compiled, hand-written eager
   (``baddbmm`` / grouped convolution) and hand-written compiled.
2. One task-conditioned training step (forward, backward, Adam; the
   "one task per batch" workload of :mod:`hypercore.bench.peers`): hypercore
   eager and compiled, hypnettorch and HyperLight eager (when installed).

Usage::

    python benchmarks/compiled.py [--device auto] [--repeats 10] [--block 0.2] [--backend inductor]

``--backend aot_eager`` checks tracing without a C++ compiler (no speed-up
expected). On CUDA, ``--mode reduce-overhead`` uses CUDA graphs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F

import hypercore as hc
from hypercore.bench import peers
from hypercore.bench.per_sample import CASES
from hypercore.book.setup import device_name, resolve_device
from hypercore.measure import interleaved_times


def interleaved(fns: dict[str, Callable], repeats: int, seconds: float, device) -> dict:
    """``{name: [seconds per call, one per repeat]}``, implementations interleaved (the
    first calls, where torch.compile compiles, are warm-up)."""
    return interleaved_times(fns, device, repeats=repeats, block=seconds, warmup=3)


def ratio_cell(num: list[float], den: list[float]) -> str:
    ratios = [a / b for a, b in zip(num, den, strict=True)]
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def per_sample_table(device, batch, repeats, seconds, compile_kw) -> list[str]:
    lines = [
        "| target | pass | eager ms | compiled ms | hand-written ms | hand-written compiled ms "
        "| eager / hand | compiled / hand | compiled / hand compiled |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case_name, case in CASES.items():
        x, weights, fns = case(batch, device)
        impls = {
            "eager": fns["hypercore"],
            "compiled": torch.compile(fns["hypercore"], **compile_kw),
            "hand": fns["hand-written"],
            "hand compiled": torch.compile(fns["hand-written"], **compile_kw),
        }
        with torch.no_grad():
            ref = impls["hand"](x, weights)
            for name, fn in impls.items():
                err = float((fn(x, weights) - ref).abs().max())
                if err > 1e-3:
                    raise RuntimeError(f"{case_name}: {name} disagrees by {err:.2e}")
        for backward in (False, True):
            calls = {name: _call(fn, x, weights, backward) for name, fn in impls.items()}
            t = interleaved(calls, repeats, seconds, device)
            med = {k: 1e3 * statistics.median(v) for k, v in t.items()}
            lines.append(
                f"| {case_name} | {'forward+backward' if backward else 'forward'} "
                f"| {med['eager']:.3f} | {med['compiled']:.3f} | {med['hand']:.3f} "
                f"| {med['hand compiled']:.3f} | {ratio_cell(t['eager'], t['hand'])} "
                f"| {ratio_cell(t['compiled'], t['hand'])} "
                f"| {ratio_cell(t['compiled'], t['hand compiled'])} |"
            )
    return lines


def _call(fn, x, weights, backward: bool) -> Callable[[], None]:
    if not backward:

        def forward() -> None:
            with torch.no_grad():
                fn(x, weights)

        return forward
    x = x.detach().requires_grad_()
    weights = {n: w.detach().requires_grad_() for n, w in weights.items()}
    inputs = [x, *weights.values()]

    def forward_backward() -> None:
        torch.autograd.grad(fn(x, weights).sum(), inputs)

    return forward_backward


def training_step_table(device, repeats, seconds, compile_kw) -> list[str]:
    workload = "one task per batch"
    x, y, _ = peers._data(device)
    steps: dict[str, Callable[[], None]] = {}
    eager_step, _ = peers.hypercore_steps(device)[workload]
    steps["hypercore eager"] = eager_step
    torch.manual_seed(0)
    net = hc.HyperNetwork.build(
        peers._target(), hc.TaskEmbedding(peers.NUM_TASKS, peers.COND),
        body_hidden=(peers.HIDDEN,),
    ).to(device)  # fmt: skip
    compiled = torch.compile(net, **compile_kw)
    steps["hypercore compiled"] = peers._trainer(net, lambda: F.cross_entropy(compiled(x, 2), y))
    for library in peers.available_libraries():
        if library == "hypercore":
            continue
        builder = getattr(peers, f"{library.lower()}_steps")
        peer = builder(device)
        if workload in peer:
            steps[f"{library} eager"] = peer[workload][0]
    t = interleaved(steps, repeats, seconds, device)
    base = t["hypercore compiled"]
    lines = ["| implementation | ms per step | time / hypercore compiled |", "|---|---|---|"]
    for name, values in t.items():
        lines.append(
            f"| {name} | {1e3 * statistics.median(values):.3f} | {ratio_cell(values, base)} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--block", type=float, default=0.2, help="seconds per timed block")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--mode", default=None, help="torch.compile mode, e.g. reduce-overhead")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    compile_kw = {"backend": args.backend}
    if args.mode:
        compile_kw["mode"] = args.mode
    torch.manual_seed(0)
    print(
        f"{device_name(device)}, torch {torch.__version__}, Python {platform.python_version()}, "
        f"{torch.get_num_threads()} threads, backend {args.backend}, mode {args.mode}; "
        f"medians of {args.repeats} interleaved repeats (ratio: median (min-max) over repeats)\n"
    )
    print(f"Per-sample weights, batch {args.batch}\n")
    print("\n".join(per_sample_table(device, args.batch, args.repeats, args.block, compile_kw)))
    print("\nOne task-conditioned training step, batch 128\n")
    print("\n".join(training_step_table(device, args.repeats, args.block, compile_kw)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
