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
    export/              1-bit export: binary kernels packed to bits, the inference model rebuilt
    cli/                 `bclab train`, `bclab trace`, `bclab export`: pre-flight, one error boundary, outputs

Names are imported on first use, so `import bclab.trace` or `bclab.plots` never loads
Keras or TensorFlow.

Saved models load after `import bclab`: Keras finds a custom class only once its module has run
`register_keras_serializable` (it imports modules of Keras's own packages only), so bclab's
registering modules (`_REGISTERING`) are imported as soon as Keras is: at once if Keras is already
imported, otherwise right after Keras's own import finishes (`_KerasImportHook`). Importing bclab
alone still loads no framework.
"""

import logging
import sys
from _thread import get_ident
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
    "LiveTrace": "bclab.lab.live",
    "compare_runs": "bclab.lab.compare",
    "export_packed": "bclab.export.keras_model",
    "load_packed": "bclab.export.keras_model",
    "PackedFileError": "bclab.export.fileformat",
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


# ---------------------------------------------------------------- registration with Keras

# The modules whose import registers every class a saved model can name (BinaryDense,
# BinaryConv2D, BinaryKernelClip through layers' import of it, BinaryConnectOptimizer).
_REGISTERING = ("bclab.core.layers", "bclab.core.optimizers")


def _register_with_keras() -> None:
    """Import the registering modules; a failure is logged, never raised into someone's `import keras`."""
    try:
        for name in _REGISTERING:
            import_module(name)
    except Exception:
        logging.getLogger(__name__).warning(
            "bclab could not register its classes with Keras, so `keras.models.load_model` will not find "
            "BinaryDense & co.; `import bclab.core.layers, bclab.core.optimizers` before loading a model",
            exc_info=True,
        )


class _KerasImportHook:
    """A `sys.meta_path` finder that runs `_register_with_keras` right after `keras` is imported.

    It answers for the top-level `keras` only: it asks the other finders for the spec, as Python
    would, and wraps the spec's loader so that its `exec_module` runs the real one and then
    registers. Everything else (and `keras` when no other finder has a spec with `exec_module`)
    is left to the normal finders. It removes itself once it has fired, and restores the real
    loader on the module before Keras's code runs, so `importlib.reload(keras)` and anything that
    inspects `keras.__loader__` see the real one. `bclab_hook` marks it, so that
    `importlib.reload(bclab)` does not install a second one.
    """

    bclab_hook = True

    def __init__(self) -> None:
        self._searching: set[int] = set()  # threads asking the other finders (who may ask us again)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or get_ident() in self._searching:
            return None
        self._searching.add(get_ident())
        try:
            spec = self._spec_from_other_finders(fullname, path, target)
        finally:
            self._searching.discard(get_ident())
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return None  # let Python's own search proceed (and fail) as if we were not here
        spec.loader = _RegisteringLoader(spec.loader, self)
        return spec

    def _spec_from_other_finders(self, fullname, path, target):
        for finder in list(sys.meta_path):
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or getattr(finder, "bclab_hook", False) or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def fired(self) -> None:
        """Keras is imported: leave `sys.meta_path`, then register."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        _register_with_keras()


class _RegisteringLoader:
    """The real loader of `keras`, and a call to `hook.fired()` once its module has run."""

    def __init__(self, loader, hook: _KerasImportHook) -> None:
        self.loader, self.hook = loader, hook

    def create_module(self, spec):
        create = getattr(self.loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = self.loader
        if getattr(module.__spec__, "loader", None) is self:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)  # if Keras's import fails, the hook stays for the next try
        self.hook.fired()

    def __getattr__(self, name: str):
        return getattr(self.loader, name)


def _install_keras_hook() -> None:
    if sys.modules.get("keras") is not None:
        _register_with_keras()
    elif not any(getattr(finder, "bclab_hook", False) for finder in sys.meta_path):
        sys.meta_path.insert(0, _KerasImportHook())


_install_keras_hook()
