"""Task-conditioned input: one learned embedding per task (static input)."""

from __future__ import annotations

import torch
from torch import nn

from hypercore._deprecation import renamed
from hypercore.errors import (
    ShapeError,
    check_float,
    check_positive_int,
    check_task_ids,
    shape_str,
)
from hypercore.inputs.base import Conditioner


class TaskEmbedding(Conditioner):
    r"""A learned embedding :math:`e_t \in \mathbb{R}^E` for each task id :math:`t`.

    The classic input of a task-conditioned hypernetwork (von Oswald et al.,
    2020): the weights for task :math:`t` are :math:`\theta_t = h(e_t)`.

    Args:
        num_tasks: how many tasks; ids run from 0 to ``num_tasks - 1``.
        embedding_dim: embedding size ``E`` (formerly ``dim``).
        init_std: standard deviation of the initial embeddings (default 1).

    Call with:
        an ``int`` or a 0-d integer tensor -> ``(E,)`` (weights shared by the
        batch), or a non-empty ``(B,)`` tensor of signed integers -> ``(B, E)``
        (one task per sample). ``bool`` and ``uint8`` tensors are refused (torch
        would index with them as masks), and so are ids outside ``0..num_tasks-1``.
    """

    @renamed(dim="embedding_dim")
    def __init__(self, num_tasks: int, embedding_dim: int, init_std: float = 1.0):
        super().__init__()
        self.num_tasks = check_positive_int("num_tasks", num_tasks)
        self.out_features = check_positive_int("embedding_dim", embedding_dim)
        self.init_std = check_float("init_std", init_std, low=0.0)
        self.weight = nn.Parameter(torch.randn(num_tasks, embedding_dim) * init_std)

    def config(self) -> dict:
        return {
            "num_tasks": self.num_tasks,
            "embedding_dim": self.out_features,
            "init_std": self.init_std,
        }

    def forward(self, task: int | torch.Tensor) -> torch.Tensor:
        if isinstance(task, int) and not isinstance(task, bool) and 0 <= task < self.num_tasks:
            return self.weight[task]  # the common case, checked without torch
        if isinstance(task, torch.Tensor) and (task.dim() > 1 or task.numel() == 0):
            raise ShapeError(
                f"task: expected shape () or (B,) with B >= 1, got {shape_str(task.shape)}"
            )
        check_task_ids(task, self.num_tasks, "TaskEmbedding")  # type, dtype, range
        if not isinstance(task, torch.Tensor):
            return self.weight[int(task)]  # e.g. a NumPy integer
        return self.weight[task.to(self.weight.device)]

    def distinct(self, task: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For a batch of task ids with repeats: the distinct ids and where each sample's is."""
        if not isinstance(task, torch.Tensor) or task.dim() != 1 or task.dtype.is_floating_point:
            return None
        values, inverse = torch.unique(task, return_inverse=True)
        if len(values) == len(task):
            return None
        return values, inverse

    def example_condition(self, n: int) -> torch.Tensor:
        return torch.arange(n, device=self.weight.device) % self.num_tasks
