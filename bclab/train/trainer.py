"""Trainer: runs a RunConfig step by step, the way the reference scripts train.

Per epoch, as `mnist.py`/`cifar10.py`: train on full batches only (the order is
shuffled before every epoch but the first, as the reference shuffles at each epoch's
end), then measure the validation error, and the test error; the reported result is
the test error at the epoch with the best validation error, ties going to the later
epoch (`best_epoch`). Errors are averaged over full batches, as the reference's `val_epoch`. The
learning rate decays once per epoch: `lr_start * (lr_end / lr_start) ** (epoch / epochs)`.

Non-finite values (`config.on_nonfinite`): after every step the loss (always on the host) and,
when the trace records them, every layer's and parameter's `grad_norm` and `update_norm` are
checked. With "stop" the first NaN/Inf ends the run: the step's record is appended to the trace,
then `NonFiniteError` names the step, the quantity and the layer or variable; every later
`step()` raises it again. With "continue" a warning is logged once and training goes on.

The Trainer is driven one batch at a time (`step()`), so a CLI loop, a background
thread of the lab, or a test can run, pause and resume it; every step is atomic, so the
model is always consistent (weights updated and clipped) between steps.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import keras
import numpy as np

from bclab import data as bcdata
from bclab.config import RunConfig
from bclab.core.optimizers import BinaryConnectOptimizer
from bclab.trace.schema import ACCURACY, COMPILED_RUNS, EPOCH, LOSS, MODEL_SCALARS
from bclab.trace.store import Trace
from bclab.train.backend import require_tensorflow
from bclab.train.devices import is_multi_worker, strategy_for
from bclab.train.models import build_model, make_optimizer, squared_hinge
from bclab.train.nonfinite import NonFiniteError, first_nonfinite, first_nonfinite_variable
from bclab.train.plan import prepare_data
from bclab.train.step import InstrumentedStep
from bclab.train.timeline import event
from bclab.validation import check_flag

logger = logging.getLogger(__name__)
__all__ = ["EpochResult", "NonFiniteError", "Trainer", "best_epoch", "device_name"]


@dataclass(frozen=True)
class EpochResult:
    """Metrics of one finished epoch (errors in percent)."""

    epoch: int
    lr: float
    train_loss: float
    train_error: float
    val_loss: float
    val_error: float
    test_loss: float
    test_error: float
    seconds: float


def best_epoch(results: list[EpochResult]) -> EpochResult | None:
    """The epoch with the lowest validation error; ties go to the later epoch (reference `<=`).

    A missing (NaN) validation error counts as worse than any number, so without a validation
    set (`n_validation=0`: every error missing) the best epoch is the last one.
    """
    best = None
    for result in results:
        if best is None or _val_key(result) <= _val_key(best):
            best = result
    return best


def _val_key(result: EpochResult) -> float:
    return result.val_error if math.isfinite(result.val_error) else math.inf


def device_name(devices: int = 1) -> str:
    """'GPU: <name>' when TensorFlow sees a GPU, else 'CPU'; with `devices` > 1, prefixed by the
    replica count ('2 x CPU (logical devices)', '4 x GPU: <name>')."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        name = "CPU" if devices == 1 else "CPU (logical devices)"
    else:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = f"GPU: {details.get('device_name', gpus[0].name)}"
        if len(gpus) < devices:
            name = "CPU (logical devices)"
    return name if devices == 1 else f"{devices} x {name}"


class Trainer:
    """Builds data, model and optimizer from a config and trains them one batch at a time.

    Args:
        config: the run's settings.
        dataset: an already loaded `Dataset` (default: load `config.dataset`).
        eager: run the step eagerly (Python executes on every call, as Keras's
            `run_eagerly=True`) to record each call in real time; slow, for a handful of steps.
        explain: deprecated alias of `eager` (bclab 0.1).
    """

    def __init__(
        self,
        config: RunConfig,
        dataset: bcdata.Dataset | None = None,
        *,
        eager: bool = False,
        explain: bool | None = None,
    ):
        require_tensorflow("bclab.Trainer")
        if explain is not None:
            warnings.warn("`Trainer(explain=...)` is deprecated: use `eager=...`.", DeprecationWarning, stacklevel=2)
            eager = check_flag("explain", explain)
        self.config = config
        self.eager = check_flag("eager", eager)
        self.dataset, self.split = prepare_data(config, dataset)
        self.strategy = strategy_for(config.devices)
        keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():  # variables mirrored over the replicas (one copy for one device)
            self.model = build_model(config, self.dataset.image_shape, self.dataset.num_classes)
            self.optimizer = BinaryConnectOptimizer(make_optimizer(config))
            self.optimizer.build(self.model.trainable_variables)
        self.device = device_name(config.devices)
        if is_multi_worker():
            self.device += (
                f", one of {self.strategy.num_replicas_in_sync} replicas of a multi-worker cluster (TF_CONFIG)"
            )
        self.instrumented = InstrumentedStep(
            self.model,
            self.optimizer,
            squared_hinge,
            level=config.trace,
            sample_size=config.trace_sample,
            seed=config.seed,
            eager=self.eager,
            jit_compile=config.jit_compile and not self.eager,
            strategy=self.strategy,
        )
        self.trace = None if config.trace == "off" else self._new_trace()
        self._order_rng = np.random.default_rng(config.seed)
        self._predict = None  # compiled test-time forward, made on first use
        self.history: list[EpochResult] = []
        self.epoch = self.global_step = 0
        self.batches_per_epoch = bcdata.num_batches(len(self.split.x_train), config.batch_size)
        self._batches: Iterator | None = None
        self._batches_left = 0
        self._epoch_start = 0.0
        self._epoch_losses: list[float] = []
        self._epoch_correct: list[float] = []
        self.on_step: list[Callable[[dict[str, Any]], None]] = []
        self.nonfinite: NonFiniteError | None = None  # the first non-finite step, once found

    @property
    def explain(self) -> bool:
        """Deprecated alias of `eager` (bclab 0.1)."""
        warnings.warn("`Trainer.explain` is deprecated: use `Trainer.eager`.", DeprecationWarning, stacklevel=2)
        return self.eager

    def _new_trace(self) -> Trace:
        step = self.instrumented
        meta = {
            "config": self.config.to_dict(),
            "device": self.device,
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "mode": "eager" if self.eager else ("compiled (XLA)" if self.config.jit_compile else "compiled"),
            "hist_stride": {layer.name: k for layer, k in zip(step.layers, step.hist_stride)},
            "dataset_source": self.dataset.source,
        }
        summaries = step.summaries
        return Trace(
            summaries.layer_infos(),
            step.bin_edges,
            params=summaries.param_names(),
            sample_size=step.sample_size,
            meta=meta,
        )

    # ----- state -----

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    @property
    def steps_total(self) -> int:
        return self.config.epochs * self.batches_per_epoch

    @property
    def lr(self) -> float:
        return self.config.lr_at_epoch(min(self.epoch, self.config.epochs - 1))

    # ----- training -----

    def step(self) -> EpochResult | None:
        """Train on one batch; when it ends an epoch, evaluate and return that epoch's result."""
        if self.done:
            raise RuntimeError(f"The run is finished ({self.config.epochs} epochs). Make a new Trainer to start over.")
        if self.nonfinite is not None and self.config.on_nonfinite == "stop":
            raise self.nonfinite
        t_fetch = time.time()
        if self._batches is None:
            self._start_epoch()
        x, y = next(self._batches)
        t_ready = time.time()
        host, device_events = self.instrumented(x, y)
        t_host = time.time()
        self._epoch_losses.append(float(host[LOSS]))
        self._epoch_correct.append(float(host[ACCURACY]))
        callbacks_start = time.time()
        for callback in self.on_step:
            callback(host)
        t_end = time.time()
        if self.trace is not None:
            events = [event("fetch batch", t_fetch, t_ready, f"{len(x)} examples, uint8 -> float32 in [-1, 1]")]
            events += device_events
            last = device_events[-1]["start"] + device_events[-1]["duration"] if device_events else t_ready
            events.append(event("summaries to host", last, t_host, "a few KB of summaries, .numpy()"))
            events.append(event("callbacks", callbacks_start, t_end, f"{len(self.on_step)} on_step callbacks"))
            for e in events:
                e["start"] -= t_fetch
            self.trace.append(self._record(host, events))
        self.global_step += 1
        self._batches_left -= 1
        if self.nonfinite is None:
            self._check_finite(host)
        if self._batches_left == 0:
            return self._finish_epoch()
        return None

    def _check_finite(self, host: dict[str, Any]) -> None:
        """The non-finite policy (module docstring) for the step just run (`global_step - 1`)."""
        found = first_nonfinite(host, [layer.name for layer in self.instrumented.layers], self.instrumented.params)
        if found is None:
            return
        step, (quantity, where, text) = self.global_step - 1, found
        if quantity == LOSS:
            text += f" ({first_nonfinite_variable(self.model)})"
        self.nonfinite = NonFiniteError(step, quantity, where, f"step {step}: {text}")
        if self.config.on_nonfinite == "stop":
            raise self.nonfinite
        logger.warning("%s; training continues (on_nonfinite='continue')", self.nonfinite)

    def _start_epoch(self) -> None:
        # The reference shuffles at the end of each epoch: the first epoch keeps the data order.
        shuffle = self.epoch > 0
        self._batches = bcdata.batches(
            self.split.x_train,
            self.split.y_train,
            self.config.batch_size,
            shuffle=shuffle,
            seed=self._order_rng,
            flatten=False,
            num_classes=self.dataset.num_classes,
        )
        self._batches_left = self.batches_per_epoch
        self.optimizer.learning_rate.assign(self.lr)
        self._epoch_start = time.time()
        self._epoch_losses, self._epoch_correct = [], []

    def _finish_epoch(self) -> EpochResult:
        val_loss, val_error = self.evaluate(self.split.x_val, self.split.y_val)
        test_loss, test_error = self.evaluate(self.split.x_test, self.split.y_test)
        result = EpochResult(
            epoch=self.epoch + 1,
            lr=self.lr,
            train_loss=float(np.mean(self._epoch_losses)),
            train_error=100.0 * (1.0 - float(np.mean(self._epoch_correct))),
            val_loss=val_loss,
            val_error=val_error,
            test_loss=test_loss,
            test_error=test_error,
            seconds=time.time() - self._epoch_start,
        )
        self.history.append(result)
        self.epoch += 1
        self._batches = None
        return result

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(loss, error %) at test time (`training=False`) over full batches, as the reference."""
        if len(x) < self.config.batch_size:
            return math.nan, math.nan
        losses, errors = [], []
        for xb, yb in bcdata.batches(
            x, y, self.config.batch_size, shuffle=False, seed=None, flatten=False, num_classes=self.dataset.num_classes
        ):
            out = self._predict_batch(xb)
            losses.append(float(np.mean(np.square(np.maximum(0.0, 1.0 - yb * out)))))
            errors.append(float(np.mean(np.argmax(out, -1) != np.argmax(yb, -1))))
        return float(np.mean(losses)), 100.0 * float(np.mean(errors))

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        if self._predict is None:
            import tensorflow as tf

            self._predict = tf.function(lambda batch: self.model(batch, training=False))
        return self._predict(x).numpy()

    def run(
        self, should_stop: Callable[[], bool] = lambda: False, on_epoch: Callable[[EpochResult], None] | None = None
    ) -> list[EpochResult]:
        """Train until done or `should_stop()`; return the epoch results so far."""
        while not self.done and not should_stop():
            result = self.step()
            if result is not None and on_epoch is not None:
                on_epoch(result)
        return self.history

    def step_timelines(self, steps: int = 3) -> list[list[dict[str, Any]]]:
        """Run `steps` batches and return each one's timeline: its host and device phases as
        events, in order (`bclab.train.timeline`). Use with `eager=True` to see every Python body run."""
        timelines = []
        for _ in range(steps):
            if self.done:
                break
            self.step()
            if self.trace is not None:
                timelines.append(self.trace.events(self.trace.latest_heavy_step()))
        return timelines

    def explain_steps(self, steps: int = 3) -> list[list[dict[str, Any]]]:
        """Deprecated alias of `step_timelines` (bclab 0.1)."""
        warnings.warn(
            "`Trainer.explain_steps` is deprecated: use `Trainer.step_timelines`.", DeprecationWarning, stacklevel=2
        )
        return self.step_timelines(steps)

    def _record(self, host: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
        """The trace record of the step just run (the store's `Trace.append` format)."""
        step = self.instrumented
        record: dict[str, Any] = {
            "step": self.global_step,
            EPOCH: self.epoch,
            "scalars": {name: float(host[name]) for name in MODEL_SCALARS},
            "events": events,
            "counters": {**step.counters, COMPILED_RUNS: int(host[COMPILED_RUNS])},
        }
        if "layers" in host:
            record.update(step.summaries.records(host))
        return record

    def best(self) -> EpochResult | None:
        """The result reported by the reference: the epoch with the best validation error."""
        return best_epoch(self.history)

    def history_dicts(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.history]
