"""The clip that ends every update of a binary kernel, and its step scale.

Reference (`binary_connect.py`, `clipping_scaling`): after the optimizer
computes `W_new`, a binary kernel becomes
`clip(W + W_LR_scale * (W_new - W), -H, H)`. The clip lives here as a Keras
constraint, so every Keras optimizer applies it; the step scale needs the value
before the update, so `bclab.BinaryConnectOptimizer` applies the whole rule and
skips this constraint while it does.
"""

from __future__ import annotations

import logging

import keras
from keras import ops

from bclab.validation import check_positive_float, invalid_value

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="bclab")
class BinaryKernelClip(keras.constraints.Constraint):
    """Clip a binary kernel to `[-H, H]`; carry its `W_LR_scale`.

    Called by a plain Keras optimizer, it clips only: the step scale cannot be
    applied without the pre-update value, so it warns once when the scale is not 1
    (a multiplier that is stored but never applied is a known fault of other ports).
    """

    def __init__(self, H: float, W_LR_scale: float = 1.0, layer_name: str = ""):
        self.H = check_positive_float("H", H)
        self.W_LR_scale = check_positive_float("W_LR_scale", W_LR_scale)
        if not isinstance(layer_name, str):
            raise invalid_value("layer_name", layer_name, "a string")
        self.layer_name = layer_name
        self._warned = False

    def __call__(self, w):
        if self.W_LR_scale != 1.0 and not self._warned:
            self._warned = True
            logger.warning(
                "W_LR_scale=%.4g of layer %r is not applied: the optimizer is not "
                "wrapped. Compile with optimizer=bclab.BinaryConnectOptimizer(<optimizer>) "
                "to scale the step as the reference does.",
                self.W_LR_scale,
                self.layer_name,
            )
        return ops.clip(w, -self.H, self.H)

    def scaled_update(self, before, after):
        """`clip(before + W_LR_scale * (after - before), -H, H)`, the reference rule."""
        if self.W_LR_scale == 1.0:
            return ops.clip(after, -self.H, self.H)
        return ops.clip(before + self.W_LR_scale * (after - before), -self.H, self.H)

    def get_config(self):
        return {"H": self.H, "W_LR_scale": self.W_LR_scale, "layer_name": self.layer_name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "lr_scale" in config:  # the key of models saved by bclab 0.1
            config["W_LR_scale"] = config.pop("lr_scale")
        return cls(**config)
