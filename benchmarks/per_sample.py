"""Benchmark: applying per-sample weights, hypercore vs a Python loop vs hand-written kernels.

Prints the table of :mod:`hypercore.bench.per_sample` (an MLP and a conv
target, forward and forward+backward; its docstring describes the workloads)
for one batch size, with the ratios measured in the same run. The performance
chapter runs the same workloads at several batch sizes.

Usage::

    python benchmarks/per_sample.py [--device auto] [--batch 256] [--min-time 0.5] [--json F]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

from hypercore.bench.per_sample import TARGETS, per_sample_rows
from hypercore.book.setup import device_name, resolve_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per measurement")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)

    try:
        rows = per_sample_rows(device, args.batch, args.min_time)
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return 1

    print(
        f"Per-sample weights, batch {args.batch}, on {device_name(device)} "
        f"(torch {torch.__version__}, Python {platform.python_version()})"
    )
    print(
        f"targets: loop speed-up >= {TARGETS['loop speed-up']:.0f}x, "
        f"hypercore / hand-written <= {TARGETS['vs hand-written']}x\n"
    )
    header = [k for k in rows[0] if k != "batch"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        cells = (
            [r["target"], r["pass"]]
            + [f"{r[k]:.3f}" for k in ("hypercore ms", "loop ms", "hand-written ms")]
            + [f"{r['loop speed-up']:.1f}x", f"{r['vs hand-written']:.2f}x"]
            + [r["hand-written kind"].replace("hand-written", "").strip() or "bmm/grouped"]
        )
        print("| " + " | ".join(cells) + " |")
    missed = [
        f"{r['target']} {r['pass']}"
        for r in rows
        if r["loop speed-up"] < TARGETS["loop speed-up"]
        or r["vs hand-written"] > TARGETS["vs hand-written"]
    ]
    print("\nall targets met" if not missed else f"\ntargets missed: {', '.join(missed)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": device_name(device),
                    "batch": args.batch,
                    "torch": torch.__version__,
                    "rows": rows,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
