"""The notebook setup call: profile, device, seeds and plot style in one place."""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

PROFILES = ("full", "smoke")
PROFILE_ENV = "HYPERCORE_PROFILE"
DEVICE_ENV = "HYPERCORE_DEVICE"

T = TypeVar("T")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given (checked)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={str(device)!r}: CUDA is not available on this machine")
    return resolved


def device_name(device: torch.device) -> str:
    """A readable name: the GPU model, or ``cpu (x86_64, 2 threads)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Setup:
    """What a notebook runs with. ``pick(full=..., smoke=...)`` chooses a budget."""

    profile: str
    device: torch.device
    seed: int

    def pick(self, *, full: T, smoke: T) -> T:
        """The value for the active profile."""
        return full if self.profile == "full" else smoke

    @property
    def device_name(self) -> str:
        return device_name(self.device)

    def __str__(self) -> str:
        return f"profile={self.profile}  device={self.device_name}  seed={self.seed}"


def set_plot_style() -> None:
    """One style for every figure of the book (seaborn's whitegrid, readable sizes)."""
    import matplotlib

    if not os.environ.get("DISPLAY") and matplotlib.get_backend().lower().startswith("tk"):
        matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    matplotlib.rcParams.update(
        {"figure.figsize": (7, 4), "figure.dpi": 110, "savefig.bbox": "tight"}
    )


def setup(
    profile: str = "full", device: str = "auto", seed: int = 0, plot_style: bool = True
) -> Setup:
    """Resolve the device, seed everything, choose the profile, set the plot style.

    The environment variables ``HYPERCORE_PROFILE`` (e.g. ``smoke``) and
    ``HYPERCORE_DEVICE`` (e.g. ``cpu``), set by the test command and by the
    runner, override ``profile`` and ``device``: call this in the cell *after*
    the parameters cell, since nbval replays the stored parameters.

    Args:
        profile: ``"full"`` (the published run) or ``"smoke"`` (CI budgets).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed: seeds Python, NumPy and torch.
        plot_style: apply the book's matplotlib/seaborn style.
    """
    profile = os.environ.get(PROFILE_ENV) or profile
    device = os.environ.get(DEVICE_ENV) or device
    if profile not in PROFILES:
        raise ValueError(f"profile: expected one of {list(PROFILES)}, got {profile!r}")
    resolved = resolve_device(device)
    seed_everything(seed)
    if resolved.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    if plot_style:
        set_plot_style()
    return Setup(profile=profile, device=resolved, seed=seed)
