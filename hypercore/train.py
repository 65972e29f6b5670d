"""One small, seeded, device-aware training loop that every notebook shares.

Progress bars come from tqdm when it is installed (``pip install hypercore[train]``);
without it, :func:`fit` trains the same way without a bar.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

LossFn = Callable[..., torch.Tensor]
EvalFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class History:
    """What :func:`fit` recorded: one row per evaluation (epoch 0 is before training)."""

    rows: list[dict[str, float]] = field(default_factory=list)

    def to_frame(self):
        """The rows as a pandas DataFrame (pandas is imported on demand)."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def last(self, key: str) -> float:
        """The last recorded value of ``key``."""
        return self.rows[-1][key]

    def __getitem__(self, key: str) -> list[float]:
        return [row[key] for row in self.rows if key in row]


@torch.no_grad()
def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return float((logits.argmax(-1) == labels).float().mean())


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    data: Sequence[torch.Tensor],
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    evaluate: EvalFn | None = None,
    parameters: Sequence[torch.nn.Parameter] | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> History:
    """Train ``model`` with Adam on mini-batches of ``data``.

    The batches are drawn with a generator seeded by ``seed``, on the device
    of the data, so a run is reproducible; the model's own initialisation is
    the caller's (seed before building it, e.g. with :func:`hypercore.book.setup`).

    Args:
        model: what is trained (switched to ``train()`` for steps, ``eval()``
            for ``evaluate``).
        loss_fn: ``loss_fn(model, *batch) -> scalar loss``, e.g.
            ``lambda m, x, y: F.cross_entropy(m(x, 0), y)``.
        data: tensors with the same first dimension (e.g. ``(x, y)``), already
            on the training device.
        epochs: passes over the data.
        batch_size: samples per step (the last, smaller batch is kept).
        lr, weight_decay: Adam's (AdamW's when ``weight_decay > 0``).
        seed: seed of the batch order.
        evaluate: called before training and after every epoch with the model
            in eval mode and gradients off; returns ``{metric: value}``.
        parameters: what to optimise (default: every parameter that requires grad).
        progress: show a tqdm bar when tqdm is installed (the environment
            variable ``TQDM_DISABLE=1`` turns all bars off, which the runner and
            CI do).
        desc: the bar's label.

    Returns:
        A :class:`History` with ``epoch``, ``train_loss`` (mean over the
        epoch's steps), ``seconds`` (training time so far) and the metrics.
    """
    n = data[0].shape[0]
    if any(t.shape[0] != n for t in data):
        raise ValueError(
            f"data: tensors must share their first dimension, got {[tuple(t.shape) for t in data]}"
        )
    params = (
        list(parameters)
        if parameters is not None
        else [p for p in model.parameters() if p.requires_grad]
    )
    optimizer: torch.optim.Optimizer
    if weight_decay > 0:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    else:
        optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    history = History()
    elapsed = 0.0

    def record(epoch: int, loss: float) -> None:
        row = {"epoch": epoch, "train_loss": loss, "seconds": elapsed}
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                row.update(evaluate(model))
        history.rows.append(row)

    record(0, float("nan"))
    quiet = not progress or os.environ.get("TQDM_DISABLE", "") not in ("", "0")
    bar = _progress(range(1, epochs + 1), desc=desc, quiet=quiet)
    for epoch in bar:
        model.train()
        start = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(data[0].device)
        total, steps = torch.zeros((), device=data[0].device), 0
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            loss = loss_fn(model, *(t[idx] for t in data))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            steps += 1
        mean_loss = float(total) / steps
        if data[0].device.type == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - start
        record(epoch, mean_loss)
        bar.set_postfix(loss=f"{mean_loss:.4f}")
    return history


class _NoBar:
    """What :func:`fit` needs of a tqdm bar, doing nothing (quiet, or no tqdm)."""

    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, **values) -> None:
        pass


def _progress(iterable, desc: str | None, quiet: bool):
    """A tqdm bar over ``iterable``, or a silent stand-in when quiet or tqdm is absent."""
    if quiet:
        return _NoBar(iterable)
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar(iterable)
    return tqdm(iterable, desc=desc, leave=False)
