import itertools

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_mlp(sizes=(6, 8, 3)) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def make_convnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, groups=2, padding=1, padding_mode="reflect"),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
    )


def random_weights(target, batch=None, dtype=torch.float32):
    lead = () if batch is None else (batch,)
    return {n: torch.randn(*lead, *s, dtype=dtype) for n, s in target.shapes.items()}


def per_sample_loop(target, x, weights):
    return torch.cat(
        [target(x[i : i + 1], {n: w[i] for n, w in weights.items()}) for i in range(len(x))]
    )
