"""Hypernetwork inputs (conditioners): task-, data- and noise-conditioned, and
continuous conditions such as hyperparameters."""

from hypercore.inputs.base import Conditioner
from hypercore.inputs.data import DataEncoder
from hypercore.inputs.noise import NoiseSource
from hypercore.inputs.scalar import ScalarInput
from hypercore.inputs.task import TaskEmbedding

__all__ = ["Conditioner", "DataEncoder", "NoiseSource", "ScalarInput", "TaskEmbedding"]
