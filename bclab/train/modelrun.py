"""ModelRun: your own compiled model trained one batch at a time, the way the lab drives a Trainer.

`bclab.Lab(model=..., data=..., validation_data=...)` steps a `ModelRun` where it would step a
`Trainer`: the same interface (`step()`, `done`, `epoch`, `global_step`, `steps_total`,
`batches_per_epoch`, `history`, `trace`, `model`, `device`; `config` is None), so the lab's
buttons, runner and views work unchanged. Each step is `model.train_on_batch` through the
model's own train step, loss, metrics and optimizer, with the `fit` probe installed
(`bclab.train.probe`), so the trace is the one `bclab.LiveTrace` records in `fit`.

Batches as the Trainer's: full batches only (`len(x) // batch_size` per epoch, the rest left out,
as the reference does), in the data's order in the first epoch and shuffled (by `seed`) before
each later one. At an epoch's end the validation data, if any, is evaluated at test time
(`model.evaluate`, and the error by argmax of `model.predict`, NaN for a one-unit output);
there is no test set (`test_loss`, `test_error` are NaN). `close()` removes the probe; the lab
calls it when a run is reset.
"""

from __future__ import annotations

import math
import time
from typing import Any

import keras
import numpy as np

from bclab.trace.schema import ACCURACY, LOSS, LR
from bclab.train.backend import require_tensorflow
from bclab.train.histograms import HIST_SUBSET
from bclab.train.probe import FitProbe, check_compiled_model
from bclab.train.trainer import EpochResult, best_epoch, device_name
from bclab.validation import check_int, check_positive_int, invalid_value

__all__ = ["ModelRun", "check_data_pair"]


def check_data_pair(name: str, value: Any, min_rows: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`(x, y)`: two arrays with the same number of rows (at least `min_rows`), numbers only."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise invalid_value(name, type(value).__name__, "a pair (x, y) of arrays with one row per example")
    x, y = (np.asarray(part) for part in value)
    for part, label in ((x, "x"), (y, "y")):
        if part.ndim == 0 or part.dtype.kind not in "biuf":
            raise invalid_value(
                f"{name}[{'xy'.index(label)}]",
                f"{part.dtype} array of shape {part.shape}",
                "an array of numbers with one row per example",
            )
    if len(x) != len(y):
        raise invalid_value(name, f"x of {len(x)} rows, y of {len(y)}", "x and y with the same number of rows")
    if len(x) < min_rows:
        raise invalid_value(name, f"{len(x)} rows", f"at least {min_rows} rows (one batch)")
    return x, y


class ModelRun:
    """A compiled Keras model trained batch by batch on `data`, traced; see the module docstring.

    Args:
        model: a compiled Keras model (`model.compile(optimizer=..., loss=...)`).
        data: `(x_train, y_train)`, arrays the model takes as they are.
        validation_data: `(x_val, y_val)` or None.
        epochs: epochs to train.
        batch_size: examples per step (at most the training rows).
        level: the trace's level, "scalars" or "full".
        seed: the shuffling order and the tracked weights.
        sample_size: tracked weights per kernel layer (level "full").
    """

    config = None  # a ModelRun has no RunConfig: the model, its optimizer and loss are the user's

    def __init__(
        self,
        model: keras.Model,
        data: Any,
        validation_data: Any = None,
        *,
        epochs: int = 10,
        batch_size: int = 100,
        level: str = "full",
        seed: int = 0,
        sample_size: int = 256,
        hist_subset: int = HIST_SUBSET,
    ):
        require_tensorflow("bclab.Lab(model=...)")
        self.model = check_compiled_model(model)
        self.epochs = check_positive_int("epochs", epochs)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.x, self.y = check_data_pair("data", data, self.batch_size)
        self.validation = None if validation_data is None else check_data_pair("validation_data", validation_data)
        self.seed = check_int("seed", seed, 0)
        if not model.built:
            model(self.x[: self.batch_size])  # builds every layer's variables for the probe
        self.probe = FitProbe(model, level=level, sample_size=sample_size, seed=seed, hist_subset=hist_subset)
        self.device = device_name()
        self.trace = self.probe.new_trace({"device": self.device, "source": "bclab.Lab(model=...)"})
        self.probe.install()
        self.batches_per_epoch = len(self.x) // self.batch_size
        self.history: list[EpochResult] = []
        self.epoch = self.global_step = 0
        self._rng = np.random.default_rng(self.seed)
        self._order = np.arange(len(self.x))
        self._batch = 0
        self._losses: list[float] = []
        self._correct: list[float] = []
        self._epoch_start = 0.0

    @property
    def done(self) -> bool:
        return self.epoch >= self.epochs

    @property
    def steps_total(self) -> int:
        return self.epochs * self.batches_per_epoch

    def step(self) -> EpochResult | None:
        """Train on one batch; when it ends an epoch, evaluate and return that epoch's result."""
        if self.done:
            raise RuntimeError(f"The run is finished ({self.epochs} epochs). Make a new ModelRun to start over.")
        if self._batch == 0:
            self._epoch_start = time.time()
            self._losses, self._correct = [], []
            if self.epoch > 0:  # the first epoch keeps the data order, as the Trainer
                self._order = self._rng.permutation(len(self.x))
        rows = self._order[self._batch * self.batch_size : (self._batch + 1) * self.batch_size]
        call_start = time.time()
        self.model.train_on_batch(self.x[rows], self.y[rows])
        host, events = self.probe.read(call_start, time.time())
        self.trace.append(self.probe.record(host, events, self.global_step, self.epoch))
        self._losses.append(float(host[LOSS]))
        self._correct.append(float(host[ACCURACY]))
        self._lr = float(host[LR])
        self.global_step += 1
        self._batch += 1
        if self._batch < self.batches_per_epoch:
            return None
        return self._finish_epoch()

    def _finish_epoch(self) -> EpochResult:
        val_loss, val_error = self.evaluate(*self.validation) if self.validation is not None else (math.nan, math.nan)
        result = EpochResult(
            epoch=self.epoch + 1,
            lr=self._lr,
            train_loss=float(np.mean(self._losses)),
            train_error=100.0 * (1.0 - float(np.mean(self._correct))),
            val_loss=val_loss,
            val_error=val_error,
            test_loss=math.nan,
            test_error=math.nan,
            seconds=time.time() - self._epoch_start,
        )
        self.history.append(result)
        self.epoch += 1
        self._batch = 0
        return result

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(loss, error %) of the model at test time on `(x, y)`."""
        logs = self.model.evaluate(x, y, batch_size=self.batch_size, verbose=0, return_dict=True)
        outputs = np.asarray(self.model.predict(x, batch_size=self.batch_size, verbose=0))
        return float(logs.get("loss", math.nan)), argmax_error(y, outputs)

    def best(self) -> EpochResult | None:
        return best_epoch(self.history)

    def close(self) -> None:
        """Remove the probe from the model (the next `fit` builds a plain train function)."""
        self.probe.uninstall()


def argmax_error(y: np.ndarray, outputs: np.ndarray) -> float:
    """Error % by argmax for a multi-unit output (one-hot or +-1 targets, or integer labels); NaN
    for a one-unit output, as the probe's batch accuracy."""
    if outputs.ndim < 2 or outputs.shape[-1] < 2:
        return math.nan
    predicted = outputs.argmax(-1)
    target = y.argmax(-1) if y.shape == outputs.shape else y.reshape(predicted.shape)
    return 100.0 * float(np.mean(predicted != target))
