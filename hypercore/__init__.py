"""hypercore: composable hypernetworks for PyTorch.

A hypernetwork generates the weights of a target network. hypercore builds one
from four swappable parts (``condition -> conditioner -> body -> head ->
target``), following the taxonomy of Chauhan et al. (2023):

* :mod:`hypercore.target`: wrap any ``nn.Module`` and choose the generated
  parameters; apply shared or per-sample weights (batched).
* :mod:`hypercore.inputs`: task-, data- and noise-conditioned inputs.
* :mod:`hypercore.bodies`: the hypernetwork's own architecture (MLP, the
  recurrent HyperLSTM, a support-set transformer).
* :mod:`hypercore.heads`: output strategies (once, multiple, component-wise,
  chunk-wise; scaling and low-rank modulations of learned base weights).
* :mod:`hypercore.init`: hyperfan-in/-out and bias-HyperInit.
* :mod:`hypercore.dynamic`: dynamic outputs (targets whose shape varies).
* :mod:`hypercore.baselines`: the same call signature without a hypernetwork.
* :mod:`hypercore.data`, :mod:`hypercore.train`, :mod:`hypercore.checkpoint`:
  data (scikit-learn's sets need ``pip install hypercore[data]``), the training
  loop, safe checkpoints.
* :mod:`hypercore.errors`: the errors every bad input gets, and their checks.

The library needs torch and safetensors only. ``hypercore.book`` (notebook
support) and ``hypercore.bench`` (benchmark workloads) serve the book's
repository and are not part of the installed package.
"""

__version__ = "0.1.0"

from hypercore import errors
from hypercore.bodies import Body, HyperLSTM, HyperLSTMCell, MLPBody, SupportSetTransformer
from hypercore.checkpoint import load, read_config, save
from hypercore.dynamic import CoordinateHyperNetwork
from hypercore.errors import (
    CheckpointError,
    DtypeDeviceError,
    HypercoreError,
    HypercoreTypeError,
    ShapeError,
    UnknownTaskError,
    WeightsMismatchError,
)
from hypercore.heads import (
    ChunkWiseHead,
    ComponentWiseHead,
    Head,
    KernelTileHead,
    LowRankHead,
    MultiHead,
    OnceHead,
    ScalingHead,
)
from hypercore.hypernetwork import HEADS, HyperNetwork
from hypercore.init import INIT_METHODS
from hypercore.inputs import Conditioner, DataEncoder, NoiseSource, ScalarInput, TaskEmbedding
from hypercore.target import LowRank, ParamInfo, RowScaled, Target, WeightSpec
from hypercore.train import History, accuracy, fit

__all__ = [
    "HEADS",
    "INIT_METHODS",
    "Body",
    "CheckpointError",
    "ChunkWiseHead",
    "ComponentWiseHead",
    "Conditioner",
    "CoordinateHyperNetwork",
    "DataEncoder",
    "DtypeDeviceError",
    "Head",
    "History",
    "HyperLSTM",
    "HyperLSTMCell",
    "HyperNetwork",
    "HypercoreError",
    "HypercoreTypeError",
    "KernelTileHead",
    "LowRank",
    "LowRankHead",
    "MLPBody",
    "MultiHead",
    "NoiseSource",
    "OnceHead",
    "ParamInfo",
    "RowScaled",
    "ScalarInput",
    "ScalingHead",
    "ShapeError",
    "SupportSetTransformer",
    "Target",
    "TaskEmbedding",
    "UnknownTaskError",
    "WeightSpec",
    "WeightsMismatchError",
    "__version__",
    "accuracy",
    "errors",
    "fit",
    "load",
    "read_config",
    "save",
]
