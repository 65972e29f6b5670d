"""A small supervised dataset held as tensors, already split into train and test."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class Split:
    """Train and test tensors of one dataset (or one task of a task sequence).

    Attributes:
        x_train, y_train, x_test, y_test: the tensors; ``x`` is ``(n, *features)``
            float32, ``y`` is ``(n,)`` int64 for classification or float32 for
            regression.
        num_classes: number of classes, ``None`` for regression.
        name: a short description, e.g. ``"digits"`` or ``"split digits: 0/1"``.
        info: extra facts (e.g. the classes of a task, a permutation's seed).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int | None
    name: str
    info: dict = field(default_factory=dict)

    @property
    def in_features(self) -> int:
        """Features per sample (trailing dimensions multiplied)."""
        return int(torch.tensor(self.x_train.shape[1:]).prod())

    def to(self, device: str | torch.device) -> Split:
        """A copy with every tensor on ``device``."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )

    def __repr__(self) -> str:
        return (
            f"Split({self.name!r}: train {tuple(self.x_train.shape)}, "
            f"test {tuple(self.x_test.shape)}, classes={self.num_classes})"
        )
