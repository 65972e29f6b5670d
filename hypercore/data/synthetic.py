"""Synthetic data generators (seeded, no download)."""

from __future__ import annotations

import math

import torch

from hypercore.data.dataset import Split


def sine_tasks(
    num_tasks: int,
    n_train: int = 20,
    n_test: int = 100,
    seed: int = 0,
    amplitude: tuple[float, float] = (0.1, 5.0),
    phase: tuple[float, float] = (0.0, math.pi),
) -> list[Split]:
    r"""Regression tasks :math:`y = a \sin(x + b)` on :math:`x \in [-5, 5]` (Finn et al., 2017).

    Each task draws an amplitude ``a`` and phase ``b`` uniformly from the given
    ranges; ``task.info`` holds them.
    """
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for t in range(num_tasks):
        a = amplitude[0] + (amplitude[1] - amplitude[0]) * torch.rand((), generator=g).item()
        b = phase[0] + (phase[1] - phase[0]) * torch.rand((), generator=g).item()
        x_tr = torch.rand(n_train, 1, generator=g) * 10 - 5
        x_te = torch.linspace(-5, 5, n_test).unsqueeze(1)
        tasks.append(
            Split(
                x_tr,
                a * torch.sin(x_tr + b).squeeze(1),
                x_te,
                a * torch.sin(x_te + b).squeeze(1),
                None,
                f"sine #{t}",
                {"amplitude": a, "phase": b},
            )
        )
    return tasks


def teacher_regression(
    n_train: int = 512,
    n_test: int = 512,
    in_features: int = 8,
    hidden: int = 32,
    noise: float = 0.1,
    seed: int = 0,
) -> Split:
    """Regression targets from a random one-hidden-layer tanh network (a "teacher")."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(in_features, hidden, generator=g) / math.sqrt(in_features)
    w2 = torch.randn(hidden, generator=g) / math.sqrt(hidden)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, in_features, generator=g)
        return x, torch.tanh(x @ w1) @ w2 + noise * torch.randn(n, generator=g)

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    return Split(
        x_tr,
        y_tr,
        x_te,
        y_te,
        None,
        "teacher regression",
        {"in_features": in_features, "hidden": hidden, "noise": noise, "seed": seed},
    )
