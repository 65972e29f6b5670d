"""The MLP body: the most common hypernetwork architecture."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hypercore.bodies.base import Body
from hypercore.errors import check_choice, check_features, check_int_sequence, check_positive_int

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
}


def make_activation(name: str) -> nn.Module:
    """``nn.ReLU()`` for ``"relu"``, etc.; a clear error for an unknown name."""
    return ACTIVATIONS[check_choice("activation", name, sorted(ACTIVATIONS))]()


def mlp_layers(in_features: int, hidden: Sequence[int], activation: str) -> list[nn.Module]:
    """``Linear -> activation`` for each hidden width."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), make_activation(activation)]
        width = h
    return layers


class MLPBody(Body, nn.Module):
    r"""Fully connected layers, each followed by an activation.

    .. math:: h = \phi(W_L \cdots \phi(W_1 e + b_1) \cdots + b_L)

    With ``hidden=()`` the body is the identity and the head reads the
    embedding directly (a "linear hypernetwork").

    Args:
        in_features: embedding size ``E`` from the conditioner.
        hidden: widths of the hidden layers, e.g. ``(64, 64)``.
        activation: ``"relu"`` (default), ``"tanh"``, ``"gelu"``, ``"elu"``,
            ``"silu"`` or ``"sigmoid"``.

    Shapes:
        ``(N, in_features) -> (N, out_features)`` with
        ``out_features = hidden[-1]`` (or ``in_features`` when ``hidden=()``).
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (64,), activation: str = "relu"):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.hidden = check_int_sequence("hidden", hidden)
        self.activation = check_choice("activation", activation, sorted(ACTIVATIONS))
        self.net = nn.Sequential(*mlp_layers(in_features, self.hidden, activation))
        self.out_features = self.hidden[-1] if self.hidden else in_features

    def config(self) -> dict:
        return {"hidden": list(self.hidden), "activation": self.activation}

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        check_features("body input", e, self.in_features)
        return self.net(e)
