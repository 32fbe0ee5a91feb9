"""BackgroundRun: trains a Trainer in a worker thread that can be paused, stepped, stopped and reset.

A notebook cell that blocks stops the kernel from handling widget messages, so the lab never
trains in the calling thread: `start()` returns at once and one worker thread builds the
Trainer (if there is none yet) and then calls `trainer.step()` until the run is done or a
pause/stop is asked for. Requests are flags checked between steps, and every step is atomic
(see `bclab.train.trainer`), so a pause or stop takes effect within one step and leaves the model
and its trace consistent up to the last finished step.

States: "idle" (no Trainer), "building", "running", "paused", "stopped", "finished", "error".
A paused or stopped run keeps its Trainer and `start()` continues it; `reset()` drops it so the
next start builds a new one. Callbacks run in the thread that changes the state (the worker,
or the caller of `stop()`/`reset()`); an exception inside a callback is logged, not raised.

No widgets here (the lab adapts these callbacks to widgets) and no print: errors go to
`logging` with their traceback and to `error` as text.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bclab.validation import check_real, invalid_value

logger = logging.getLogger(__name__)

__all__ = ["REFRESH_S", "STATES", "BackgroundRun"]

STATES = ("idle", "building", "running", "paused", "stopped", "finished", "error")

# The widgets' refresh interval: at most one figure update a second while a run goes. A browser
# redrawing six plotly figures on a small CPU (Binder, headless Chromium) falls behind at four.
REFRESH_S = 1.0


class BackgroundRun:
    """Owns a Trainer-making function, the Trainer it made and the worker thread that steps it.

    Args:
        make_trainer: Called (in the worker thread) with no arguments to build the Trainer
            when a run starts without one. Anything with `step()` (returning an epoch result
            or None) and `done` works.
        on_state: Called with the new state on every state change.
        on_progress: Called with the trainer after steps, at most every `min_interval`
            seconds, and always after building, at each epoch end and when the worker stops
            (pause, stop, finish, error).
        on_epoch: Called with each `EpochResult` when a step ends an epoch.
        min_interval: Seconds between throttled progress calls.
    """

    def __init__(
        self,
        make_trainer: Callable[[], Any],
        *,
        on_state: Callable[[str], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_epoch: Callable[[Any], None] | None = None,
        min_interval: float = 0.25,
    ):
        expected = "a non-negative number of seconds"
        self.min_interval = check_real("min_interval", min_interval, expected)
        if not 0 <= self.min_interval < math.inf:
            raise invalid_value("min_interval", min_interval, expected)
        self.make_trainer = make_trainer
        self.on_state, self.on_progress, self.on_epoch = on_state, on_progress, on_epoch
        self._lock = threading.Lock()  # guards the fields below
        self._step_lock = threading.Lock()  # held around each step; see hold()
        self._thread: threading.Thread | None = None
        self._trainer: Any = None
        self._state = "idle"
        self._error: str | None = None
        self._goal: str | None = None  # what the worker is asked to do: run, step, pause, stop
        self._last_progress = 0.0

    # ------------------------------------------------------------------ reading

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def error(self) -> str | None:
        """The text of the exception that put the run in "error" ("ValueError: ..."), else None."""
        with self._lock:
            return self._error

    @property
    def trainer(self) -> Any:
        """The current Trainer, or None before the first build and after `reset()`."""
        with self._lock:
            return self._trainer

    @property
    def active(self) -> bool:
        """True while the worker thread is alive (building, stepping or winding down)."""
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ commands

    def start(self) -> bool:
        """Builds the Trainer if needed, then trains until done, paused or stopped.

        Returns False (and does nothing) when a run is already active or finished.
        """
        return self._launch("run")

    def resume(self) -> bool:
        """The same as `start()`: continues a paused or stopped run."""
        return self._launch("run")

    def step_once(self) -> bool:
        """Trains one batch (building the Trainer first if needed), then pauses.

        Works before the first start and while paused or stopped; returns False (and does
        nothing) while a run is active or finished.
        """
        return self._launch("step")

    def pause(self) -> bool:
        """Asks the worker to pause after its current step; False when nothing is running."""
        with self._lock:
            if self._goal not in ("run", "step"):
                return False
            self._goal = "pause"
            return True

    def stop(self) -> bool:
        """Stops after the current step (the thread ends); the Trainer is kept, so a later
        `start()` continues it. A paused run becomes "stopped" at once."""
        with self._lock:
            if self._goal in ("run", "step", "pause"):
                self._goal = "stop"
                return True
            if self._state != "paused":
                return False
            self._state = "stopped"
        self._emit_state("stopped")
        return True

    def reset(self, timeout: float | None = None) -> None:
        """Stops, waits for the worker and drops the Trainer; the next start builds a new one
        with whatever `make_trainer` makes then. Blocks for at most one step (or a build)."""
        with self._lock:
            thread = self._thread
            if self._goal is not None:
                self._goal = "stop"
        if thread is threading.current_thread():
            raise RuntimeError(
                "reset() was called from the run's own thread (a callback); call it from the notebook instead."
            )
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"The run did not stop within {timeout} s; try reset() again.")
        with self._lock:
            self._trainer, self._error, self._thread, self._goal = None, None, None, None
            self._state = "idle"
        self._emit_state("idle")

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the worker thread ends or `timeout` seconds pass; True if it ended."""
        with self._lock:
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @contextlib.contextmanager
    def hold(self) -> Iterator[Any]:
        """Holds off the next step while the block runs (e.g. to save the model between two
        steps); yields the trainer (None if there is none)."""
        with self._step_lock:
            yield self.trainer

    # ------------------------------------------------------------------ worker

    def _launch(self, goal: str) -> bool:
        while True:
            with self._lock:
                thread = self._thread
                if thread is None or not thread.is_alive():
                    if self._trainer is not None and getattr(self._trainer, "done", False):
                        return False
                    self._goal, self._error = goal, None
                    self._state = "building" if self._trainer is None else "running"
                    state = self._state
                    thread = self._thread = threading.Thread(target=self._work, name="bclab-run", daemon=True)
                    break
                if self._goal in ("run", "step") or thread is threading.current_thread():
                    return False
            thread.join()  # the worker is winding down after a pause or stop: let it finish
        # Announced before the thread starts, so its own state changes come after this one.
        self._emit_state(state)
        thread.start()
        return True

    def _work(self) -> None:
        trainer, final, stepped = None, "paused", False
        try:
            with self._lock:
                trainer = self._trainer
            if trainer is None:
                trainer = self.make_trainer()
                with self._lock:
                    self._trainer = trainer
                    running = self._goal in ("run", "step")
                    if running:
                        self._state = "running"
                if running:
                    self._emit_state("running")
                self._progress(trainer, force=True)
            while True:
                with self._lock:
                    goal = self._goal
                if getattr(trainer, "done", False):
                    final = "finished"
                    break
                if goal in ("pause", "stop") or (goal == "step" and stepped):
                    final = "stopped" if goal == "stop" else "paused"
                    break
                with self._step_lock:
                    result = trainer.step()
                stepped = True
                if result is not None:
                    self._call(self.on_epoch, result)
                self._progress(trainer, force=result is not None)
        except Exception as exc:  # any failure inside training must leave the runner usable
            logger.exception("bclab run failed")
            final = "error"
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._state, self._goal = final, None
        self._emit_state(final)
        if trainer is not None:
            self._progress(trainer, force=True)

    def _progress(self, trainer: Any, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < self.min_interval:
            return
        self._last_progress = now
        self._call(self.on_progress, trainer)

    def _emit_state(self, state: str) -> None:
        self._call(self.on_state, state)

    @staticmethod
    def _call(callback: Callable[[Any], None] | None, value: Any) -> None:
        if callback is None:
            return
        try:
            callback(value)
        except Exception:
            logger.exception("bclab run callback %r failed", callback)
