"""Task sequences made from one dataset: split, permuted and rotated."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F

from hypercore.data.dataset import Split


def split_by_classes(data: Split, classes_per_task: int = 2) -> list[Split]:
    """Cut a classification dataset into tasks of consecutive classes (e.g. split digits).

    Labels are renumbered ``0..classes_per_task-1`` inside each task (the
    task-incremental setting); ``task.info["classes"]`` keeps the originals.
    """
    if data.num_classes is None:
        raise ValueError(
            f"split_by_classes needs a classification dataset; {data.name} is regression"
        )
    if data.num_classes % classes_per_task:
        raise ValueError(
            f"classes_per_task={classes_per_task} does not divide num_classes={data.num_classes}"
        )
    tasks = []
    for start in range(0, data.num_classes, classes_per_task):
        classes = list(range(start, start + classes_per_task))
        keep_tr = (data.y_train >= start) & (data.y_train < start + classes_per_task)
        keep_te = (data.y_test >= start) & (data.y_test < start + classes_per_task)
        tasks.append(
            Split(
                data.x_train[keep_tr],
                data.y_train[keep_tr] - start,
                data.x_test[keep_te],
                data.y_test[keep_te] - start,
                classes_per_task,
                f"split {data.name}: {'/'.join(map(str, classes))}",
                {"classes": classes},
            )
        )
    return tasks


def permuted_tasks(data: Split, num_tasks: int, seed: int = 0) -> list[Split]:
    """Tasks that differ by a fixed random permutation of the input features.

    Task 0 keeps the original order; task ``t > 0`` uses permutation number
    ``t`` drawn from ``seed``.
    """
    g = torch.Generator().manual_seed(seed)
    n = data.in_features
    tasks = []
    for t in range(num_tasks):
        perm = torch.arange(n) if t == 0 else torch.randperm(n, generator=g)
        tasks.append(
            replace(
                data,
                x_train=data.x_train.reshape(len(data.x_train), n)[:, perm],
                x_test=data.x_test.reshape(len(data.x_test), n)[:, perm],
                name=f"permuted {data.name} #{t}",
                info={"permutation": perm.tolist()},
            )
        )
    return tasks


def rotate_images(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate a batch of images ``(n, C, H, W)`` about their centre (bilinear)."""
    a = math.radians(degrees)
    rot = torch.tensor(
        [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype
    )
    grid = F.affine_grid(rot.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def rotated_tasks(
    data: Split, angles: Sequence[float], image_shape: tuple[int, int, int] = (1, 8, 8)
) -> list[Split]:
    """Tasks that differ by a rotation of the input images (e.g. rotated digits).

    Features are reshaped to ``image_shape`` to rotate and flattened back.
    """

    def rot(x: torch.Tensor, angle: float) -> torch.Tensor:
        return rotate_images(x.reshape(len(x), *image_shape), angle).reshape(x.shape)

    return [
        replace(
            data,
            x_train=rot(data.x_train, a),
            x_test=rot(data.x_test, a),
            name=f"rotated {data.name} {a:g} deg",
            info={"angle": a},
        )
        for a in angles
    ]
