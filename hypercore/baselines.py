"""Baselines without a hypernetwork, with the same call signature as a :class:`HyperNetwork`.

Comparing a hypernetwork against these on the same data, budget and code path
(the same :class:`~hypercore.Target`) isolates what the hypernetwork adds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hypercore.errors import check_positive_int, check_task_ids
from hypercore.target import Target
from hypercore.target.spec import ParamInfo


def standard_init(info: ParamInfo, count: int) -> torch.Tensor:
    """``count`` independent draws of PyTorch's default init for a tensor, ``(count, *shape)``.

    Weights: ``kaiming_uniform_(a=sqrt(5))``, i.e. uniform with bound
    ``1/sqrt(fan_in)``, as ``nn.Linear`` and ``nn.Conv2d`` do; biases: uniform
    with the same bound; other tensors: ones (e.g. norm gains).
    """
    if info.role in ("weight", "bias"):
        bound = 1.0 / math.sqrt(info.fan_in)
        return torch.empty(count, *info.shape).uniform_(-bound, bound)
    return torch.ones(count, *info.shape)


class TaskWeightTable(nn.Module):
    """One independent set of target weights per task: a lookup table, no hypernetwork.

    ``table(x, t)`` runs the target with task ``t``'s own weights (an int, or a
    ``(B,)`` tensor of task ids for per-sample weights), exactly as
    ``HyperNetwork(x, t)`` would with generated ones. It has
    ``num_tasks * target.num_generated`` trainable parameters.

    Args:
        target: the :class:`~hypercore.Target` (its selected parameters are the table's).
        num_tasks: how many weight sets.
    """

    def __init__(self, target: Target, num_tasks: int):
        super().__init__()
        self.target = target
        self.num_tasks = check_positive_int("num_tasks", num_tasks)
        self.tables = nn.ParameterList(
            nn.Parameter(standard_init(info, num_tasks)) for info in target.spec
        )

    def generate(self, task: int | torch.Tensor) -> dict[str, torch.Tensor]:
        """Task ``task``'s weights: ``{name: (*shape)}`` or ``{name: (B, *shape)}``."""
        check_task_ids(task, self.num_tasks, "TaskWeightTable")
        return {info.name: t[task] for info, t in zip(self.target.spec, self.tables, strict=True)}

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        return self.target(x, self.generate(task))


class TaskConcat(nn.Module):
    """One shared network whose input is ``[x, one_hot(task)]``: additive task conditioning.

    The usual non-hypernetwork way to make one network serve several tasks: the
    task code enters the first layer as extra inputs, so it can only shift that
    layer's pre-activations, :math:`W [x; e_t] = W_x x + w_t`; a
    hypernetwork can change every weight with the task.

    Args:
        module: a network taking ``in_features + num_tasks`` inputs per sample.
        num_tasks: how many tasks (the one-hot width).

    Call with:
        ``x`` ``(B, in_features)`` and a task id (int) or ``(B,)`` task ids.
    """

    def __init__(self, module: nn.Module, num_tasks: int):
        super().__init__()
        self.module = module
        self.num_tasks = check_positive_int("num_tasks", num_tasks)

    def forward(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        check_task_ids(task, self.num_tasks, "TaskConcat")
        task = torch.as_tensor(task, device=x.device)
        task = task.expand(x.shape[0]) if task.dim() == 0 else task
        code = nn.functional.one_hot(task, self.num_tasks).to(x.dtype)
        return self.module(torch.cat([x, code], dim=1))


def prototype_classifier(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> dict[str, torch.Tensor]:
    r"""The linear layer of a prototypical network (Snell et al., 2017), in closed form.

    With class means :math:`p_n` of the support features, the weights
    :math:`w_n = p_n, b_n = -\tfrac12 \lVert p_n \rVert^2` give logits
    :math:`x^\top p_n - \tfrac12 \lVert p_n\rVert^2 = -\tfrac12 \lVert x - p_n \rVert^2
    + \tfrac12 \lVert x \rVert^2`: the softmax of a prototypical network with
    squared Euclidean distance (scaled by 1/2). No parameters are learned here:
    the baseline to a hypernetwork that *learns* how to write the layer.

    Shapes:
        ``features (E, S, d)``, ``labels (E, S)`` -> ``{"weight": (E, N, d), "bias": (E, N)}``.
    """
    one_hot = nn.functional.one_hot(labels, num_classes).to(features.dtype)  # (E, S, N)
    counts = one_hot.sum(1).clamp_min(1).unsqueeze(-1)  # (E, N, 1)
    prototypes = one_hot.transpose(1, 2) @ features / counts  # (E, N, d)
    return {"weight": prototypes, "bias": -0.5 * prototypes.pow(2).sum(-1)}
