"""Data-conditioned input: an encoder of the target's own input (dynamic input)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from hypercore._deprecation import renamed
from hypercore.bodies.mlp import mlp_layers
from hypercore.errors import (
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    check_int_sequence,
    check_like,
    check_positive_int,
    check_tensor,
    shape_str,
)
from hypercore.inputs.base import Conditioner


class DataEncoder(Conditioner):
    r"""Encode each input sample into an embedding: per-sample weights :math:`\theta(x)`.

    A data-conditioned hypernetwork generates a different target for every
    sample, :math:`y = f(x; h(g(x)))`, as in dynamic filter networks
    (Jia et al., 2016) or Ha et al.'s dynamic hypernetworks.

    Args:
        in_features: number of input features per sample (the product of the
            trailing dimensions of ``x``; images are flattened).
        embedding_dim: embedding size ``E`` (formerly ``dim``).
        hidden: widths of the built-in MLP encoder's hidden layers.
        activation: the built-in encoder's activation.
        encoder: optional custom ``nn.Module`` mapping ``x`` to ``(B, embedding_dim)``;
            replaces the built-in MLP (it cannot then be rebuilt from a
            checkpoint's configuration: pass it again when loading). It may
            hold no tensor at all (e.g. ``nn.Identity()`` with ``embedding_dim
            == in_features``): the encoder then takes its dtype and device from a
            buffer that follows ``.to()``.

    Call with:
        ``x`` of shape ``(B, *)`` with ``B >= 1`` -> ``(B, E)``; for the
        built-in encoder, ``x`` must have its dtype and device.
    """

    _anchor: torch.Tensor  # a buffer: dtype and device of the conditioner

    conditions_on_data = True

    @renamed(dim="embedding_dim")
    def __init__(
        self,
        in_features: int,
        embedding_dim: int,
        hidden: Sequence[int] = (64,),
        activation: str = "relu",
        encoder: nn.Module | None = None,
    ):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("embedding_dim", embedding_dim)
        self.hidden = check_int_sequence("hidden", hidden)
        self.activation = activation
        self.custom = encoder is not None
        if encoder is None:
            encoder = nn.Sequential(
                nn.Flatten(),
                *mlp_layers(in_features, self.hidden, activation),
                nn.Linear(self.hidden[-1] if self.hidden else in_features, embedding_dim),
            )
        elif not isinstance(encoder, nn.Module):
            raise HypercoreTypeError(
                f"encoder: expected an nn.Module or None, got {type(encoder).__name__}"
            )
        self.encoder = encoder
        # dtype and device of the encoder when it holds no tensor (follows .to())
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def config(self) -> dict:
        if self.custom:
            raise HypercoreError(
                "DataEncoder with a custom encoder module cannot be described as JSON; "
                "pass conditioner=... when loading the checkpoint"
            )
        return {
            "in_features": self.in_features,
            "embedding_dim": self.out_features,
            "hidden": list(self.hidden),
            "activation": self.activation,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x)
        if x.dim() == 0 or x.shape[0] == 0:
            raise ShapeError(f"x: expected a batch (B, ...) with B >= 1, got {shape_str(x.shape)}")
        if not self.custom:
            if x.dim() < 2 or math.prod(x.shape[1:]) != self.in_features:
                raise ShapeError(
                    f"x: expected shape (B, ...) with {self.in_features} features per sample, "
                    f"got {shape_str(x.shape)}"
                )
            check_like("x", x, self._anchor_like())
        return self.encoder(x)

    def example_condition(self, n: int) -> torch.Tensor:
        like = self._anchor_like()
        return torch.randn(n, self.in_features, device=like.device, dtype=like.dtype)
