"""The interactive lab: a dashboard of ipywidgets around a BackgroundRun, its trace and the plots.

    lab = Lab()                     # a cell ending in `lab` shows it
    lab = Lab(model=compiled_model, data=(x, y), validation_data=(x_val, y_val))  # your own model
    lab.start(); lab.wait(10); lab.toggle_pause(); lab.step(); lab.stop(); lab.reset()

Layout, top to bottom: the run buttons with the progress bar, the status line and what each
button will do; the settings, collapsed to a one-line summary; the layer/step navigation; the
views in a responsive grid (two columns where they fit); the file row (Save, Load). At 1280 x 800
the buttons, the status and the first row of views fit on one screen.

Buttons: Start trains a new run (after a run has ended it reads "New run" and starts over with the
settings); Pause/Resume hold and continue it; Step trains one batch; Stop ends the run (the views
and the files stay, the settings unlock); Reset ends it and clears the views. Starting over or
resetting releases the old run's model, trace and graphs (references dropped, `gc.collect()`).

Training runs in the runner's worker thread, because the kernel handles no widget message while
a cell blocks. That thread updates widgets only by setting traits and by the `bclab.plots.update_*`
functions, at most once a second; it never prints. Nothing the user does ends in a traceback:
failures are reported in the status line (unexpected ones also logged with their traceback).

With `model=`, a `bclab.train.modelrun.ModelRun` drives the model through its own train step,
optimizer and loss; only epochs, batch size, seed and tracing detail can be set, and each new run
starts from the weights the model had when the lab was made (the optimizer keeps its state).
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets

from bclab.config import RunConfig
from bclab.lab.compare import Comparison, compare_runs, load_dataset_for
from bclab.lab.controls import ConfigControls, ModelControls
from bclab.lab.files import FilePanel, LabFiles
from bclab.lab.status import describe, hint_html, status_html
from bclab.lab.views import Guard, Views
from bclab.trace import Trace
from bclab.train.backend import BackendError, require_tensorflow
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
_ENDED = ("stopped", "finished", "error")  # a run that is over: Start begins a new one


def _buttons(handlers: Mapping[str, Callable[[], Any]]) -> dict[str, widgets.Button]:
    """The run buttons, each calling its handler with no argument; DOM class `bclab-<key>`."""
    buttons = {}
    for key, (label, icon, style) in _BUTTONS.items():
        button = widgets.Button(description=label, icon=icon, button_style=style, layout={"width": "92px"})
        button.add_class(f"bclab-{key}")
        button.on_click(lambda _button, handler=handlers[key]: handler())
        buttons[key] = button
    return buttons


class Lab(LabFiles):
    """Settings, run buttons, a status line and six live views of a BinaryConnect run, or of a
    run of your own compiled Keras model.

    Args:
        config: The initial settings (default `RunConfig()`: a small MLP on "mnist-5k").
        dataset: An already loaded `bclab.data.Dataset`, used whenever the data set control
            shows `config.dataset` (otherwise data sets load by name; the last one is cached).
        model: A compiled Keras model to train instead of a RunConfig's (then `data` is required
            and `config`, `dataset` must be None).
        data: `(x_train, y_train)` for `model`; `validation_data`: `(x_val, y_val)` or None.
        epochs, batch_size: The initial settings for `model` (default 5 and 100).
    """

    def __init__(
        self,
        config: RunConfig | None = None,
        *,
        dataset: Any = None,
        model: Any = None,
        data: Any = None,
        validation_data: Any = None,
        epochs: int = 5,
        batch_size: int = 100,
    ):
        self._own = None if model is None else _check_own(config, dataset, model, data, validation_data)
        if self._own is None:
            for name, value in (("data", data), ("validation_data", validation_data)):
                if value is not None:
                    raise invalid_value(
                        name, type(value).__name__, "None unless model= is given (a RunConfig names its data)"
                    )
            config = config or RunConfig()
            self._form: Any = ConfigControls(config)
        else:
            self._form = ModelControls(model, epochs=epochs, batch_size=batch_size, seed=0, trace="full")
            config = None
        self._given = (None if config is None else (config.dataset, config.data_path), dataset)
        self._datasets: dict[tuple, Any] = {}  # the last data set loaded by name
        self._run_config = config
        self._loaded: Trace | None = None
        self._message, self._message_error = "", False
        self._guard = Guard()

        self.controls: dict[str, widgets.Widget] = self._form.widgets
        self.views = Views(lambda: self.trace, self._guard, on_error=self._report_error, validation=self._validation)
        self.figures, self.layer_selector = self.views.figures, self.views.layer_selector
        self.history, self.follow = self.views.history, self.views.follow
        commands = {"start": self.start, "pause": self.toggle_pause, "step": self.step, "stop": self.stop}
        self.buttons = _buttons(
            {key: self._reporting(key, command) for key, command in {**commands, "reset": self.reset}.items()}
        )
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout={"flex": "1 1 auto", "min_width": "80px"})
        self.progress.add_class("bclab-progress")
        self.status = widgets.HTML().add_class("bclab-status")
        self.hint = widgets.HTML().add_class("bclab-hint")
        self.files = FilePanel()
        self.save_folder, self.save_button, self.load_button = self.files.path, self.files.save, self.files.load
        self.save_button.on_click(self._reporting("save", lambda _button: self._save_clicked()))
        self.load_button.on_click(self._reporting("load", lambda _button: self._load_clicked()))
        self.runner = BackgroundRun(
            self._make_trainer, on_state=self._on_state, on_progress=self._on_progress, min_interval=REFRESH_S
        )
        self._form.observe(self._reporting("settings", self._on_control))
        bar = widgets.HBox([*self.buttons.values(), self.progress], layout={"width": "100%", "align_items": "center"})
        self.widget = widgets.VBox(
            [bar, self.status, self.hint, self._form.box, self.views.navigation, self.views.grid, self.files.box],
            layout={"width": "100%"},
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
        """The runner's Trainer or ModelRun (None before the first start and after reset)."""
        return self.runner.trainer

    @property
    def trace(self) -> Trace | None:
        """The trace on show: one loaded with `load_trace`, else the run's (None if off)."""
        if self._loaded is not None:
            return self._loaded
        trainer = self.runner.trainer
        return None if trainer is None else trainer.trace

    @property
    def config(self) -> Any:
        """The settings in the controls (a RunConfig; with `model=`, a dict). ValueError if one is invalid."""
        return self._form.read()

    # ------------------------------------------------------------------ commands

    def start(self) -> bool:
        """Starts training in the background; after a run has ended, starts a new one with the
        settings (releasing the old run). False if refused (see the status line)."""
        if self.runner.state in _ENDED:
            self._release()
        if self.runner.trainer is None and not self._prepare():
            return False
        return self.runner.start()

    def toggle_pause(self) -> bool:
        """Pauses a run that is going, resumes a paused one."""
        if self.runner.state in ("running", "building"):
            return self.runner.pause()
        if self.runner.state == "paused":
            return self.runner.resume()
        return False

    def step(self) -> bool:
        """Trains exactly one batch (building the run first if needed), then pauses."""
        if self.runner.state in _ENDED:
            return False
        if self.runner.trainer is None and not self._prepare():
            return False
        return self.runner.step_once()

    def stop(self) -> bool:
        """Ends the run after the current batch; its views and files stay until a new run or Reset."""
        return self.runner.stop()

    def reset(self) -> None:
        """Ends and releases the run (and any loaded trace); the views clear."""
        self.files.dismiss()
        self._release()
        self._say("")

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the background run ends or `timeout` s pass; True if it ended."""
        return self.runner.wait(timeout)

    def _release(self) -> None:
        """Drops the run (the runner closes it), the loaded trace and the views' hold on them,
        then collects: a model's graphs live in reference cycles."""
        self._loaded = None
        self.runner.reset()  # its "idle" callback redraws the views empty, dropping the old trace
        gc.collect()

    def _prepare(self) -> bool:
        try:
            require_tensorflow("bclab.Lab")  # the Trainer and its trace read TensorFlow graphs
            self._run_config = self._form.read()
        except (ValueError, BackendError) as error:
            self._say(str(error), error=True)
            return False
        self._loaded = None
        self._say("")
        return True

    def _make_trainer(self) -> Any:  # runs in the worker thread
        if self._own is not None:
            from bclab.train.modelrun import ModelRun

            model, data, validation, weights = self._own
            model.set_weights(weights)  # every run starts from the weights the lab was given
            settings = self._run_config
            return ModelRun(
                model, data, validation, epochs=settings["epochs"], batch_size=settings["batch_size"],
                level=settings["trace"], seed=settings["seed"],
            )  # fmt: skip
        from bclab.train.trainer import Trainer

        config = self._run_config
        key = (config.dataset, config.data_path)
        if key == self._given[0] and self._given[1] is not None:
            return Trainer(config, dataset=self._given[1])
        if key not in self._datasets:
            self._datasets = {key: load_dataset_for(config)}  # keep one: MNIST is 50 MB
        return Trainer(config, dataset=self._datasets[key])

    def _validation(self) -> list[tuple[int, float, float]]:
        """(step, loss, accuracy) at each finished epoch's end, for the scalars view."""
        trainer = self.runner.trainer
        if trainer is None or self._loaded is not None:
            return []
        per = trainer.batches_per_epoch
        return [(r.epoch * per - 1, r.val_loss, 1.0 - r.val_error / 100.0) for r in list(trainer.history)]

    # ------------------------------------------------------------------ config and files

    def export_config(self) -> str:
        """The settings as JSON: the running Trainer's config, else the controls' (ValueError
        if a control is invalid). With `model=`, the four settings the lab has."""
        trainer = self.runner.trainer
        if self._own is not None:
            return json.dumps(self._form.read(), indent=2)
        config = trainer.config if trainer is not None else self._form.read()
        return json.dumps(config.to_dict(), indent=2, allow_nan=False)  # strict JSON: a config is finite

    def import_config(self, text: str) -> bool:
        """Shows a JSON config in the controls; a bad one is reported in the status line."""
        if self._own is not None:
            self._say("A RunConfig cannot be imported into a lab on your own model.", error=True)
            return False
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
        self._form.disable(state in ("building", "running", "paused"))
        start = self.buttons["start"]
        start.description = "New run" if state in _ENDED else "Start"
        start.disabled = active or state == "paused"
        self.buttons["step"].disabled = active or state in _ENDED
        self.buttons["stop"].disabled = state not in ("building", "running", "paused")
        self.buttons["pause"].disabled = state not in ("building", "running", "paused")
        self.buttons["pause"].description = "Resume" if state == "paused" else "Pause"
        self.buttons["pause"].icon = "play" if state == "paused" else "pause"
        if trainer is None:
            self.progress.value = 0
        self._sync_status()

    def _sync_status(self) -> None:
        runner = self.runner
        message = (self._message, self._message_error)
        state = runner.state
        self.status.value = status_html(state, runner.error, runner.trainer, self._loaded, self.trace, message)
        self.hint.value = hint_html(state)


def _check_own(config: Any, dataset: Any, model: Any, data: Any, validation_data: Any) -> tuple:
    """(model, data, validation_data, initial weights) for `Lab(model=...)`, each checked."""
    from bclab.train.modelrun import check_data_pair
    from bclab.train.probe import check_compiled_model

    if config is not None:
        raise invalid_value("config", type(config).__name__, "None when model= is given (the model is the config)")
    if dataset is not None:
        raise invalid_value("dataset", type(dataset).__name__, "None when model= is given (pass data=(x, y))")
    model = check_compiled_model(model, "model")
    if data is None:
        raise invalid_value("data", None, "a pair (x_train, y_train) of arrays for model=")
    data = check_data_pair("data", data)
    validation = None if validation_data is None else check_data_pair("validation_data", validation_data)
    if not model.built:
        model(data[0][:1])  # builds the variables, so the initial weights can be kept
    return model, data, validation, model.get_weights()
