"""The instrumented training step: one BinaryConnect update plus on-device summaries.

This is the one module that talks to TensorFlow directly (`tf.function`,
`tf.timestamp`, `Bucketize`). One call runs, in order: forward pass (each binary
layer binarizes its kernel here), squared-hinge loss, `tape.gradient`, then
`BinaryConnectOptimizer.apply` -> inner `apply` -> `update_step` per variable ->
step scale and clip of binary kernels. It returns the loss, batch accuracy and, per
binary layer, summaries computed on the device, so only a few kilobytes reach the host.

Per binary layer (`level="scalars"` and `"full"`), exact over the whole kernel: the
+H/-H counts of the binary kernel used in this step, the gradient norm, and the norm of
the update actually applied (`W_after - W_before`: after the step scale and the clip).
Over a fixed subset, every k-th weight of the flattened kernel with k chosen so that at
most `hist_subset` weights are looked at (k = 1, all weights, for smaller layers): the
flip ratio (fraction of binary weights that differ from the previous step's; step 0
compares with `sign(W_init)`) and the clipped fraction (weights at the bound
`|W| = H` after the update). Whole-kernel passes are what tracing costs on a CPU, so
only the quantities that must be exact get them. With `level="full"` also histograms
on fixed bins (`default_bin_edges`), exact counts over the same subset, of the real
weights W used in the forward pass (in units of H), `p = hard_sigmoid(W/H)`, the
gradient and the update, and W, Wb, p, gradient and update of `sample_size` tracked
weights chosen by seed. A value outside the edges counts in the outermost bin.
Non-binary parameters get gradient and update norms.

Counters answer "when does the optimizer run?": `python_traces` counts executions of
the Python body of the step and `python_update_step_calls` those of the inner
optimizer's `update_step` (Keras 3's successor of Keras 2's `get_updates`): once per
trace when compiled, every call in eager mode. `compiled_runs` is a variable the step
increments, so it counts executions. Device timestamps (`tf.timestamp`) taken after each
phase's outputs give the timeline; TensorFlow may overlap independent ops, so each phase
is drawn from the previous phase's end to its own. With `jit_compile` (XLA, which has no
timestamp op) the core step is compiled with XLA and the summaries run in a second
function; the timeline then holds the two calls only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bclab.core.binarize import hard_sigmoid
from bclab.core.layers import binary_layers
from bclab.core.optimizers import BinaryConnectOptimizer
from bclab.validation import invalid_value

LEVELS = ("off", "scalars", "full")
HIST_SUBSET = 16_384


SYMLOG_DECADES = (-10.0, 1.0)  # magnitudes of the gradient and update bins: 1e-10 .. 10


def default_bin_edges(nbins: int = 64) -> dict[str, np.ndarray]:
    """Fixed histogram edges: W in units of H on [-1, 1]; p on [0, 1]; gradient and update
    on symmetric log bins (`nbins` even): 0, then +-m_j with m_j = 10 ** (-10 + 11 j / (nbins/2 - 1))."""
    if nbins < 4 or nbins % 2:
        raise invalid_value("nbins", nbins, "an even number >= 4")
    magnitudes = np.logspace(*SYMLOG_DECADES, nbins // 2)
    symlog = np.concatenate([-magnitudes[::-1], [0.0], magnitudes])
    return {
        "real": np.linspace(-1.0, 1.0, nbins + 1),
        "prob": np.linspace(0.0, 1.0, nbins + 1),
        "grad": symlog,
        "update": symlog.copy(),
    }


def bin_index(values, edges: np.ndarray):
    """The bin of each value, computed arithmetically (no search: a search op costs about
    ten times more on a CPU). Values beyond the outer edges go to the outer bins; NaN to
    the bin of 0.

    Uniform edges: `floor((v - e_0) * n / (e_n - e_0))` in float32. Symmetric-log edges
    (`default_bin_edges`): by the sign of v and `floor(t) + 1` with
    `t = (log10|v| + 10) * (n/2 - 1) / 11`, so `|v|` in `[m_(j-1), m_j)` is magnitude
    bin j. These are the edges' bins except, at most, for values within a rounding of an edge.
    Any other edges: an exact search (`Bucketize`).
    """
    nbins = len(edges) - 1
    values = tf.where(tf.math.is_nan(values), tf.zeros_like(values), values)
    widths = np.diff(edges)
    if np.allclose(widths, widths[0], rtol=1e-9, atol=0):
        scale = np.float32(nbins / (edges[-1] - edges[0]))
        index = tf.floor((values - np.float32(edges[0])) * scale)
        return tf.cast(tf.clip_by_value(index, 0.0, nbins - 1.0), tf.int32)
    if nbins % 2 == 0 and np.array_equal(edges, default_bin_edges(nbins)["grad"]):
        half = nbins // 2
        low, high = SYMLOG_DECADES
        per_decade = np.float32((half - 1) / (high - low))
        log10 = tf.math.log(tf.maximum(tf.abs(values), 1e-37)) * np.float32(1 / np.log(10))
        j = tf.clip_by_value(tf.floor((log10 - np.float32(low)) * per_decade) + 1.0, 0.0, half - 1.0)
        j = tf.cast(j, tf.int32)
        return tf.where(values >= 0, half + j, half - 1 - j)
    return tf.raw_ops.Bucketize(input=values, boundaries=[float(e) for e in edges[1:-1]])


def bucket_counts(values, edges: np.ndarray):
    """Counts of `values` per bin of `edges` (see `bin_index`), as int64."""
    nbins = len(edges) - 1
    return tf.math.bincount(bin_index(values, edges), minlength=nbins, maxlength=nbins, dtype=tf.int64)


class InstrumentedStep:
    """A compiled (or eager) training step for `model` that reports what it did.

    Args:
        model: a built Keras model whose binary layers are bclab layers.
        optimizer: a built `BinaryConnectOptimizer`.
        loss_fn: `loss_fn(y_true, y_pred)` -> scalar.
        level: "off" (loss and accuracy only), "scalars" or "full".
        sample_size: tracked weights per binary layer (level "full").
        seed: chooses the tracked weights and the histogram subsets.
        eager: run the Python body on every call (the "explain" mode).
        jit_compile: compile the core step with XLA.
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
        if level not in LEVELS:
            raise invalid_value("level", level, f"one of {list(LEVELS)}")
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.level, self.eager, self.jit_compile = level, eager, jit_compile
        self.layers = binary_layers(model)
        kernel_ids = {id(layer.kernel) for layer in self.layers}
        self.params = [v for v in model.trainable_variables if id(v) not in kernel_ids]
        self.bin_edges = bin_edges or default_bin_edges()
        rng = np.random.default_rng(seed)
        sizes = [int(np.prod(layer.kernel.shape)) for layer in self.layers]
        # One sample size for all layers (the trace stores a fixed-width row), capped by the smallest.
        self.sample_size = min([sample_size, *sizes]) if level == "full" else 0
        self.sample_index = [np.sort(rng.choice(size, self.sample_size, replace=False)) for size in sizes]
        # Histograms see every k-th weight of the flattened kernel: a strided slice costs far
        # less than a gather of random indices (measured: 0.5 vs 5 ms for 16,384 / 65,536 of 4M weights on CPU).
        self.hist_stride = [max(1, -(-size // hist_subset)) for size in sizes]
        # The binary weights (on the subset) of the previous step, for the flip ratio.
        self.previous_plus = [
            tf.Variable(
                tf.reshape(layer.kernel.value >= 0, [-1])[::k], trainable=False, name=f"{layer.name}_previous_plus"
            )
            for layer, k in zip(self.layers, self.hist_stride)
        ]
        self.compiled_runs = tf.Variable(0, dtype=tf.int64, trainable=False, name="compiled_runs")
        self.counters = {"python_traces": 0, "python_update_step_calls": 0}
        self.phase_names: list[str] = []
        self._stamps: list | None = None  # (phase, timestamp tensor) while a step is traced
        self._wrap_update_step()
        for layer in self.layers:
            self._wrap_binarization(layer)
        if eager:
            self._core_fn, self._summary_fn, self._step_fn = self._core, self._summaries, self._step
        elif jit_compile:
            self._core_fn = tf.function(self._core, jit_compile=True)
            self._summary_fn = tf.function(self._summaries)
            self._step_fn = None
        else:
            self._step_fn = tf.function(self._step)

    # ----- what runs inside the step (traced once when compiled) -----

    def _wrap_update_step(self) -> None:
        inner = self.optimizer.inner_optimizer
        original = inner.update_step
        label = type(inner).__name__

        def counted_update_step(gradient, variable, learning_rate):
            # Python: runs when traced (or every call in eager mode), not every step.
            self.counters["python_update_step_calls"] += 1
            original(gradient, variable, learning_rate)
            name = getattr(variable, "path", None) or variable.name.split(":")[0]
            self._stamp(f"{label}.update_step {name}", variable)

        inner.update_step = counted_update_step

    def _wrap_binarization(self, layer) -> None:
        original = layer.binary_kernel

        def stamped_binary_kernel(training: bool = False):
            Wb = original(training)
            if training:
                self._stamp(f"binarize {layer.name}", Wb)
            return Wb

        layer.binary_kernel = stamped_binary_kernel

    def _stamp(self, phase: str, after=None) -> None:
        if self._stamps is None:  # XLA: no timestamp op
            return
        deps = [tf.identity(t) for t in tf.nest.flatten(after)] if after is not None else []
        with tf.control_dependencies(deps):
            self._stamps.append((phase, tf.timestamp()))

    def _core(self, x, y):
        self.counters["python_traces"] += 1
        self._stamp("start")
        variables = self.model.trainable_variables
        # Values before the update, for the update summaries (a read now, a copy once updated).
        tracing = self.level != "off"
        kernels_before = [tf.identity(layer.kernel.value) for layer in self.layers] if tracing else []
        params_before = [tf.identity(v.value) for v in self.params] if tracing else []
        with tf.GradientTape() as tape:
            outputs = self.model(x, training=True)
            self._stamp("forward", outputs)
            loss = self.loss_fn(y, outputs)
            self._stamp("loss", loss)
        grads = tape.gradient(loss, variables)
        self._stamp("gradients", grads)
        binary = [layer._last_binary_kernel for layer in self.layers]
        self.optimizer.apply(grads, variables)
        self._stamp("scale_and_clip", [v.value for v in variables])
        self.compiled_runs.assign_add(1)
        kernel_grads = [grads[self._index(variables, layer.kernel)] for layer in self.layers]
        param_grads = [grads[self._index(variables, v)] for v in self.params] if tracing else []
        return outputs, loss, binary, kernels_before, kernel_grads, params_before, param_grads

    @staticmethod
    def _index(variables, variable) -> int:
        return next(i for i, v in enumerate(variables) if v is variable)

    def _summaries(self, y, outputs, loss, binary, kernels_before, kernel_grads, params_before, param_grads):
        correct = tf.equal(tf.argmax(outputs, axis=-1), tf.argmax(y, axis=-1))
        result: dict[str, Any] = {
            "loss": tf.cast(loss, tf.float32),
            "accuracy": tf.reduce_mean(tf.cast(correct, tf.float32)),
            "lr": tf.cast(self.optimizer.learning_rate, tf.float32),
            "compiled_runs": self.compiled_runs.read_value(),
        }
        if self.level == "off":
            return result
        result["layers"] = [
            self._layer_summary(i, layer, binary[i], kernels_before[i], kernel_grads[i])
            for i, layer in enumerate(self.layers)
        ]
        result["params"] = [
            {
                "grad_norm": tf.sqrt(2.0 * tf.nn.l2_loss(g)),
                "update_norm": tf.sqrt(2.0 * tf.nn.l2_loss(v.value - before)),
            }
            for v, before, g in zip(self.params, params_before, param_grads)
        ]
        self._stamp("summaries", result)
        return result

    def _layer_summary(self, i, layer, Wb, W_before, grad) -> dict[str, Any]:
        H = tf.constant(layer.H, tf.float32)
        k = self.hist_stride[i]
        W_after = tf.reshape(layer.kernel.value, [-1])
        W, Wb, grad = tf.reshape(W_before, [-1]), tf.reshape(Wb, [-1]), tf.reshape(grad, [-1])
        # Exact over the whole kernel, one or two passes each (l2_loss is one fused kernel).
        size = int(np.prod(layer.kernel.shape))
        if size <= 2**24:
            # Wb/H is +-1: every partial sum is an integer below 2**24, which float32 holds
            # exactly, so the float sum (vectorized; integer and count_nonzero reductions are
            # 3-15x slower on CPU) is exact.
            signs = Wb if layer.H == 1.0 else Wb / H
            n_plus = tf.cast((size + tf.reduce_sum(signs)) / 2, tf.int64)
        else:
            n_plus = tf.reduce_sum(tf.cast(Wb > 0, tf.int64))
        summary = {
            "plus": n_plus,
            "minus": tf.size(W, out_type=tf.int64) - n_plus,
            "grad_norm": tf.sqrt(2.0 * tf.nn.l2_loss(grad)),
            "update_norm": tf.sqrt(2.0 * tf.nn.l2_loss(W_after - W)),
        }
        # Over the subset (every k-th weight; all of them for layers up to hist_subset).
        plus_sub = Wb[::k] > 0
        flips = tf.reduce_sum(tf.cast(tf.not_equal(plus_sub, self.previous_plus[i]), tf.float32))
        self.previous_plus[i].assign(plus_sub)
        W_sub, W_after_sub = W[::k], W_after[::k]
        summary["flip_ratio"] = flips / tf.cast(tf.size(plus_sub), tf.float32)
        summary["clipped_fraction"] = tf.reduce_mean(tf.cast(tf.abs(W_after_sub) >= H, tf.float32))
        if self.level == "full":
            summary["hist"] = {
                "real": bucket_counts(W_sub / H, self.bin_edges["real"]),
                "prob": bucket_counts(hard_sigmoid(W_sub / H), self.bin_edges["prob"]),
                "grad": bucket_counts(grad[::k], self.bin_edges["grad"]),
                "update": bucket_counts(W_after_sub - W_sub, self.bin_edges["update"]),
            }
            s = self.sample_index[i]
            W_s = tf.gather(W, s)
            summary["sample"] = {
                "W": W_s,
                "Wb": tf.gather(Wb, s),
                "p": hard_sigmoid(W_s / H),
                "grad": tf.gather(grad, s),
                "update": tf.gather(W_after, s) - W_s,
            }
        return summary

    def _step(self, x, y):
        self._stamps = [] if not self.jit_compile else None
        core = self._core(x, y)
        result = self._summaries(y, core[0], *core[1:])
        result["stamps"] = tf.stack([t for _, t in self._stamps]) if self._stamps else tf.zeros([0], tf.float64)
        self.phase_names = [name for name, _ in self._stamps or []]
        return result

    # ----- host side -----

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run one step on a batch; return (host summaries, device phases as events).

        Events are `{"phase", "start", "duration", "detail"}` with `start` in
        seconds since the epoch (`time.time()`), so the caller can merge host phases.
        """
        call_start = time.time()
        if self._step_fn is not None:
            out = self._step_fn(x, y)
        else:  # XLA core, then the summaries in a plain compiled function
            core = self._core_fn(x, y)
            core_end = time.time()
            out = self._summary_fn(y, core[0], *core[1:])
            out["stamps"] = tf.constant([call_start, core_end], tf.float64)
            self.phase_names = ["start", "XLA step (forward, loss, gradients, apply_gradients)"]
        host = tf.nest.map_structure(lambda t: t.numpy(), out)
        return host, self._events(host.pop("stamps"), call_start)

    def _events(self, stamps: np.ndarray, call_start: float) -> list[dict[str, Any]]:
        events = []
        previous = call_start
        mode = "eager: Python runs every call" if self.eager else "compiled: Python ran only while tracing"
        for name, t in zip(self.phase_names, stamps.tolist()):
            if name == "start":
                events.append(
                    {"phase": "enter step function", "start": previous, "duration": t - previous, "detail": mode}
                )
            else:
                # Independent ops may overlap in a graph: a phase never gets a negative length.
                events.append(
                    {"phase": name, "start": previous, "duration": max(0.0, t - previous), "detail": _detail(name)}
                )
            previous = max(previous, t)
        return events


_DETAILS = {
    "forward": "model(x, training=True): the rest of the forward pass, matmuls/convs with Wb, BatchNorm, ReLU",
    "loss": "squared hinge on +-1 targets",
    "gradients": "tape.gradient(loss, W): dC/dWb handed to W (straight-through)",
    "scale_and_clip": "end of apply_gradients: other constraints, then BinaryConnectOptimizer's "
    "W <- clip(W + W_LR_scale * (W_new - W), -H, H) for binary kernels",
    "summaries": "histograms, counts and norms computed on the device",
}


def _detail(phase: str) -> str:
    if phase.startswith("binarize "):
        return "Wb = binarization(W, H, ...) for this layer's kernel, inside its forward pass"
    if ".update_step " in phase:
        return (
            "apply_gradients -> apply -> update_step for this variable: the Keras 3 successor of "
            "Keras 2's get_updates, whose ops also ran every step"
        )
    return _DETAILS.get(phase, "")
