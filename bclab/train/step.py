"""The instrumented training step: one BinaryConnect update plus on-device summaries.

One call runs, in order: forward pass (each binary layer binarizes its kernel here),
squared-hinge loss, `tape.gradient`, then `BinaryConnectOptimizer.apply` -> inner `apply` ->
`update_step` per variable -> step scale and clip of binary kernels. It returns the loss, batch
accuracy and, per binary layer, summaries computed on the device, so only a few kilobytes reach
the host.

Per binary layer (`level="scalars"` and `"full"`), exact over the whole kernel: the +H/-H counts
of the binary kernel used in this step, the gradient norm, and the norm of the update actually
applied (`W_after - W_before`: after the step scale and the clip). Whole-kernel passes are what
tracing costs on a CPU, so the rest looks at a fixed subset (the rule: `bclab.train.histograms`):
the flip ratio (fraction of binary weights that differ from the previous step's; step 0 compares
with `sign(W_init)`) and the clipped fraction (weights at the bound `|W| = H` after the update).
With `level="full"` also histograms on fixed bins (`default_bin_edges`) of the real weights W
used in the forward pass (in units of H), `p = hard_sigmoid(W/H)`, the gradient and the update,
and W, Wb, p, gradient and update of `sample_size` tracked weights chosen by seed. Non-binary
parameters get gradient and update norms.

Counters answer "when does the optimizer run?": `python_traces` counts executions of the Python
body of the step and `python_update_step_calls` those of the inner optimizer's `update_step`
(Keras 3's successor of Keras 2's `get_updates`, counted by `bclab.train.instrument`'s probe):
once per trace when compiled, every call in eager mode. `compiled_runs` is a variable the step
increments, so it counts executions. The phases' timestamps: `bclab.train.timeline`. With
`jit_compile` the core step is compiled with XLA and the summaries run in a second function.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bclab.config import TRACE_LEVELS
from bclab.core.binarize import hard_sigmoid
from bclab.core.layers import binary_layers
from bclab.core.optimizers import BinaryConnectOptimizer
from bclab.trace.schema import (
    ACCURACY,
    CLIPPED_FRACTION,
    COMPILED_RUNS,
    FLIP_RATIO,
    GRAD_NORM,
    LOSS,
    LR,
    PYTHON_TRACES,
    PYTHON_UPDATE_STEP_CALLS,
    UPDATE_NORM,
)
from bclab.train import timeline
from bclab.train.histograms import HIST_SUBSET, bucket_counts, default_bin_edges, subset_stride
from bclab.train.instrument import instrumented
from bclab.validation import check_choice, check_flag, check_int

_STAMPS = "stamps"  # the step's timestamps, in its output until the host turns them into events


class InstrumentedStep:
    """A compiled (or eager) training step for `model` that reports what it did.

    Args:
        model: a built Keras model whose binary layers are bclab layers.
        optimizer: a built `BinaryConnectOptimizer`.
        loss_fn: `loss_fn(y_true, y_pred)` -> scalar.
        level: "off" (loss and accuracy only), "scalars" or "full".
        sample_size: tracked weights per binary layer (level "full").
        seed: chooses the tracked weights.
        eager: run the Python body on every call (no `tf.function`), so every call is recorded
            as it happens; slow, for a handful of steps.
        jit_compile: compile the core step with XLA (ignored when `eager`).
        bin_edges: histogram edges per kind (default: `default_bin_edges()`).
        hist_subset: at most this many weights per layer in the subset (`bclab.train.histograms`).
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: BinaryConnectOptimizer,
        loss_fn: Callable,
        *,
        level: str = "full",
        sample_size: int = 256,
        seed: int = 0,
        eager: bool = False,
        jit_compile: bool = False,
        bin_edges: dict[str, np.ndarray] | None = None,
        hist_subset: int = HIST_SUBSET,
    ):
        self.level = check_choice("level", level, TRACE_LEVELS)
        self.eager, self.jit_compile = check_flag("eager", eager), check_flag("jit_compile", jit_compile)
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.layers = binary_layers(model)
        kernel_ids = {id(layer.kernel) for layer in self.layers}
        self.params = [v for v in model.trainable_variables if id(v) not in kernel_ids]
        self.bin_edges = bin_edges or default_bin_edges()
        sizes = [int(np.prod(layer.kernel.shape)) for layer in self.layers]
        self.hist_stride = [subset_stride(size, hist_subset) for size in sizes]
        # One sample size for all layers (the trace stores a fixed-width row), capped by the smallest.
        self.sample_size = min([check_int("sample_size", sample_size, 0), *sizes]) if level == "full" else 0
        rng = np.random.default_rng(seed)
        self.sample_index = [np.sort(rng.choice(size, self.sample_size, replace=False)) for size in sizes]
        # The binary weights (on the subset) of the previous step, for the flip ratio.
        self.previous_plus = [
            tf.Variable(
                tf.reshape(layer.kernel.value >= 0, [-1])[::k], trainable=False, name=f"{layer.name}_previous_plus"
            )
            for layer, k in zip(self.layers, self.hist_stride)
        ]
        self.compiled_runs = tf.Variable(0, dtype=tf.int64, trainable=False, name=COMPILED_RUNS)
        self.counters = {PYTHON_TRACES: 0, PYTHON_UPDATE_STEP_CALLS: 0}
        self.timeline = timeline.Timeline()
        self._compile()

    def _compile(self) -> None:
        if self.eager:
            self._step_fn = self._step
        elif self.jit_compile:  # XLA has no timestamp op: the core step, then the summaries
            self._step_fn = None
            self._core_fn = tf.function(self._core, jit_compile=True)
            self._summary_fn = tf.function(self._summaries)
        else:
            self._step_fn = tf.function(self._step)

    # ----- what runs inside the step (traced once when compiled) -----

    def _core(self, x, y):
        self.counters[PYTHON_TRACES] += 1
        with instrumented(self.optimizer.inner_optimizer, self.layers, self._on_update_step, self._on_binarize):
            self.timeline.stamp(timeline.START)
            variables = self.model.trainable_variables
            # Values before the update, for the update summaries (a read now, a copy once updated).
            tracing = self.level != "off"
            kernels_before = [tf.identity(layer.kernel.value) for layer in self.layers] if tracing else []
            params_before = [tf.identity(v.value) for v in self.params] if tracing else []
            with tf.GradientTape() as tape:
                outputs = self.model(x, training=True)
                self.timeline.stamp("forward", outputs)
                loss = self.loss_fn(y, outputs)
                self.timeline.stamp("loss", loss)
            grads = tape.gradient(loss, variables)
            self.timeline.stamp("gradients", grads)
            binary = [layer.binary_kernel_in_use for layer in self.layers]
            self.optimizer.apply(grads, variables)
            self.timeline.stamp("scale_and_clip", [v.value for v in variables])
            self.compiled_runs.assign_add(1)
        kernel_grads = [grads[_index(variables, layer.kernel)] for layer in self.layers]
        param_grads = [grads[_index(variables, v)] for v in self.params] if tracing else []
        return outputs, loss, binary, kernels_before, kernel_grads, params_before, param_grads

    def _on_update_step(self, variable) -> None:
        self.counters[PYTHON_UPDATE_STEP_CALLS] += 1
        name = getattr(variable, "path", None) or variable.name.split(":")[0]
        self.timeline.stamp(timeline.update_step_phase(type(self.optimizer.inner_optimizer).__name__, name), variable)

    def _on_binarize(self, layer, Wb) -> None:
        self.timeline.stamp(timeline.binarize_phase(layer.name), Wb)

    def _summaries(self, y, outputs, loss, binary, kernels_before, kernel_grads, params_before, param_grads):
        correct = tf.equal(tf.argmax(outputs, axis=-1), tf.argmax(y, axis=-1))
        result: dict[str, Any] = {
            LOSS: tf.cast(loss, tf.float32),
            ACCURACY: tf.reduce_mean(tf.cast(correct, tf.float32)),
            LR: tf.cast(self.optimizer.learning_rate, tf.float32),
            COMPILED_RUNS: self.compiled_runs.read_value(),
        }
        if self.level == "off":
            return result
        result["layers"] = [
            self._layer_summary(i, layer, binary[i], kernels_before[i], kernel_grads[i])
            for i, layer in enumerate(self.layers)
        ]
        result["params"] = [
            {GRAD_NORM: _norm(g), UPDATE_NORM: _norm(v.value - before)}
            for v, before, g in zip(self.params, params_before, param_grads)
        ]
        self.timeline.stamp("summaries", result)
        return result

    def _layer_summary(self, i, layer, Wb, W_before, grad) -> dict[str, Any]:
        H, k = tf.constant(layer.H, tf.float32), self.hist_stride[i]
        W_after = tf.reshape(layer.kernel.value, [-1])
        W, Wb, grad = tf.reshape(W_before, [-1]), tf.reshape(Wb, [-1]), tf.reshape(grad, [-1])
        # Exact over the whole kernel, one or two passes each (l2_loss is one fused kernel).
        n_plus = _count_plus(Wb, layer.H, int(np.prod(layer.kernel.shape)))
        summary = {
            "plus": n_plus,
            "minus": tf.size(W, out_type=tf.int64) - n_plus,
            GRAD_NORM: _norm(grad),
            UPDATE_NORM: _norm(W_after - W),
        }
        # Over the subset (`bclab.train.histograms`).
        plus_sub = Wb[::k] > 0
        flips = tf.reduce_sum(tf.cast(tf.not_equal(plus_sub, self.previous_plus[i]), tf.float32))
        self.previous_plus[i].assign(plus_sub)
        summary[FLIP_RATIO] = flips / tf.cast(tf.size(plus_sub), tf.float32)
        summary[CLIPPED_FRACTION] = tf.reduce_mean(tf.cast(tf.abs(W_after[::k]) >= H, tf.float32))
        if self.level == "full":
            summary["hist"] = self._histograms(H, W[::k], W_after[::k], grad[::k])
            summary["sample"] = self._sample(self.sample_index[i], H, W, Wb, W_after, grad)
        return summary

    def _histograms(self, H, W, W_after, grad) -> dict[str, Any]:
        return {
            "real": bucket_counts(W / H, self.bin_edges["real"]),
            "prob": bucket_counts(hard_sigmoid(W / H), self.bin_edges["prob"]),
            "grad": bucket_counts(grad, self.bin_edges["grad"]),
            "update": bucket_counts(W_after - W, self.bin_edges["update"]),
        }

    @staticmethod
    def _sample(index, H, W, Wb, W_after, grad) -> dict[str, Any]:
        W_s = tf.gather(W, index)
        return {
            "W": W_s,
            "Wb": tf.gather(Wb, index),
            "p": hard_sigmoid(W_s / H),
            "grad": tf.gather(grad, index),
            "update": tf.gather(W_after, index) - W_s,
        }

    def _step(self, x, y):
        self.timeline.begin(recording=not self.jit_compile)
        core = self._core(x, y)
        result = self._summaries(y, core[0], *core[1:])
        result[_STAMPS] = self.timeline.end()
        return result

    # ----- host side -----

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run one step on a batch; return (host summaries, device phases as events of
        `bclab.train.timeline`)."""
        call_start = time.time()
        if self._step_fn is not None:
            out = self._step_fn(x, y)
            phase_names = self.timeline.phase_names
        else:  # XLA core, then the summaries in a plain compiled function
            core = self._core_fn(x, y)
            core_end = time.time()
            out = self._summary_fn(y, core[0], *core[1:])
            out[_STAMPS] = tf.constant([call_start, core_end], tf.float64)
            phase_names = [timeline.START, timeline.XLA_STEP]
        host = tf.nest.map_structure(lambda t: t.numpy(), out)
        return host, timeline.step_events(phase_names, host.pop(_STAMPS).tolist(), call_start, self.eager)


def _index(variables, variable) -> int:
    return next(i for i, v in enumerate(variables) if v is variable)


def _norm(t):
    return tf.sqrt(2.0 * tf.nn.l2_loss(t))


def _count_plus(Wb, H: float, size: int):
    """The number of +H entries of a flat binary kernel of `size` entries, exactly."""
    if size <= 2**24:
        # Wb/H is +-1: every partial sum is an integer below 2**24, which float32 holds
        # exactly, so the float sum (vectorized; integer and count_nonzero reductions are
        # 3-15x slower on CPU) is exact.
        signs = Wb if H == 1.0 else Wb / tf.constant(H, tf.float32)
        return tf.cast((size + tf.reduce_sum(signs)) / 2, tf.int64)
    return tf.reduce_sum(tf.cast(Wb > 0, tf.int64))
