"""bclab: a BinaryConnect lab for Keras 3 (Courbariaux, Bengio, David 2015).

Faithful binary layers and update rule, a step trace of what happens inside every
training step, and a Jupyter-widget lab that shows it live.
"""

from bclab.binarize import binarization, hard_sigmoid, straight_through
from bclab.config import RunConfig
from bclab.constraints import BinaryKernelClip
from bclab.data import load_dataset
from bclab.layers import BinaryConv2D, BinaryDense, binary_layers, binary_weights
from bclab.models import build_model, squared_hinge
from bclab.optimizers import BinaryConnectOptimizer
from bclab.trace import Trace

__version__ = "0.1.0"

__all__ = [
    "BinaryConnectOptimizer",
    "BinaryConv2D",
    "BinaryDense",
    "BinaryKernelClip",
    "RunConfig",
    "Trace",
    "binarization",
    "binary_layers",
    "binary_weights",
    "build_model",
    "hard_sigmoid",
    "load_dataset",
    "squared_hinge",
    "straight_through",
    "__version__",
]


def __getattr__(name: str):
    # Trainer imports TensorFlow's tf.function machinery; load it on first use.
    if name == "Trainer":
        from bclab.training import Trainer

        return Trainer
    raise AttributeError(f"module 'bclab' has no attribute {name!r}")
