"""The step trace of a model trained by its own `fit` (or `train_on_batch`): probes on its train step.

`FitProbe(model).install()` replaces the compiled model's `train_step` with one that runs the
original inside probes and then computes the trace's summaries (`bclab.train.summaries`); Keras
builds its train function from it (`make_train_function(force=True)`), so `fit`'s own loop,
`tf.data` pipeline, loss, metrics and optimizer run as they would. `uninstall()` restores
`train_step` and drops the train function, so the next `fit` without the probe builds a plain one.

What the probes see while the step's Python body runs (once per trace when compiled, every call
with `run_eagerly=True`), all restored afterwards (`bclab.core.patching`):

- `model.compute_loss` -> the batch loss (the one minimized: regularization included, before any
  loss scaling) and `y`, `y_pred` for the batch accuracy;
- `optimizer.apply` -> the gradients, exactly as `train_step` hands them to the optimizer;
- the inner optimizer's `update_step` and bclab layers' `binary_kernel` -> the counters and the
  timeline (`bclab.train.instrument`).

The step writes every summary, packed into one float64 vector (counts are exact up to 2**53),
into a variable of the probe; `read()` makes one host copy of it after a call. With
`steps_per_execution=N`, a call runs N steps and the vector holds the last one's. XLA
(`jit_compile`) has no timestamp op: a jit-compiled step stamps nothing inside, and its timeline is
the host's view of the call.
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from bclab.core.patching import replaced_attribute
from bclab.core.protocol import kernel_layers
from bclab.trace.schema import ACCURACY, COMPILED_RUNS, LOSS, LR, PYTHON_TRACES, PYTHON_UPDATE_STEP_CALLS
from bclab.trace.store import Trace
from bclab.train import timeline
from bclab.train.backend import require_tensorflow
from bclab.train.histograms import HIST_SUBSET
from bclab.train.instrument import instrumented
from bclab.train.summaries import StepSummaries
from bclab.validation import invalid_value

__all__ = ["FitProbe", "check_compiled_model"]

_STAMPS = "stamps"
# model -> the probe installed on it: a new probe first removes one that a stopped `fit` left behind.
_INSTALLED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_compiled_model(model: Any, what: str = "model") -> keras.Model:
    """`model` is a compiled Keras model (with an optimizer), or a clear error naming `what`."""
    if not isinstance(model, keras.Model):
        raise invalid_value(what, model, "a keras.Model")
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise invalid_value(what, model, "a compiled keras.Model: call model.compile(optimizer=..., loss=...) first")
    return model


class FitProbe:
    """Instruments a compiled model's own train step; see the module docstring.

    Args:
        model: a compiled, built Keras model (`fit` builds it before its callbacks start).
        level: "off", "scalars" or "full" (`bclab.train.summaries`).
        sample_size: tracked weights per kernel layer (level "full").
        seed: chooses the tracked weights.
        hist_subset: at most this many weights per layer in the histograms' subset.
    """

    def __init__(
        self,
        model: keras.Model,
        *,
        level: str = "full",
        sample_size: int = 256,
        seed: int = 0,
        hist_subset: int = HIST_SUBSET,
    ):
        require_tensorflow("bclab's fit trace")
        self.model = check_compiled_model(model)
        if not model.built:
            raise invalid_value("model", model, "a built model: call it on a batch (or fit) first")
        replicas = model.distribute_strategy.num_replicas_in_sync
        if replicas > 1:  # its summaries would be one replica's, written from several threads
            raise invalid_value(
                "model",
                model.name,
                f"a model trained on one device (this one is under a strategy of {replicas} replicas): "
                "trace a data-parallel run with bclab.Trainer(RunConfig(devices=N))",
            )
        self.kernel_layers = kernel_layers(model)
        if not self.kernel_layers:
            raise invalid_value("model", model, "a model with at least one trainable layer with a kernel")
        kernel_ids = {id(layer.kernel) for layer, _ in self.kernel_layers}
        params = [v for v in model.trainable_variables if id(v) not in kernel_ids]
        self.summaries = StepSummaries(
            self.kernel_layers,
            params,
            level=level,
            sample_size=sample_size,
            seed=seed,
            hist_subset=hist_subset,
            xla=bool(model.jit_compile) and not model.run_eagerly,
        )
        self.optimizer = model.optimizer
        self.inner_optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        self.counters = {PYTHON_TRACES: 0, PYTHON_UPDATE_STEP_CALLS: 0}
        self.timeline = timeline.Timeline()
        self._compiled_runs = tf.Variable(0, dtype=tf.int64, trainable=False, name=COMPILED_RUNS)
        # XLA needs a variable of fixed size; elsewhere the size is known once the step is traced.
        size = self._xla_packed_size() if self.summaries.xla else 0
        self._packed = tf.Variable(
            tf.zeros([size], tf.float64),
            shape=tf.TensorShape([size if self.summaries.xla else None]),
            trainable=False,
            name="bclab_step_summaries",
        )
        self._layout: list[tuple[tuple[int, ...], tf.DType]] | None = None
        self._structure: Any = None
        self._phase_names: list[str] = []
        self._stack: contextlib.ExitStack | None = None

    def _xla_packed_size(self) -> int:
        """The packed vector's length under XLA (no timestamps): the model scalars, plus the
        summaries' outputs, sized by tracing `compute` (never run) on stand-ins of the right shapes."""
        s = self.summaries

        def stand_in():
            kernels = [tf.identity(layer.kernel.value) for layer, _ in s.layers]
            params = [tf.identity(v.value) for v in s.params]
            binary = [k if b else None for k, (_, b) in zip(kernels, s.layers)]
            return s.compute(binary, kernels, kernels, params, params) if s.tracing else {}

        outputs = tf.function(stand_in).get_concrete_function().structured_outputs
        return len((LOSS, ACCURACY, LR, COMPILED_RUNS)) + sum(t.shape.num_elements() for t in tf.nest.flatten(outputs))

    # ----- installing -----

    @property
    def installed(self) -> bool:
        return self._stack is not None

    def install(self) -> None:
        """Replace the model's `train_step` and rebuild its train function (idempotent)."""
        if self._stack is not None:
            return
        left_behind = _INSTALLED.get(self.model)
        if left_behind is not None:
            left_behind.uninstall()
        original = self.model.train_step
        stack = contextlib.ExitStack()
        stack.enter_context(replaced_attribute(self.model, "train_step", lambda data: self._train_step(original, data)))
        self._stack = stack
        _INSTALLED[self.model] = self
        self.model.make_train_function(force=True)

    def uninstall(self) -> None:
        """Restore `train_step`; the next `fit` builds a plain train function."""
        if self._stack is None:
            return
        self._stack.close()
        self._stack = None
        _INSTALLED.pop(self.model, None)
        self.model.train_function = None

    def new_trace(self, meta: dict[str, Any] | None = None) -> Trace:
        """An empty trace for this model's layers and parameters."""
        s = self.summaries
        meta = {
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "mode": self.mode,
            "model": self.model.name,
            "optimizer": type(self.optimizer).__name__,
            "inner_optimizer": type(self.inner_optimizer).__name__,
            "hist_stride": {layer.name: k for (layer, _), k in zip(s.layers, s.hist_stride)},
            **(meta or {}),
        }
        return Trace(s.layer_infos(), s.bin_edges, params=s.param_names(), sample_size=s.sample_size, meta=meta)

    @property
    def mode(self) -> str:
        if self.model.run_eagerly:
            return "eager"
        return "compiled (XLA)" if self.model.jit_compile else "compiled"

    # ----- inside the step (traced once when compiled) -----

    def _train_step(self, original, data):
        self.counters[PYTHON_TRACES] += 1
        self.timeline.begin(recording=not (self.model.jit_compile and not self.model.run_eagerly))
        self.timeline.stamp(timeline.START)
        seen: dict[str, Any] = {}
        lr = tf.cast(self.optimizer.learning_rate, tf.float32)  # before the update (schedules move)
        kernels_before, params_before = self.summaries.before()
        bclab_layers = [layer for layer, binary in self.kernel_layers if binary and hasattr(layer, "binary_kernel")]
        with contextlib.ExitStack() as stack:
            stack.enter_context(
                instrumented(self.inner_optimizer, bclab_layers, self._on_update_step, self._on_binarize)
            )
            stack.enter_context(replaced_attribute(self.model, "compute_loss", self._loss_probe(seen)))
            stack.enter_context(replaced_attribute(self.optimizer, "apply", self._apply_probe(seen)))
            logs = original(data)
        self.timeline.stamp("metrics", logs)
        self._compiled_runs.assign_add(1)
        result = {
            LOSS: tf.cast(seen.get(LOSS, np.nan), tf.float32),
            ACCURACY: _batch_accuracy(seen.get("y"), seen.get("y_pred")),
            LR: lr,
            COMPILED_RUNS: self._compiled_runs.read_value(),
        }
        if self.summaries.tracing:
            if "grads" not in seen:
                raise RuntimeError("bclab's fit trace: the train step never called the optimizer's apply_gradients")
            grads = seen["grads"]
            kernel_grads = [grads(layer.kernel) for layer, _ in self.kernel_layers]
            param_grads = [grads(v) for v in self.summaries.params]
            binary = [layer.binary_kernel_in_use if b else None for layer, b in self.kernel_layers]
            result.update(self.summaries.compute(binary, kernels_before, kernel_grads, params_before, param_grads))
            self.timeline.stamp("summaries", result)
        result[_STAMPS] = self.timeline.end()
        self._phase_names = self.timeline.phase_names
        self._packed.assign(self._pack(result))
        return logs

    def _loss_probe(self, seen):
        compute_loss = self.model.compute_loss
        signature = inspect.signature(compute_loss)

        def probed_compute_loss(*args, **kwargs):
            loss = compute_loss(*args, **kwargs)
            arguments = signature.bind_partial(*args, **kwargs).arguments
            seen.update({LOSS: loss, "y": arguments.get("y"), "y_pred": arguments.get("y_pred")})
            self.timeline.stamp("forward and loss", loss)
            return loss

        return probed_compute_loss

    def _apply_probe(self, seen):
        apply = self.optimizer.apply

        def probed_apply(grads, trainable_variables=None):
            grads = list(grads)
            variables = list(trainable_variables) if trainable_variables is not None else []
            by_id = {id(v): g for v, g in zip(variables, grads)}

            def grad_of(variable):
                g = by_id.get(id(variable))
                return tf.zeros_like(variable.value) if g is None else g

            seen["grads"] = grad_of
            self.timeline.stamp("gradients", [g for g in grads if g is not None])
            result = apply(grads, trainable_variables)
            self.timeline.stamp("apply_gradients", [v.value for v in variables])
            return result

        return probed_apply

    def _on_update_step(self, variable) -> None:
        self.counters[PYTHON_UPDATE_STEP_CALLS] += 1
        name = getattr(variable, "path", None) or variable.name.split(":")[0]
        self.timeline.stamp(timeline.update_step_phase(type(self.inner_optimizer).__name__, name), variable)

    def _on_binarize(self, layer, Wb) -> None:
        self.timeline.stamp(timeline.binarize_phase(layer.name), Wb)

    def _pack(self, result):
        flat = tf.nest.flatten(result)
        self._structure = result
        unknown = [t for t in flat if not t.shape.is_fully_defined()]
        if unknown:  # a programming error in the summaries, not the user's
            raise RuntimeError(f"bclab's fit trace: summaries of unknown shape: {unknown}")
        self._layout = [(tuple(t.shape), t.dtype) for t in flat]
        return tf.concat([tf.reshape(tf.cast(t, tf.float64), [-1]) for t in flat], axis=0)

    # ----- host side -----

    def read(self, call_start: float, call_end: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The host copy of the last step's summaries, and its events (times from `call_start`,
        the `time.time()` when the call began; `call_end` when its results reached the host)."""
        if self._layout is None:
            raise RuntimeError("bclab's fit trace: no step has run through the probe yet")
        vector = self._packed.numpy()
        parts, at = [], 0
        for shape, dtype in self._layout:
            size = int(np.prod(shape))
            part = vector[at : at + size].reshape(shape)
            parts.append(part.astype(dtype.as_numpy_dtype) if dtype.is_integer or dtype == tf.bool else part)
            at += size
        host = tf.nest.pack_sequence_as(self._structure, parts)
        stamps = host.pop(_STAMPS).tolist()
        eager = bool(self.model.run_eagerly)
        events = timeline.step_events(self._phase_names, stamps, call_start, eager)
        if not stamps:  # XLA: the call as the host saw it
            events = [timeline.event(timeline.XLA_STEP, call_start, call_end, "one jit-compiled train step")]
        else:
            last = events[-1]["start"] + events[-1]["duration"]
            events.append(timeline.event("logs to callbacks", last, call_end, "fit hands the step's logs on"))
        for e in events:
            e["start"] -= call_start
        return host, events

    def record(self, host: dict[str, Any], events: list, step: int, epoch: int) -> dict[str, Any]:
        """A trace record (`Trace.append`) from `read()`'s output."""
        record: dict[str, Any] = {
            "step": step,
            "epoch": epoch,
            "scalars": {name: float(host[name]) for name in (LOSS, ACCURACY, LR)},
            "events": events,
            "counters": {**self.counters, COMPILED_RUNS: int(host[COMPILED_RUNS])},
        }
        if "layers" in host:
            record.update(self.summaries.records(host))
        return record


def _batch_accuracy(y, y_pred):
    """The batch's accuracy by argmax for a multi-unit output (one-hot or +-1 targets, or integer
    labels); NaN when it cannot tell (one output unit, unknown shapes, no targets seen)."""
    nan = tf.constant(np.nan, tf.float32)
    if y is None or y_pred is None or not tf.is_tensor(y_pred) and not isinstance(y_pred, np.ndarray):
        return nan
    y, y_pred = tf.convert_to_tensor(y), tf.convert_to_tensor(y_pred)
    units = y_pred.shape[-1] if y_pred.shape.rank else None
    if units is None or units < 2:
        return nan
    predicted = tf.argmax(y_pred, axis=-1)
    if y.shape.rank == y_pred.shape.rank and y.shape[-1] == units:
        target = tf.argmax(y, axis=-1)
    elif y.shape.rank == y_pred.shape.rank - 1 or (y.shape.rank == y_pred.shape.rank and y.shape[-1] == 1):
        target = tf.cast(tf.reshape(y, tf.shape(predicted)), tf.int64)
    else:
        return nan
    return tf.reduce_mean(tf.cast(tf.equal(predicted, target), tf.float32))
