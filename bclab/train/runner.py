"""BackgroundRun: trains a Trainer in a worker thread that can be paused, stepped, stopped and reset.

A notebook cell that blocks stops the kernel from handling widget messages, so the lab never
trains in the calling thread: `start()` returns at once and one worker thread builds the
Trainer (if there is none yet) and then calls `trainer.step()` until the run is done or a
pause/stop is asked for. Requests are flags checked between steps, and every step is atomic
(see `bclab.train.trainer`), so a pause or stop takes effect within one step and leaves the model
and its trace consistent up to the last finished step.

States: "idle" (no Trainer), "building", "running", "paused", "stopped", "finished", "error".
A paused or stopped run keeps its Trainer and `start()` continues it; `reset()` drops it so the
next start builds a new one. An exception from `make_trainer()` or `trainer.step()` (a
`NonFiniteError` of the Trainer's non-finite policy too) puts the run in "error", with
`error = "<type>: <message>"`.

Every command is safe from any thread: one lock guards the state and the launch of the worker,
so at most one worker thread (named `WORKER_NAME`) is alive at any time, and every wait has a
deadline (`reset()` and a start that waits for a winding-down worker raise `TimeoutError`
after it). Callbacks run in the thread that changes the state (the worker, or the caller of
`start()`/`stop()`/`reset()`), outside the lock; with commands from several threads two callbacks
may run at once, so a callback should read `state` for the current one. An exception inside a
callback is logged, not raised.

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

__all__ = ["REFRESH_S", "STATES", "WAIT_S", "WORKER_NAME", "BackgroundRun"]

STATES = ("idle", "building", "running", "paused", "stopped", "finished", "error")

# The widgets' refresh interval: at most one figure update a second while a run goes. A browser
# redrawing six plotly figures on a small CPU (Binder, headless Chromium) falls behind at four.
REFRESH_S = 1.0

WORKER_NAME = "bclab-run"  # the worker thread's name
WAIT_S = 60.0  # how long reset() and start() wait, by default, for a worker to finish its step


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
        self.min_interval = _check_seconds("min_interval", min_interval)
        if not callable(make_trainer):
            raise invalid_value("make_trainer", make_trainer, "a function of no arguments that returns a Trainer")
        for name, callback in (("on_state", on_state), ("on_progress", on_progress), ("on_epoch", on_epoch)):
            if callback is not None and not callable(callback):
                raise invalid_value(name, callback, "None or a function of one argument")
        self.make_trainer = make_trainer
        self.on_state, self.on_progress, self.on_epoch = on_state, on_progress, on_epoch
        self._lock = threading.Condition()  # guards the fields below; notified when _busy clears
        self._step_lock = threading.Lock()  # held around each step; see hold()
        self._thread: threading.Thread | None = None  # the last worker launched
        self._busy = False  # True from a launch until that worker's last statement
        self._announcer: int | None = None  # the thread announcing a launch (its state callback runs)
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
        """True from a launch until the worker has finished (building, stepping or winding down)."""
        with self._lock:
            return self._busy

    # ------------------------------------------------------------------ commands

    def start(self, timeout: float | None = WAIT_S) -> bool:
        """Builds the Trainer if needed, then trains until done, paused or stopped.

        Returns False (and does nothing) when a run is already active or finished. A worker
        still finishing its last step after a pause or stop is waited for, at most `timeout`
        seconds (None: no limit), then `TimeoutError`.
        """
        return self._launch("run", timeout)

    def resume(self, timeout: float | None = WAIT_S) -> bool:
        """The same as `start()`: continues a paused or stopped run."""
        return self._launch("run", timeout)

    def step_once(self, timeout: float | None = WAIT_S) -> bool:
        """Trains one batch (building the Trainer first if needed), then pauses.

        Works before the first start and while paused or stopped; returns False (and does
        nothing) while a run is active or finished.
        """
        return self._launch("step", timeout)

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

    def reset(self, timeout: float | None = WAIT_S) -> None:
        """Stops, waits for the worker and drops the Trainer (calling its `close()` if it has
        one); the next start builds a new one with whatever `make_trainer` makes then.

        Blocks for at most one step (or a build), and at most `timeout` seconds (None: no
        limit): then `TimeoutError`, with the run still asked to stop. From the worker's own
        thread (a callback) it raises `RuntimeError`.
        """
        deadline = _deadline(_check_seconds("timeout", timeout, allow_none=True))
        with self._lock:
            if self._in_run_thread():
                raise RuntimeError(
                    "reset() was called from the run's own thread (a callback); call it from the notebook instead."
                )
            while self._busy:  # a start from another thread may launch again while we wait
                self._goal = "stop"
                self._wait_locked(deadline, f"The run did not stop within {timeout} s; call reset() again to wait on.")
            thread, trainer = self._thread, self._trainer  # the thread is kept: the next launch joins it too
            self._trainer, self._error, self._goal = None, None, None
            self._state = "idle"
        _join(thread, deadline)  # it has run its last statement: this is its exit
        close = getattr(trainer, "close", None)  # e.g. a ModelRun takes its probe off the user's model
        if callable(close):
            self._call(lambda _: close(), None)
        del trainer
        self._emit_state("idle")

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the worker has finished or `timeout` seconds pass; True if it finished."""
        deadline = _deadline(_check_seconds("timeout", timeout, allow_none=True))
        with self._lock:
            thread = self._thread
            if self._in_run_thread():
                return True
            while self._busy:
                remaining = _remaining(deadline)
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
        _join(thread, deadline)
        return True

    @contextlib.contextmanager
    def hold(self) -> Iterator[Any]:
        """Holds off the next step while the block runs (e.g. to save the model between two
        steps); yields the trainer (None if there is none)."""
        with self._step_lock:
            yield self.trainer

    # ------------------------------------------------------------------ worker

    def _launch(self, goal: str, timeout: float | None) -> bool:
        deadline = _deadline(_check_seconds("timeout", timeout, allow_none=True))
        with self._lock:
            while self._busy:
                if self._goal in ("run", "step") or self._in_run_thread():
                    return False
                # The worker is winding down after a pause or stop: let it finish.
                self._wait_locked(deadline, f"The run did not finish its step within {timeout} s; try again.")
            if self._trainer is not None and getattr(self._trainer, "done", False):
                return False
            _join(self._thread, deadline)  # past its last statement: this is its exit
            self._goal, self._error, self._busy = goal, None, True
            self._state = state = "building" if self._trainer is None else "running"
            thread = self._thread = threading.Thread(target=self._work, name=WORKER_NAME, daemon=True)
            self._announcer = threading.get_ident()
        try:
            # Announced before the thread starts, so its own state changes come after this one.
            self._emit_state(state)
        finally:
            with self._lock:
                self._announcer = None
        try:
            thread.start()
        except BaseException as exc:  # no thread (e.g. the interpreter is out of them)
            self._finish("error", f"{type(exc).__name__}: {exc}")
            raise
        return True

    def _work(self) -> None:
        final, error = "error", None
        try:
            final = self._train()
        except BaseException as exc:  # any failure inside training must leave the runner usable
            logger.exception("bclab run failed")
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self._finish(final, error)

    def _train(self) -> str:
        """Builds the trainer if needed, then steps it until done or asked to stop; the final state."""
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
        stepped = False
        while True:
            with self._lock:
                goal = self._goal
            if getattr(trainer, "done", False):
                return "finished"
            if goal in ("pause", "stop") or (goal == "step" and stepped):
                return "stopped" if goal == "stop" else "paused"
            with self._step_lock:
                result = trainer.step()
            stepped = True
            if result is not None:
                self._call(self.on_epoch, result)
            self._progress(trainer, force=result is not None)

    def _finish(self, final: str, error: str | None) -> None:
        """The worker's last act: the final state, its callbacks, then the worker is no longer busy."""
        try:
            with self._lock:
                self._state, self._goal = final, None
                if error is not None:
                    self._error = error
                trainer = self._trainer
            self._emit_state(final)
            if trainer is not None:
                self._progress(trainer, force=True)
        finally:
            with self._lock:
                self._busy = False
                self._lock.notify_all()

    def _in_run_thread(self) -> bool:
        """True (the lock held) in a callback of the run: waiting for the worker there never ends."""
        if not self._busy:
            return False
        return self._thread is threading.current_thread() or self._announcer == threading.get_ident()

    def _wait_locked(self, deadline: float | None, message: str) -> None:
        """One wait on the condition (the lock held), or `TimeoutError(message)` past the deadline."""
        remaining = _remaining(deadline)
        if remaining is not None and remaining <= 0:
            raise TimeoutError(message)
        self._lock.wait(remaining)

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


def _check_seconds(name: str, value: Any, allow_none: bool = False) -> float | None:
    """A non-negative finite number of seconds (or None, when allowed)."""
    if value is None and allow_none:
        return None
    expected = "None or a non-negative number of seconds" if allow_none else "a non-negative number of seconds"
    seconds = check_real(name, value, expected)
    if not 0 <= seconds < math.inf:
        raise invalid_value(name, value, expected)
    return seconds


def _join(thread: threading.Thread | None, deadline: float | None) -> None:
    """Join a worker that has run its last statement (not one never started, nor oneself)."""
    if thread is not None and thread.ident is not None and thread is not threading.current_thread():
        thread.join(_remaining(deadline))


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
