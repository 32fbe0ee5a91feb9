"""The lab: ipywidgets and plotly views around a background training run.

Names are imported on first use, so `import bclab.lab` loads no widget library until `Lab`,
`compare_runs` or `Comparison` is asked for.
"""

from importlib import import_module

_EXPORTS = {
    "Lab": "bclab.lab.app",
    "VIEWS": "bclab.lab.views",
    "Comparison": "bclab.lab.compare",
    "compare_runs": "bclab.lab.compare",
    "ConfigControls": "bclab.lab.controls",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bclab.lab' has no attribute {name!r}")


def __dir__():
    return __all__
