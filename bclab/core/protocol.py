"""Which layers the trace sees, and how: the binary-layer protocol and kernel layers.

A layer is traced as **binary** when it exposes (bclab's `BinaryDense`/`BinaryConv2D` with
`binary=True` do, and so can a layer of your own):

- `kernel`: the real-valued weights W, a trainable Keras variable;
- `H`: the binary magnitude, a positive number;
- `binary_kernel_in_use`: the binary kernel Wb its forward pass used, assigned in `call` (a
  tensor of the kernel's shape). It must exist before the first call (None, e.g. as a class
  attribute): the trace looks for it when `fit` starts.

Optional: `W_LR_scale` (default 1.0) and `stochastic` (default False), which the trace records,
and `binary` (a layer with `binary=False` is not binary). For example, a Dense of your own:

    class MyBinaryDense(keras.layers.Dense):
        H = 1.0
        binary_kernel_in_use = None

        def call(self, x, training=None):
            Wb = bclab.binarization(self.kernel, self.H, deterministic=not training)
            self.binary_kernel_in_use = Wb
            return ops.matmul(x, bclab.straight_through(self.kernel, Wb)) + self.bias

Every other layer with a trainable `kernel` variable (Dense, Conv2D, ...) is a **float** kernel
layer: the trace records its W, gradient and update, but no binary counts.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import keras

__all__ = ["KernelLayer", "is_binary_layer", "kernel_layers"]


class KernelLayer(NamedTuple):
    """A layer with a trainable kernel, and whether the trace sees it as binary."""

    layer: Any
    binary: bool


def _has_trainable_kernel(layer: Any) -> bool:
    kernel = getattr(layer, "kernel", None)
    return isinstance(kernel, keras.Variable) and kernel.trainable and getattr(layer, "trainable", True)


def is_binary_layer(layer: Any) -> bool:
    """True when `layer` follows the binary-layer protocol (module docstring)."""
    if not _has_trainable_kernel(layer) or not getattr(layer, "binary", True):
        return False
    if not hasattr(layer, "binary_kernel_in_use"):
        return False
    H = getattr(layer, "H", None)
    return isinstance(H, (int, float)) and not isinstance(H, bool) and math.isfinite(H) and H > 0


def kernel_layers(model: keras.Model) -> list[KernelLayer]:
    """The model's layers with a trainable kernel, nested models included, in Keras's order; each
    marked binary or float. A layer reached twice (shared) is listed once."""
    found: list[KernelLayer] = []
    seen: set[int] = set()

    def visit(container: Any) -> None:
        for layer in container.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if _has_trainable_kernel(layer):
                found.append(KernelLayer(layer, is_binary_layer(layer)))
            elif hasattr(layer, "layers"):
                visit(layer)

    visit(model)
    return found
