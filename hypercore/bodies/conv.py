r"""A convolutional hypernetwork body: it reads an image and returns features.

Where the weights should depend on the input image itself (dynamic filter
networks, Jia et al., 2016), the hypernetwork has to *see* the image, and the
architecture that sees images is a CNN. :class:`ConvBody` is that CNN:

.. math::
    a_0 = x, \qquad a_l = \phi(\mathrm{conv}_l(a_{l-1})), \qquad
    h = \phi\big(W\, \operatorname{mean}_{u,v} a_L[:, u, v] + b\big),

a stack of ``same``-padded convolutions, a global average over the positions
and one linear layer. It takes flat inputs ``(N, C*H*W)`` (what a
:class:`~hypercore.inputs.DataEncoder` passes on, and what its example
conditions look like) or images ``(N, C, H, W)``.

Use it as the encoder of a data-conditioned hypernetwork, so that every input
image writes the weights it is processed with::

    DataEncoder(64, 16, encoder=ConvBody(64, (1, 8, 8), out_features=16))

:func:`hypercore.heads.dynamic_filter_network` builds the whole dynamic filter
network (this encoder, and a transposed-convolution kernel generator).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from hypercore.bodies.base import Body
from hypercore.bodies.mlp import ACTIVATIONS, make_activation
from hypercore.errors import (
    HypercoreError,
    ShapeError,
    check_choice,
    check_int_sequence,
    check_positive_int,
    check_tensor,
    shape_str,
)


class ConvBody(Body, nn.Module):
    """A small CNN from images to features: ``(N, C*H*W)`` or ``(N, C, H, W)`` -> ``(N, F)``.

    Args:
        in_features: ``C * H * W`` (what the conditioner passes on; checked).
        image_shape: ``(C, H, W)`` of one input image.
        channels: output channels of each convolution, e.g. ``(8, 16)``; at least one.
        out_features: ``F``, the size of the features returned.
        kernel_size: an odd kernel size of every convolution (``same`` padding).
        activation: ``"relu"`` (default), ``"tanh"``, ``"gelu"``, ``"elu"``,
            ``"silu"`` or ``"sigmoid"``; after every convolution and the last layer.

    Shapes:
        ``(N, in_features)`` or ``(N, *image_shape)`` -> ``(N, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        image_shape: Sequence[int],
        channels: Sequence[int] = (8, 16),
        out_features: int = 16,
        kernel_size: int = 3,
        activation: str = "relu",
    ):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.image_shape = check_int_sequence("image_shape", image_shape)
        if len(self.image_shape) != 3:
            raise HypercoreError(
                f"image_shape: expected (C, H, W), got {tuple(self.image_shape)} "
                f"({len(self.image_shape)} numbers)"
            )
        if math.prod(self.image_shape) != self.in_features:
            raise HypercoreError(
                f"in_features: expected C*H*W = {math.prod(self.image_shape)} for image_shape "
                f"{tuple(self.image_shape)}, got {self.in_features}"
            )
        self.channels = check_int_sequence("channels", channels)
        if not self.channels:
            raise HypercoreError("channels: expected at least one convolution, got ()")
        self.out_features = check_positive_int("out_features", out_features)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        if self.kernel_size % 2 == 0:
            raise HypercoreError(
                f"kernel_size: expected an odd size ('same' padding), got {self.kernel_size}"
            )
        self.activation = check_choice("activation", activation, sorted(ACTIVATIONS))
        layers: list[nn.Module] = []
        width = self.image_shape[0]
        for c in self.channels:
            layers += [
                nn.Conv2d(width, c, self.kernel_size, padding=self.kernel_size // 2),
                make_activation(activation),
            ]
            width = c
        self.convs = nn.Sequential(*layers)
        self.out = nn.Sequential(nn.Linear(width, self.out_features), make_activation(activation))

    def config(self) -> dict:
        return {
            "image_shape": list(self.image_shape),
            "channels": list(self.channels),
            "out_features": self.out_features,
            "kernel_size": self.kernel_size,
            "activation": self.activation,
        }

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as a batch of images ``(N, C, H, W)``, or a :class:`ShapeError` naming ``x``."""
        check_tensor("x", x)
        if x.dim() >= 1 and x.shape[0] >= 1:
            if x.dim() == 2 and x.shape[1] == self.in_features:
                return x.view(x.shape[0], *self.image_shape)
            if tuple(x.shape[1:]) == self.image_shape:
                return x
        image = ", ".join(map(str, self.image_shape))
        raise ShapeError(
            f"x: expected shape (N, {self.in_features}) or (N, {image}) with N >= 1, "
            f"got {shape_str(x.shape)}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.convs(self.images(x))  # (N, C_L, H, W)
        return self.out(a.mean(dim=(2, 3)))  # (N, F)
