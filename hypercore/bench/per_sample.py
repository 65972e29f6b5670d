"""Per-sample weight application: hypercore vs a Python loop vs hand-written kernels.

Two targets with a different weight set for every sample of a batch:

* MLP: ``Linear(64, 64) -> ReLU -> Linear(64, 10)`` on ``(B, 64)`` inputs;
* conv: ``Conv2d(16, 16, 3, padding=1)`` on ``(B, 16, 16, 16)`` images.

For each, three implementations of the same computation:

* ``hypercore``: ``Target(module)(x, weights)`` with ``(B, *shape)`` weights;
* ``loop``: a Python loop over samples calling ``F.linear`` / ``F.conv2d``
  (the cheapest loop: no module machinery at all);
* ``hand-written``: ``torch.baddbmm`` for the MLP; for the conv layer both
  one grouped convolution and im2col (strided views, one copy) + ``baddbmm``,
  written out by hand for exactly this target. Ratios are taken against the
  faster of the hand-written versions.

Timed with ``torch.utils.benchmark`` (:func:`per_sample_rows`: median of
blocked runs, CUDA synchronised), or repeatedly with the implementations
interleaved (:func:`per_sample_times`: one row per repeat, for the spread over
repeats), forward only and forward + backward (gradients for the input and
every weight), all in one run so the ratios compare like with like.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark

from hypercore.target import Target

TARGETS = {"loop speed-up": 20.0, "vs hand-written": 1.3}


def mlp_case(batch: int, device: torch.device):
    module = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
    target = Target(module)
    x = torch.randn(batch, 64, device=device)
    weights = {n: 0.1 * torch.randn(batch, *s, device=device) for n, s in target.shapes.items()}

    def hypercore_fn(x, w):
        return target(x, w)

    def loop_fn(x, w):
        rows = []
        for b in range(x.shape[0]):
            h = F.relu(F.linear(x[b], w["0.weight"][b], w["0.bias"][b]))
            rows.append(F.linear(h, w["2.weight"][b], w["2.bias"][b]))
        return torch.stack(rows)

    def hand_fn(x, w):
        h = torch.baddbmm(w["0.bias"].unsqueeze(1), x.unsqueeze(1), w["0.weight"].transpose(1, 2))
        y = torch.baddbmm(w["2.bias"].unsqueeze(1), h.relu(), w["2.weight"].transpose(1, 2))
        return y.squeeze(1)

    return x, weights, {"hypercore": hypercore_fn, "loop": loop_fn, "hand-written": hand_fn}


def conv_case(batch: int, device: torch.device):
    module = nn.Conv2d(16, 16, 3, padding=1).to(device)
    target = Target(module)
    x = torch.randn(batch, 16, 16, 16, device=device)
    weights = {n: 0.1 * torch.randn(batch, *s, device=device) for n, s in target.shapes.items()}

    def hypercore_fn(x, w):
        return target(x, w)

    def loop_fn(x, w):
        return torch.cat(
            [
                F.conv2d(x[b : b + 1], w["weight"][b], w["bias"][b], padding=1)
                for b in range(x.shape[0])
            ]
        )

    def grouped_fn(x, w):
        b, c, h, wd = x.shape
        y = F.conv2d(
            x.reshape(1, b * c, h, wd),
            w["weight"].reshape(b * 16, c, 3, 3),
            w["bias"].reshape(b * 16),
            padding=1,
            groups=b,
        )
        return y.view(b, 16, h, wd)

    def unfold_fn(x, w):
        b, c, h, wd = x.shape
        patches = F.pad(x, (1, 1, 1, 1)).unfold(2, 3, 1).unfold(3, 3, 1)  # (B, C, H, W, 3, 3)
        cols = patches.permute(0, 1, 4, 5, 2, 3).reshape(b, c * 9, h * wd)  # one copy
        y = torch.baddbmm(w["bias"].unsqueeze(2), w["weight"].reshape(b, 16, c * 9), cols)
        return y.view(b, 16, h, wd)

    return (
        x,
        weights,
        {
            "hypercore": hypercore_fn,
            "loop": loop_fn,
            "hand-written": grouped_fn,
            "hand-written unfold": unfold_fn,
        },
    )


def make_step(fn, x, weights, backward: bool):
    """A no-argument call of ``fn``: forward under ``no_grad``, or forward and the
    gradients for the input and every weight."""
    if backward:
        x = x.detach().requires_grad_()
        weights = {n: w.detach().requires_grad_() for n, w in weights.items()}
        inputs = [x, *weights.values()]

        def step():
            out = fn(x, weights)
            torch.autograd.grad(out.sum(), inputs)
    else:

        def step():
            with torch.no_grad():
                fn(x, weights)

    return step


def time_call(fn, x, weights, backward: bool, min_time: float) -> float:
    """Median seconds per call."""
    step = make_step(fn, x, weights, backward)
    step()
    timer = benchmark.Timer(
        stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads()
    )
    return timer.blocked_autorange(min_run_time=min_time).median


def check_agreement(x, weights, fns) -> float:
    with torch.no_grad():
        ref = fns["hand-written"](x, weights)
        return max(float((fn(x, weights) - ref).abs().max()) for fn in fns.values())


CASES = {"MLP 64-64-10": mlp_case, "conv 16->16 3x3, 16x16": conv_case}


def per_sample_rows(device: torch.device, batch: int, min_time: float = 0.5) -> list[dict]:
    """Measure every case, forward and forward+backward; one row per (case, pass).

    Raises:
        RuntimeError: when the implementations disagree (they must compute the same).
    """
    rows = []
    for case_name, case in CASES.items():
        x, weights, fns = case(batch, device)
        error = check_agreement(x, weights, fns)
        if error > 1e-3:
            raise RuntimeError(f"{case_name}: implementations disagree by {error:.2e}")
        for backward in (False, True):
            t = {k: time_call(fn, x, weights, backward, min_time) for k, fn in fns.items()}
            best = min(v for k, v in t.items() if k.startswith("hand-written"))
            rows.append(
                {
                    "target": case_name,
                    "batch": batch,
                    "pass": "forward+backward" if backward else "forward",
                    "hypercore ms": 1e3 * t["hypercore"],
                    "loop ms": 1e3 * t["loop"],
                    "hand-written ms": 1e3 * best,
                    "loop speed-up": t["loop"] / t["hypercore"],
                    "vs hand-written": t["hypercore"] / best,
                    "hand-written kind": min(
                        (k for k in t if k.startswith("hand-written")), key=t.get
                    ),
                }
            )
    return rows


def per_sample_times(
    device: torch.device, batch: int, repeats: int = 5, block: float = 0.05, warmup: int = 2
) -> list[dict]:
    """Like :func:`per_sample_rows`, measured ``repeats`` times with the implementations
    interleaved (:func:`hypercore.measure.interleaved_times`): one row per (case, pass,
    repeat), with the ratios of that repeat (the hand-written time is the faster of
    the hand-written versions in that repeat).

    Raises:
        RuntimeError: when the implementations disagree (they must compute the same).
    """
    from hypercore.measure import interleaved_times

    rows = []
    for case_name, case in CASES.items():
        x, weights, fns = case(batch, device)
        error = check_agreement(x, weights, fns)
        if error > 1e-3:
            raise RuntimeError(f"{case_name}: implementations disagree by {error:.2e}")
        for backward in (False, True):
            steps = {k: make_step(fn, x, weights, backward) for k, fn in fns.items()}
            times = interleaved_times(steps, device, repeats, block, warmup)
            for r in range(repeats):
                t = {k: v[r] for k, v in times.items()}
                hand = min(v for k, v in t.items() if k.startswith("hand-written"))
                rows.append(
                    {
                        "target": case_name,
                        "batch": batch,
                        "pass": "forward+backward" if backward else "forward",
                        "repeat": r,
                        "hypercore ms": 1e3 * t["hypercore"],
                        "loop ms": 1e3 * t["loop"],
                        "hand-written ms": 1e3 * hand,
                        "loop speed-up": t["loop"] / t["hypercore"],
                        "vs hand-written": t["hypercore"] / hand,
                    }
                )
    return rows
