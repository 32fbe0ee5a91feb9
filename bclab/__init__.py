"""bclab: a BinaryConnect lab for Keras 3 (Courbariaux, Bengio, David 2015).

Faithful binary layers and update rule, a step trace of what happens inside every
training step, and a Jupyter-widget lab that shows it live.

The package is cut by tier, in the order data flows (each tier imports only those before it;
`tests/test_architecture.py` checks the rules):

    validation, atomic   the error formula and argument checks; files written whole
    data, config         data sets -> uint8 arrays; RunConfig and the paper's recipes
    core/                binarization, clip, binary layers, optimizer wrapper (keras.ops only)
    trace/               the step-trace store, its record schema and file format (NumPy only)
    train/               models, the instrumented step, Trainer, runner (TensorFlow)
    plots/               trace -> plotly figures (no Keras, no widgets)
    lab/                 the ipywidgets lab
    cli                  `bclab train`, `bclab trace`

Names are imported on first use, so `import bclab.trace` or `bclab.plots` never loads
Keras or TensorFlow.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "binarization": "bclab.core.binarize",
    "hard_sigmoid": "bclab.core.binarize",
    "straight_through": "bclab.core.binarize",
    "BinaryKernelClip": "bclab.core.constraints",
    "BinaryConv2D": "bclab.core.layers",
    "BinaryDense": "bclab.core.layers",
    "binary_layers": "bclab.core.layers",
    "binary_weights": "bclab.core.layers",
    "BinaryConnectOptimizer": "bclab.core.optimizers",
    "RunConfig": "bclab.config",
    "load_dataset": "bclab.data",
    "build_model": "bclab.train.models",
    "squared_hinge": "bclab.train.models",
    "Trainer": "bclab.train.trainer",
    "Trace": "bclab.trace.store",
    "Lab": "bclab.lab.app",
    "compare_runs": "bclab.lab.compare",
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
