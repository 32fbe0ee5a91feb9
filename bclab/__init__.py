"""bclab: a BinaryConnect lab for Keras 3 (Courbariaux, Bengio, David 2015).

Faithful binary layers and update rule, a step trace of what happens inside every
training step, and a Jupyter-widget lab that shows it live.

Names are imported on first use, so ``import bclab.trace`` or ``bclab.plots`` never
loads Keras or TensorFlow.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "binarization": "bclab.binarize",
    "hard_sigmoid": "bclab.binarize",
    "straight_through": "bclab.binarize",
    "RunConfig": "bclab.config",
    "BinaryKernelClip": "bclab.constraints",
    "load_dataset": "bclab.data",
    "BinaryConv2D": "bclab.layers",
    "BinaryDense": "bclab.layers",
    "binary_layers": "bclab.layers",
    "binary_weights": "bclab.layers",
    "build_model": "bclab.models",
    "squared_hinge": "bclab.models",
    "BinaryConnectOptimizer": "bclab.optimizers",
    "Trace": "bclab.trace",
    "Trainer": "bclab.training",
    "Lab": "bclab.lab",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bclab' has no attribute {name!r}")


def __dir__():
    return __all__
