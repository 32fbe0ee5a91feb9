"""`TraceCallback`: the step trace of your own `model.fit`, as a Keras callback.

On `on_train_begin` it installs a `FitProbe` on the model (`bclab.train.probe`), after each
batch it appends one record to `callback.trace` (a `bclab.Trace`, the Trainer's format), and on
`on_train_end` it removes the probe and, with `save_to`, saves the trace (atomically; each `fit`
rewrites the file with the whole trace so far). Several `fit` calls in a row continue one trace:
steps count on from the last one, epochs are `fit`'s own (`initial_epoch` included). Each `fit`
with the callback traces its train step once (the probe rebuilds the train function), so the
counters show one more Python trace per `fit`.

Step numbers count the batches trained by `fit` calls with this callback, from 0. With
`steps_per_execution=N`, `fit` reports every N-th batch and the record holds that batch's step.
The lab's live views on top of this: `bclab.lab.live.LiveTrace`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from bclab.trace.store import Trace
from bclab.train.backend import require_tensorflow
from bclab.train.histograms import HIST_SUBSET
from bclab.train.probe import FitProbe
from bclab.train.trainer import device_name
from bclab.validation import check_choice, check_int, invalid_value

__all__ = ["LEVELS", "TraceCallback"]

LEVELS = ("scalars", "full")


class TraceCallback(keras.callbacks.Callback):
    """Records bclab's step trace of every batch `fit` trains; see the module docstring.

    Args:
        level: "scalars" (loss, accuracy, learning rate, counters, timeline, per-layer counts and
            norms) or "full" (also histograms and tracked weights).
        save_to: a `.npz` path to save the trace to at the end of every `fit`, or None.
        sample_size: tracked weights per kernel layer (level "full").
        seed: chooses the tracked weights.
        hist_subset: at most this many weights per layer in the histograms (`bclab.train.histograms`).
    """

    def __init__(
        self,
        level: str = "full",
        *,
        save_to: str | os.PathLike | None = None,
        sample_size: int = 256,
        seed: int = 0,
        hist_subset: int = HIST_SUBSET,
    ):
        require_tensorflow("bclab.LiveTrace")
        super().__init__()
        self.level = check_choice("level", level, LEVELS)
        self.save_to = None if save_to is None else _check_save_path(save_to)
        self.sample_size = check_int("sample_size", sample_size, 0)
        self.seed = check_int("seed", seed, 0)
        self.hist_subset = check_int("hist_subset", hist_subset, 1)
        self.probe: FitProbe | None = None
        self.trace: Trace | None = None
        self.history: list[dict[str, float]] = []  # each epoch's logs, validation included
        self.listeners: list[Callable[[TraceCallback, str], None]] = []  # (callback, event name)
        self._steps_done = 0
        self._epoch = 0
        self._call_start = 0.0
        self._begin_batch = 0

    def on_train_begin(self, logs=None):
        if self.probe is None:
            self.probe = FitProbe(
                self.model,
                level=self.level,
                sample_size=self.sample_size,
                seed=self.seed,
                hist_subset=self.hist_subset,
            )
            self.trace = self.probe.new_trace({"device": device_name(), "source": "model.fit with bclab.LiveTrace"})
        elif self.probe.model is not self.model:
            raise invalid_value(
                "model",
                self.model.name,
                f"the model this LiveTrace traced first ({self.probe.model.name!r}): make a new LiveTrace per model",
            )
        self.probe.install()
        self._notify("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = int(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self._begin_batch = int(batch)
        self._call_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        host, events = self.probe.read(self._call_start, time.time())
        step = self._steps_done + max(0, int(batch) - self._begin_batch)
        self._steps_done = step + 1
        self.trace.append(self.probe.record(host, events, step, self._epoch))
        self._notify("batch_end")

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": int(epoch)}
        for name, value in (logs or {}).items():
            try:
                entry[name] = float(value)
            except (TypeError, ValueError):
                entry[name] = math.nan
        self.history.append(entry)
        self._notify("epoch_end")

    def on_train_end(self, logs=None):
        if self.probe is not None:
            self.probe.uninstall()
        if self.save_to is not None and self.trace is not None:
            self.trace.save(self.save_to)
        self._notify("train_end")

    def _notify(self, event: str) -> None:
        for listener in list(self.listeners):
            listener(self, event)


def _check_save_path(path: Any) -> Path:
    """A file path whose folder exists; the trace is written there at the end of each `fit`."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise invalid_value("save_to", path, "None or a file path (str or os.PathLike)")
    target = Path(os.fspath(path)).expanduser().absolute()
    if target.is_dir():
        raise invalid_value("save_to", os.fspath(path), "a file path, not a folder")
    if not target.parent.is_dir():
        raise invalid_value("save_to", os.fspath(path), f"a path in an existing folder ({target.parent} is none)")
    if not os.access(target.parent, os.W_OK):
        raise invalid_value("save_to", os.fspath(path), f"a path in a folder you can write ({target.parent} is not)")
    return target
