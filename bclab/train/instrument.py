"""Probes on the inner optimizer's `update_step` and each binary layer's `binary_kernel`.

`instrumented(...)` installs them for the length of a `with` block and restores the originals on
exit, exceptions included (`bclab.core.patching`). The instrumented step enters it inside its
Python body, so the probes exist only while that body runs: once, at trace time, when the step
is compiled (the ops they add stay in the graph), every call in eager mode. Two steps on one
model therefore never stack their probes, and a model outside a step is left as built.

Nesting inside the step: `instrumented` (outer) wraps the class's `update_step`; then
`BinaryConnectOptimizer.apply` wraps the probe to scale the learning rate of binary kernels. The
call chain is scaling -> probe -> the real `update_step`, so the probe runs once per real call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras

from bclab.core.patching import replaced_attribute


@contextlib.contextmanager
def instrumented(
    inner_optimizer: keras.optimizers.Optimizer,
    layers: Sequence[Any],
    on_update_step: Callable[[Any], None],
    on_binarize: Callable[[Any, Any], None],
) -> Iterator[None]:
    """Within the block, call `on_update_step(variable)` after each `update_step` of
    `inner_optimizer`, and `on_binarize(layer, Wb)` after each training-time `binary_kernel` of
    `layers` (bclab binary layers)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            replaced_attribute(inner_optimizer, "update_step", _update_step_probe(inner_optimizer, on_update_step))
        )
        for layer in layers:
            stack.enter_context(replaced_attribute(layer, "binary_kernel", _binarize_probe(layer, on_binarize)))
        yield


def _update_step_probe(inner_optimizer, on_update_step):
    update_step = inner_optimizer.update_step

    def probed_update_step(gradient, variable, learning_rate):
        update_step(gradient, variable, learning_rate)
        on_update_step(variable)

    return probed_update_step


def _binarize_probe(layer, on_binarize):
    binary_kernel = layer.binary_kernel

    def probed_binary_kernel(training: bool = False):
        Wb = binary_kernel(training)
        if training:
            on_binarize(layer, Wb)
        return Wb

    return probed_binary_kernel
