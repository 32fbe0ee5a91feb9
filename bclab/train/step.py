"""The instrumented training step: one BinaryConnect update plus on-device summaries.

One call runs, in order: forward pass (each binary layer binarizes its kernel here),
squared-hinge loss, `tape.gradient`, then `BinaryConnectOptimizer.apply` -> inner `apply` ->
`update_step` per variable -> step scale and clip of binary kernels. It returns the loss, batch
accuracy and the summaries of every kernel layer and parameter (`bclab.train.summaries`: counts,
norms, flip ratio, histograms, tracked weights), computed on the device, so only a few kilobytes
reach the host.

Counters answer "when does the optimizer run?": `python_traces` counts executions of the Python
body of the step and `python_update_step_calls` those of the inner optimizer's `update_step`
(Keras 3's successor of Keras 2's `get_updates`, counted by `bclab.train.instrument`'s probe):
once per trace when compiled, every call in eager mode. `compiled_runs` is a variable the step
increments, so it counts executions. The phases' timestamps: `bclab.train.timeline`. With
`jit_compile` the core step is compiled with XLA and the summaries run in a second function.
The same summaries and counters for a model trained with its own `fit`: `bclab.train.probe`.

Data-parallel (`strategy` with N > 1 replicas, `bclab.train.devices`): each replica takes an equal
share of the batch and computes its forward pass and the gradients of its share's mean loss
divided by N; their sum (the whole batch's gradients, as Keras's own `train_step` computes them)
is applied once, in cross-replica context, to every replica's copy of the weights. The optimizer,
its learning-rate scaling and the probes thus run in one thread, once per step, as on one device
(TensorFlow runs each replica's Python in a thread of its own, so patches made inside replicas
would interleave). Loss and accuracy are the replicas' means. Per variable, `update_step`'s Python
runs once per replica copy (`tf.distribute` updates each copy), so that counter grows N times as
fast; the replicas' timestamps would interleave, so a distributed step's timeline is the host's
view of the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bclab.config import TRACE_LEVELS
from bclab.core.optimizers import BinaryConnectOptimizer
from bclab.core.protocol import kernel_layers
from bclab.trace.schema import (
    ACCURACY,
    COMPILED_RUNS,
    LOSS,
    LR,
    PYTHON_TRACES,
    PYTHON_UPDATE_STEP_CALLS,
)
from bclab.train import timeline
from bclab.train.histograms import HIST_SUBSET
from bclab.train.instrument import instrumented
from bclab.train.summaries import StepSummaries
from bclab.validation import check_choice, check_flag

_STAMPS = "stamps"  # the step's timestamps, in its output until the host turns them into events


class InstrumentedStep:
    """A compiled (or eager) training step for `model` that reports what it did.

    Args:
        model: a built Keras model; its kernel layers (`bclab.core.protocol`) are traced.
        optimizer: a built `BinaryConnectOptimizer`.
        loss_fn: `loss_fn(y_true, y_pred)` -> scalar.
        level: "off" (loss and accuracy only), "scalars" or "full".
        sample_size: tracked weights per kernel layer (level "full").
        seed: chooses the tracked weights.
        eager: run the Python body on every call (no `tf.function`), so every call is recorded
            as it happens; slow, for a handful of steps.
        jit_compile: compile the core step with XLA (ignored when `eager`).
        strategy: the `tf.distribute.Strategy` whose scope built the model (default: the current one).
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
        strategy: tf.distribute.Strategy | None = None,
        bin_edges: dict[str, np.ndarray] | None = None,
        hist_subset: int = HIST_SUBSET,
    ):
        self.level = check_choice("level", level, TRACE_LEVELS)
        self.eager, self.jit_compile = check_flag("eager", eager), check_flag("jit_compile", jit_compile)
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.kernel_layers = kernel_layers(model)
        self.layers = [layer for layer, _ in self.kernel_layers]
        self.binary_layers = [layer for layer, binary in self.kernel_layers if binary]
        kernel_ids = {id(layer.kernel) for layer in self.layers}
        self.params = [v for v in model.trainable_variables if id(v) not in kernel_ids]
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = int(self.strategy.num_replicas_in_sync)
        with self.strategy.scope():  # the step's own variables, mirrored like the model's
            self.summaries = StepSummaries(
                self.kernel_layers,
                self.params,
                level=level,
                sample_size=sample_size,
                seed=seed,
                bin_edges=bin_edges,
                hist_subset=hist_subset,
            )
            self.compiled_runs = tf.Variable(0, dtype=tf.int64, trainable=False, name=COMPILED_RUNS)
        self.bin_edges, self.hist_stride = self.summaries.bin_edges, self.summaries.hist_stride
        self.sample_size, self.sample_index = self.summaries.sample_size, self.summaries.sample_index
        self.counters = {PYTHON_TRACES: 0, PYTHON_UPDATE_STEP_CALLS: 0}
        self.timeline = timeline.Timeline()
        self._compile()

    def _compile(self) -> None:
        if self.replicas > 1:
            self._step_fn = self._replicated_step if self.eager else tf.function(self._replicated_step)
        elif self.eager:
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
        bclab_layers = [layer for layer in self.binary_layers if hasattr(layer, "binary_kernel")]
        with instrumented(self.optimizer.inner_optimizer, bclab_layers, self._on_update_step, self._on_binarize):
            self.timeline.stamp(timeline.START)
            variables = self.model.trainable_variables
            # Values before the update, for the update summaries (a read now, a copy once updated).
            tracing = self.summaries.tracing
            kernels_before, params_before = self.summaries.before()
            with tf.GradientTape() as tape:
                outputs = self.model(x, training=True)
                self.timeline.stamp("forward", outputs)
                loss = self.loss_fn(y, outputs)
                self.timeline.stamp("loss", loss)
            grads = tape.gradient(loss, variables)
            self.timeline.stamp("gradients", grads)
            binary = [layer.binary_kernel_in_use if is_binary else None for layer, is_binary in self.kernel_layers]
            self.optimizer.apply(grads, variables)
            self.timeline.stamp("scale_and_clip", [v.value for v in variables])
            self.compiled_runs.assign_add(1)
        kernel_grads = [grads[_index(variables, layer.kernel)] for layer in self.layers] if tracing else []
        param_grads = [grads[_index(variables, v)] for v in self.params] if tracing else []
        return outputs, loss, binary, kernels_before, kernel_grads, params_before, param_grads

    def _on_update_step(self, variable) -> None:
        self.counters[PYTHON_UPDATE_STEP_CALLS] += 1
        name = getattr(variable, "path", None) or variable.name.split(":")[0]
        self.timeline.stamp(timeline.update_step_phase(type(self.optimizer.inner_optimizer).__name__, name), variable)

    def _on_binarize(self, layer, Wb) -> None:
        self.timeline.stamp(timeline.binarize_phase(layer.name), Wb)

    def _summaries(self, y, outputs, loss, binary, kernels_before, kernel_grads, params_before, param_grads):
        accuracy = _accuracy(y, outputs)
        return self._result(loss, accuracy, binary, kernels_before, kernel_grads, params_before, param_grads)

    def _result(self, loss, accuracy, binary, kernels_before, kernel_grads, params_before, param_grads):
        result: dict[str, Any] = {
            LOSS: tf.cast(loss, tf.float32),
            ACCURACY: accuracy,
            LR: tf.cast(self.optimizer.learning_rate, tf.float32),
            COMPILED_RUNS: self.compiled_runs.read_value(),
        }
        if self.level == "off":
            return result
        result.update(self.summaries.compute(binary, kernels_before, kernel_grads, params_before, param_grads))
        self.timeline.stamp("summaries", result)
        return result

    def _replicated_step(self, x, y):
        """One data-parallel step (module docstring); `x`, `y`: per-replica shares."""
        self.counters[PYTHON_TRACES] += 1
        variables = self.model.trainable_variables
        bclab_layers = [layer for layer in self.binary_layers if hasattr(layer, "binary_kernel")]
        with instrumented(self.optimizer.inner_optimizer, bclab_layers, self._on_update_step, self._on_binarize):
            kernels_before, params_before = self.summaries.before()
            per_replica = self.strategy.run(self._replica_gradients, args=(x, y))
            loss, accuracy, grads, binary = per_replica
            mean, total = tf.distribute.ReduceOp.MEAN, tf.distribute.ReduceOp.SUM
            grads = [self.strategy.reduce(total, g, axis=None) for g in grads]
            self.optimizer.apply(grads, variables)
            self.compiled_runs.assign_add(1)
        loss, accuracy = (self.strategy.reduce(mean, t, axis=None) for t in (loss, accuracy))
        # The weights are the same on every replica, and so is a deterministic Wb; a stochastic Wb
        # too (one sampler state, mirrored): replica 0's stands for all.
        binary = [self.strategy.experimental_local_results(b)[0] if b is not None else None for b in binary]
        tracing = self.summaries.tracing
        kernel_grads = [grads[_index(variables, layer.kernel)] for layer in self.layers] if tracing else []
        param_grads = [grads[_index(variables, v)] for v in self.params] if tracing else []
        result = self._result(loss, accuracy, binary, kernels_before, kernel_grads, params_before, param_grads)
        result[_STAMPS] = tf.zeros([0], tf.float64)
        return result

    def _replica_gradients(self, x, y):
        """One replica's share: forward pass, loss, and the gradients of loss / N."""
        with tf.GradientTape() as tape:
            outputs = self.model(x, training=True)
            loss = self.loss_fn(y, outputs)
            share = loss / self.replicas
        grads = tape.gradient(share, self.model.trainable_variables)
        binary = [layer.binary_kernel_in_use if is_binary else None for layer, is_binary in self.kernel_layers]
        return tf.cast(loss, tf.float32), _accuracy(y, outputs), grads, binary

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
        if self.replicas > 1:
            out = self._step_fn(*self._shards(x, y))
            out[_STAMPS] = tf.constant([call_start, time.time()], tf.float64)
            phase_names = [timeline.START, timeline.replicated_phase(self.replicas)]
        elif self._step_fn is not None:
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

    def _shards(self, x: np.ndarray, y: np.ndarray):
        """`x` and `y` split into one equal share per replica, in replica order."""
        n = len(x) // self.replicas

        def share(array):
            return self.strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(
                    array[ctx.replica_id_in_sync_group * n : (ctx.replica_id_in_sync_group + 1) * n]
                )
            )

        return share(x), share(y)


def _accuracy(y, outputs):
    correct = tf.equal(tf.argmax(outputs, axis=-1), tf.argmax(y, axis=-1))
    return tf.reduce_mean(tf.cast(correct, tf.float32))


def _index(variables, variable) -> int:
    return next(i for i, v in enumerate(variables) if v is variable)
