"""The target network: which parameters are generated, and how they are applied."""

from hypercore.target.per_sample import conv2d_per_sample, linear_per_sample
from hypercore.target.selection import select_parameters
from hypercore.target.spec import ParamInfo, WeightSpec
from hypercore.target.structured import LowRank, RowScaled, StructuredWeight
from hypercore.target.target import Target

__all__ = [
    "LowRank",
    "ParamInfo",
    "RowScaled",
    "StructuredWeight",
    "Target",
    "WeightSpec",
    "conv2d_per_sample",
    "linear_per_sample",
    "select_parameters",
]
