"""Hypernetwork architectures: MLP bodies, a CNN that reads images (convolutional),
the HyperLSTM (recurrent) and a support-set transformer (attention)."""

from hypercore.bodies.attention import SupportSetTransformer
from hypercore.bodies.base import Body
from hypercore.bodies.conv import ConvBody
from hypercore.bodies.hyperlstm import HyperLSTM, HyperLSTMCell
from hypercore.bodies.mlp import MLPBody, make_activation

__all__ = [
    "Body",
    "ConvBody",
    "HyperLSTM",
    "HyperLSTMCell",
    "MLPBody",
    "SupportSetTransformer",
    "make_activation",
]
