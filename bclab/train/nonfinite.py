"""Finding the first NaN/Inf of a training step, and the error that names it.

The policy that uses them (`RunConfig.on_nonfinite`) is stated in `bclab.train.trainer`.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from bclab.trace.schema import LAYER_SCALARS, LOSS, PARAM_SCALARS, is_watched_for_nonfinite

_WATCHED_LAYER = tuple(q for q in LAYER_SCALARS if is_watched_for_nonfinite(q))
_WATCHED_PARAM = tuple(q for q in PARAM_SCALARS if is_watched_for_nonfinite(q))


class NonFiniteError(FloatingPointError):
    """Training produced NaN or Inf (`RunConfig.on_nonfinite="stop"`).

    Attributes: `step` (the global step, from 0), `quantity` (e.g. "loss", "grad_norm"), `where`
    (the layer or variable, None for the loss) and the message, e.g. "step 12: grad_norm of layer
    dense_1 is Inf".
    """

    def __init__(self, step: int, quantity: str, where: str | None, message: str):
        super().__init__(message)
        self.step, self.quantity, self.where = step, quantity, where


def first_nonfinite(host: dict[str, Any], layers: list[str], params: list) -> tuple[str, str | None, str] | None:
    """(quantity, layer or variable, text) of the first NaN/Inf in a step's host summary: the loss,
    then each layer's, then each parameter's gradient and update norms (present when traced)."""
    # The same quantities the trace watches (`schema.is_watched_for_nonfinite`), from the host
    # summary, so that the policy works with the trace off too.
    candidates = [(LOSS, None, "loss", host[LOSS])]
    for name, summary in zip(layers, host.get("layers", ())):
        candidates += [(q, name, f"{q} of layer {name}", summary[q]) for q in _WATCHED_LAYER]
    for variable, summary in zip(params, host.get("params", ())):
        candidates += [(q, variable.path, f"{q} of variable {variable.path}", summary[q]) for q in _WATCHED_PARAM]
    for quantity, where, text, value in candidates:
        value = float(value)
        if not math.isfinite(value):
            return quantity, where, f"{text} is {_nonfinite_text(value)}"
    return None


def _nonfinite_text(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")


def first_nonfinite_variable(model: keras.Model) -> str:
    """Which model variable holds NaN/Inf first, as text (a host copy of each: call it once)."""
    for variable in model.variables:
        if not np.all(np.isfinite(variable.numpy())):
            return f"first non-finite model variable: {variable.path}"
    return "every model variable is finite"
