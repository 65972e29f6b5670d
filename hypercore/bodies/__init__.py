"""Hypernetwork bodies (the hypernetwork's own architecture)."""

from hypercore.bodies.base import Body
from hypercore.bodies.hyperlstm import HyperLSTM, HyperLSTMCell
from hypercore.bodies.mlp import MLPBody, make_activation

__all__ = ["Body", "HyperLSTM", "HyperLSTMCell", "MLPBody", "make_activation"]
