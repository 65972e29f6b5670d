r"""Dynamic filters: convolution kernels written per input by a convolutional hypernetwork.

A dynamic filter network (Jia, De Brabandere, Tuytelaars & Van Gool, NeurIPS
2016) has a *filter-generating network* that reads the input and writes the
filters that a convolution then applies to that same input: every sample is
filtered by its own kernel. Here the filter-generating network is a CNN
encoder (:class:`~hypercore.bodies.ConvBody`) followed by
:class:`DynamicFilterHead`, a small *transposed-convolution* generator that
builds each kernel's spatial pattern the way a decoder builds an image:

.. math::
    S_n = \phi\big(\operatorname{reshape}_{D \times s \times s}(U h_n + u)\big),
    \qquad
    B_n = \operatorname{ConvT}(S_n) \in \mathbb{R}^{M \times k_h \times k_w},

.. math::
    K_n[o, c] = \sum_{m=1}^{M} A_{o c m}\, B_n[m] \in \mathbb{R}^{k_h \times k_w}.

``h_n`` is the encoder's feature vector for sample ``n``; the transposed
convolution (kernel ``(k_h - s + 1) x (k_w - s + 1)``) grows the ``s x s``
seed into ``M`` spatial basis filters of the kernel's size, and a learned
mixing tensor ``A`` combines them into the ``O x C`` filters of the kernel.
Read as a layer, the generated convolution filters every input channel with
``M`` filters of the sample's own and mixes the ``C * M`` maps into ``O``
channels with a learned (static) ``1 x 1`` mixing: a per-sample depthwise
filter bank plus a learned pointwise mixing. The parameters grow with
``O * C * M`` (the mixing) plus the small generator, not with the kernel
size times ``O * C`` times the feature size as a linear head's would.

The generated weights have shape ``(N, O, C, k_h, k_w)``; a
:class:`~hypercore.Target` applies them per sample in one grouped convolution.
The head's output is scaled per number at init (hyperfan-in by default), as
in :class:`~hypercore.heads.ScaledOutputHead`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from hypercore.bodies.mlp import ACTIVATIONS, make_activation
from hypercore.errors import (
    HypercoreError,
    check_choice,
    check_int_sequence,
    check_positive_int,
)
from hypercore.heads.shared import ScaledOutputHead
from hypercore.init import DEFAULT_INIT
from hypercore.target.spec import WeightSpec


class DynamicFilterHead(ScaledOutputHead):
    """Generate 4-D convolution kernels with a transposed-convolution decoder (see the module).

    Args:
        in_features: body feature size.
        spec: the target's weight spec: every tensor must be a conv kernel
            ``(O, C, kh, kw)`` with ``kh, kw >= seed_size`` (biases and linear
            layers stay trainable in the target: exclude them from the selection).
        seed_size: ``s``, the side of the seed grid the decoder grows.
        channels: ``D``, channels of the seed grid.
        basis: ``M``, spatial basis filters per sample and kernel.
        activation: on the seed grid (``"relu"`` by default).

    Shapes:
        ``(N, in_features) -> {name: (N, O, C, kh, kw)}``.
    """

    def __init__(
        self,
        in_features: int,
        spec: WeightSpec,
        seed_size: int = 3,
        channels: int = 8,
        basis: int = 4,
        activation: str = "relu",
    ):
        super().__init__(in_features, spec)
        self.seed_size = check_positive_int("seed_size", seed_size)
        self.channels = check_positive_int("channels", channels)
        self.basis = check_positive_int("basis", basis)
        self.activation = check_choice("activation", activation, sorted(ACTIVATIONS))
        bad = [
            f"{p.name} {tuple(p.shape)}"
            for p in spec
            if len(p.shape) != 4 or min(p.shape[2:]) < self.seed_size
        ]
        if bad:
            raise HypercoreError(
                f"spec: DynamicFilterHead generates 4-D conv kernels (O, C, kh, kw) with "
                f"kh, kw >= seed_size ({self.seed_size}); cannot generate {', '.join(bad)} "
                "(select only the conv weights, e.g. include='2.weight')"
            )
        s = self.seed_size
        self.seeds = nn.ModuleList(nn.Linear(in_features, channels * s * s) for _ in spec)
        self.decoders = nn.ModuleList(
            nn.ConvTranspose2d(channels, basis, (p.shape[2] - s + 1, p.shape[3] - s + 1))
            for p in spec
        )
        self.mixing = nn.ParameterList(
            nn.Parameter(torch.randn(p.shape[0] * p.shape[1], basis) / math.sqrt(basis))
            for p in spec
        )
        self.act = make_activation(activation)

    def config(self) -> dict:
        return {
            "seed_size": self.seed_size,
            "channels": self.channels,
            "basis": self.basis,
            "activation": self.activation,
        }

    def basis_filters(self, h: torch.Tensor) -> list[torch.Tensor]:
        """The per-sample spatial basis filters ``B_n``, one ``(N, M, kh, kw)`` per kernel."""
        n, s = h.shape[0], self.seed_size
        return [
            decoder(self.act(seed(h).view(n, self.channels, s, s)))
            for seed, decoder in zip(self.seeds, self.decoders, strict=True)
        ]

    def raw(self, h: torch.Tensor) -> torch.Tensor:
        pieces = []
        for basis, mixing in zip(self.basis_filters(h), self.mixing, strict=True):
            # (O*C, M) @ (N, M, kh*kw) -> (N, O*C, kh*kw): kernel n, flattened as (O, C, kh, kw)
            pieces.append(torch.matmul(mixing, basis.flatten(2)).flatten(1))
        return torch.cat(pieces, dim=1)


def dynamic_filter_network(
    module: nn.Module,
    image_shape: Sequence[int],
    include: str | Sequence[str],
    *,
    encoder_channels: Sequence[int] = (8, 16),
    features: int = 16,
    seed_size: int = 3,
    channels: int = 8,
    basis: int = 4,
    init: str = DEFAULT_INIT,
):
    """A dynamic filter network: each input image writes the conv kernels it is filtered with.

    ``input image -> ConvBody (a CNN) -> DynamicFilterHead (transposed conv) -> the
    target's selected conv kernels, per sample``; the rest of the target is
    trained directly. Call the result as ``hnet(x)`` with ``x`` of shape
    ``(B, C*H*W)`` or ``(B, C, H, W)``, whatever ``module`` takes.

    Args:
        module: the target network (any ``nn.Module`` holding ``nn.Conv2d`` layers).
        image_shape: ``(C, H, W)`` of an input image (what the encoder reads).
        include: the conv weights to generate (glob patterns, e.g. ``"2.weight"``).
        encoder_channels, features: the encoder's convolutions and feature size.
        seed_size, channels, basis: :class:`DynamicFilterHead`'s options.
        init: the head's init (see :mod:`hypercore.init`).

    Returns:
        A :class:`~hypercore.HyperNetwork` with a :class:`~hypercore.inputs.DataEncoder`
        whose encoder is the :class:`~hypercore.bodies.ConvBody` (pass that
        conditioner again when loading a checkpoint: a custom encoder is not
        described as JSON).
    """
    # imported here: hypercore.hypernetwork imports this package
    from hypercore.bodies.conv import ConvBody
    from hypercore.bodies.mlp import MLPBody
    from hypercore.hypernetwork import HyperNetwork
    from hypercore.inputs.data import DataEncoder
    from hypercore.target import Target

    if not isinstance(module, nn.Module):
        raise HypercoreError(f"module: expected an nn.Module, got {type(module).__name__}")
    shape = check_int_sequence("image_shape", image_shape)
    if len(shape) != 3:
        raise HypercoreError(f"image_shape: expected (C, H, W), got {shape} ({len(shape)} numbers)")
    encoder = ConvBody(math.prod(shape), shape, encoder_channels, features)
    conditioner = DataEncoder(encoder.in_features, features, encoder=encoder)
    body = MLPBody(features, ())
    target = Target(module, include)
    head = DynamicFilterHead(
        features, target.spec, seed_size=seed_size, channels=channels, basis=basis
    )
    return HyperNetwork(target, conditioner, body, head, init=init)
