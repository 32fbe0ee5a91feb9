"""The interactive lab: ipywidgets wiring around a BackgroundRun, its Trainer's trace and the plots.

    lab = Lab()          # a cell ending in `lab` shows it
    lab.start(); lab.wait(10); lab.toggle_pause(); lab.step(); lab.stop(); lab.reset()

Training runs in the runner's worker thread, because the kernel handles no widget message while
a cell blocks. That thread updates widgets only by setting traits (progress, status, slider) and
by the `bclab.plots.update_*` functions, each one `plotly_update` message per figure,
at most once a second and for the selected layer only; it never prints or writes to an Output widget.

Nothing the user does ends in a traceback: every command reached from a widget, `load_trace` and
`import_config` report failures in the status line (and log the traceback of unexpected ones),
leaving the run and the views as they were. A run stopped by a NaN or Inf
(`RunConfig.on_nonfinite="stop"`) shows the step and the quantity there, apart from other errors.

This module does no math and builds no figure: the views and their navigation come from
`bclab.lab.views` (figures from `bclab.plots`), the settings form from `bclab.lab.controls`, the
run's state machine from `bclab.train.runner`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets

from bclab.config import RunConfig
from bclab.lab.compare import Comparison, compare_runs, load_dataset_for
from bclab.lab.controls import ConfigControls
from bclab.lab.status import describe, status_html
from bclab.lab.views import Guard, Views
from bclab.trace import Trace, TraceFileError
from bclab.train.runner import REFRESH_S, BackgroundRun
from bclab.validation import invalid_value

logger = logging.getLogger(__name__)

__all__ = ["Comparison", "Lab", "compare_runs"]

_BUTTONS = {  # key -> (label, icon, style)
    "start": ("Start", "play", "success"),
    "pause": ("Pause", "pause", ""),
    "step": ("Step", "step-forward", ""),
    "stop": ("Stop", "stop", "danger"),
    "reset": ("Reset", "undo", "warning"),
}


def _buttons(handlers: Mapping[str, Callable[[], Any]]) -> dict[str, widgets.Button]:
    """The run buttons, each calling its handler with no argument; DOM class `bclab-<key>`.

    Each handler must report its own errors: ipywidgets only logs an exception raised in a callback."""
    buttons = {}
    for key, (label, icon, style) in _BUTTONS.items():
        button = widgets.Button(description=label, icon=icon, button_style=style, layout={"width": "100px"})
        button.add_class(f"bclab-{key}")
        button.on_click(lambda _button, handler=handlers[key]: handler())
        buttons[key] = button
    return buttons


class Lab:
    """Settings, run buttons, a status line and six live views of a BinaryConnect run.

    Args:
        config: The initial settings (default `RunConfig()`: a small MLP on "mnist-5k").
            Fields without a control (n_train, hidden_units, ...) keep this config's values.
        dataset: An already loaded `bclab.data.Dataset`, used whenever the data set control
            shows `config.dataset` (otherwise data sets load by name; the last one is cached).
    """

    def __init__(self, config: RunConfig | None = None, *, dataset: Any = None):
        config = config or RunConfig()
        self._form = ConfigControls(config)
        self._given = ((config.dataset, config.data_path), dataset)
        self._datasets: dict[tuple, Any] = {}  # the last data set loaded by name
        self._run_config = config
        self._loaded: Trace | None = None
        self._message, self._message_error = "", False
        self._guard = Guard()

        self.controls: dict[str, widgets.Widget] = self._form.widgets
        self.views = Views(lambda: self.trace, self._guard, on_error=self._report_error)
        self.figures, self.layer_selector = self.views.figures, self.views.layer_selector
        self.history, self.follow = self.views.history, self.views.follow
        commands = {"start": self.start, "pause": self.toggle_pause, "step": self.step, "stop": self.stop}
        self.buttons = _buttons(
            {key: self._reporting(key, command) for key, command in {**commands, "reset": self.reset}.items()}
        )
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="progress").add_class("bclab-progress")
        self.status = widgets.HTML().add_class("bclab-status")
        self.save_folder = widgets.Text(value="bclab-run", description="save to")
        self.save_button = widgets.Button(description="Save", icon="save").add_class("bclab-save")
        self.save_button.on_click(self._reporting("save", lambda _button: self._save_clicked()))
        self.runner = BackgroundRun(
            self._make_trainer, on_state=self._on_state, on_progress=self._on_progress, min_interval=REFRESH_S
        )
        self._form.observe(self._reporting("settings", self._on_control))
        self.widget = widgets.VBox(
            [
                self._form.box,
                widgets.HBox(list(self.buttons.values())),
                self.progress,
                self.status,
                self.views.navigation,
                self.views.grid,
                widgets.HBox([self.save_folder, self.save_button]),
            ]
        ).add_class("bclab-lab")
        self._sync_widgets()

    # ------------------------------------------------------------------ display

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ state

    @property
    def trainer(self) -> Any:
        """The runner's Trainer (None before the first start and after reset)."""
        return self.runner.trainer

    @property
    def trace(self) -> Trace | None:
        """The trace on show: one loaded with `load_trace`, else the Trainer's (None if off)."""
        if self._loaded is not None:
            return self._loaded
        trainer = self.runner.trainer
        return None if trainer is None else trainer.trace

    @property
    def config(self) -> RunConfig:
        """The settings in the controls. Raises ValueError when one is invalid."""
        return self._form.read()

    # ------------------------------------------------------------------ commands

    def start(self) -> bool:
        """Starts (or continues) training in the background; False if refused (see status)."""
        if self.runner.trainer is None and not self._prepare():
            return False
        return self.runner.start()

    def toggle_pause(self) -> bool:
        """Pauses a run that is going, resumes one that is paused or stopped."""
        if self.runner.state in ("running", "building"):
            return self.runner.pause()
        if self.runner.state in ("paused", "stopped"):
            return self.runner.resume()
        return False

    def step(self) -> bool:
        """Trains exactly one batch (building the Trainer first if needed), then pauses."""
        if self.runner.trainer is None and not self._prepare():
            return False
        return self.runner.step_once()

    def stop(self) -> bool:
        """Stops after the current batch; `start()` continues the same Trainer."""
        return self.runner.stop()

    def reset(self) -> None:
        """Stops and drops the Trainer (and any loaded trace); the controls become editable."""
        self._loaded = None
        self._say("")
        self.runner.reset()  # its "idle" callback resyncs the widgets

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the background run ends or `timeout` s pass; True if it ended."""
        return self.runner.wait(timeout)

    def _prepare(self) -> bool:
        try:
            self._run_config = self._form.read()
        except ValueError as error:
            self._say(str(error), error=True)
            return False
        self._loaded = None
        self._say("")
        return True

    def _make_trainer(self) -> Any:  # runs in the worker thread
        from bclab.train.trainer import Trainer

        config = self._run_config
        key = (config.dataset, config.data_path)
        if key == self._given[0] and self._given[1] is not None:
            return Trainer(config, dataset=self._given[1])
        if key not in self._datasets:
            self._datasets = {key: load_dataset_for(config)}  # keep one: MNIST is 50 MB
        return Trainer(config, dataset=self._datasets[key])

    # ------------------------------------------------------------------ config and files

    def export_config(self) -> str:
        """The settings as JSON: the running Trainer's config, else the controls' (ValueError
        if a control is invalid)."""
        trainer = self.runner.trainer
        config = trainer.config if trainer is not None else self._form.read()
        return json.dumps(config.to_dict(), indent=2, allow_nan=False)  # strict JSON: a config is finite

    def import_config(self, text: str) -> bool:
        """Shows a JSON config in the controls; a bad one is reported in the status line."""
        if self.runner.trainer is not None:
            self._say("Reset the run before importing a config.", error=True)
            return False
        try:
            config = RunConfig.from_json(text)
        except Exception as error:  # bad JSON, wrong types, nesting too deep, not text at all
            self._say(f"Config not imported: {describe(error)}", error=True)
            return False
        with self._guard.quiet():
            self._form.set(config)
        self._say("Config imported.")
        return True

    def save_trace(self, path: str | os.PathLike) -> None:
        """Writes the trace on show to an .npz file (see `Trace.save`)."""
        trace = self.trace
        if trace is None:
            raise ValueError(
                "There is no trace to save: start a run with tracing detail 'scalars' or 'full', or load a trace."
            )
        trace.save(path)

    def save_model(self, path: str | os.PathLike) -> None:
        """Writes the model to a `.keras` file between two training steps."""
        if not os.fspath(path).endswith(".keras"):
            raise invalid_value("path", os.fspath(path), "a file name ending in '.keras'")
        with self.runner.hold() as trainer:
            if trainer is None:
                raise ValueError("There is no model to save: start a run first.")
            trainer.model.save(path)

    def save_figures(self, path: str | os.PathLike) -> None:
        """Writes the six views, as shown, to one offline HTML file."""
        self.views.to_html(path)

    def save_all(self, folder: str | os.PathLike) -> list[str]:
        """Writes config.json, figures.html and, when they exist, trace.npz and model.keras."""
        os.makedirs(folder, exist_ok=True)
        written = [os.path.join(folder, "config.json"), os.path.join(folder, "figures.html")]
        with open(written[0], "w", encoding="utf-8") as f:
            f.write(self.export_config())
        self.save_figures(written[1])
        if self.trace is not None:
            written.append(os.path.join(folder, "trace.npz"))
            self.save_trace(written[-1])
        if self.runner.trainer is not None:
            written.append(os.path.join(folder, "model.keras"))
            self.save_model(written[-1])
        return written

    def _save_clicked(self) -> None:
        try:
            written = self.save_all(self.save_folder.value)
        except Exception as error:
            self._say(f"Not saved: {describe(error)}", error=True)
        else:
            self._say("Saved " + ", ".join(written))

    def load_trace(self, path: str | os.PathLike) -> Trace | None:
        """Shows a saved trace (resetting any run); its config goes into the controls.

        A file that cannot be loaded (missing, corrupt, edited, hostile) is reported in the
        status line and None returned; the run and the views stay as they were.
        """
        try:
            trace = Trace.load(path)
        except TraceFileError as error:
            self._say(f"Trace not loaded: {error}", error=True)
            return None
        except Exception as error:  # Trace.load promises TraceFileError; never let the lab die of a file
            logger.exception("loading trace %r failed", path)
            self._say(f"Trace not loaded from {os.fspath(path)!r}: {describe(error)}", error=True)
            return None
        if self.runner.trainer is not None or self.runner.active:
            self.runner.reset()
        self._loaded = trace
        saved = trace.meta.get("config")
        if isinstance(saved, dict):
            try:
                self.import_config(RunConfig.from_dict(saved).to_json())
            except Exception:  # a trace from another version: the views still work
                logger.info("the config saved in %r is not this version's; controls unchanged", path, exc_info=True)
        self._say(f"Showing the trace loaded from {os.fspath(path)} ({len(trace)} steps).")
        try:
            self.views.show_latest()
        except Exception as error:  # a figure that cannot show this trace: say so, keep the lab alive
            self._report_error("drawing the loaded trace", error)
        return trace

    # ------------------------------------------------------------------ widget sync

    def _say(self, message: str, error: bool = False) -> None:
        self._message, self._message_error = message, error
        self._sync_status()

    def _report_error(self, what: str, error: BaseException) -> None:
        """Logs an unexpected failure of `what` with its traceback and shows it in the status line."""
        logger.error("bclab lab: %s failed", what, exc_info=error)
        self._say(f"{what} failed: {describe(error)}", error=True)

    def _reporting(self, what: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """`callback`, reporting any exception it raises with `_report_error` instead of raising it."""

        def reporting(*args: Any) -> Any:
            try:
                return callback(*args)
            except Exception as error:
                self._report_error(what, error)
                return None

        return reporting

    def _on_control(self, _change: Any) -> None:
        if self._guard.quiet_here:
            return
        try:
            self._form.read()
        except ValueError as error:
            self._say(str(error), error=True)
        else:
            if self._message_error:
                self._say("")

    def _on_state(self, state: str) -> None:  # any thread
        try:
            self._sync_widgets()
            if state == "idle":
                self.views.refresh(force=True)
        except Exception as error:
            self._report_error("updating the widgets", error)

    def _on_progress(self, trainer: Any) -> None:  # the worker thread
        try:
            self.progress.max = max(1, trainer.steps_total)
            self.progress.value = trainer.global_step
            self._sync_status()
            self.views.refresh(force=self.runner.state != "running")
        except Exception as error:
            self._report_error("updating the views", error)

    def _sync_widgets(self) -> None:
        state, trainer = self.runner.state, self.runner.trainer
        active = state in ("building", "running")
        finished = state == "finished"
        self._form.disable(trainer is not None or active)
        self.buttons["start"].disabled = active or finished
        self.buttons["step"].disabled = active or finished
        self.buttons["stop"].disabled = state not in ("building", "running", "paused")
        self.buttons["pause"].disabled = state not in ("building", "running", "paused", "stopped")
        self.buttons["pause"].description = "Resume" if state in ("paused", "stopped") else "Pause"
        self.buttons["pause"].icon = "play" if state in ("paused", "stopped") else "pause"
        if trainer is None:
            self.progress.value = 0
        self._sync_status()

    def _sync_status(self) -> None:
        runner = self.runner
        message = (self._message, self._message_error)
        self.status.value = status_html(runner.state, runner.error, runner.trainer, self._loaded, self.trace, message)
