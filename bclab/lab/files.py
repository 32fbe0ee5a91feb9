"""The lab's files: a path box, Save and Load buttons, a confirmation before anything is lost, and
the lab's save and load commands (`LabFiles`, mixed into `bclab.lab.Lab`).

Paths are shown absolute in every message, so a user knows where a relative path went (it is
relative to the kernel's working folder, usually the notebook's). `ask(question, action, yes)`
shows the question with a "yes" button (labelled `yes`) and "Cancel"; the action runs only on
"yes". The lab uses it before loading a trace discards a run and before Save writes into a
folder that already holds files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as widgets

from bclab.config import RunConfig
from bclab.lab.status import describe
from bclab.trace import Trace, TraceFileError
from bclab.validation import invalid_value

logger = logging.getLogger(__name__)

__all__ = ["FilePanel", "LabFiles", "absolute"]


def absolute(path: str | os.PathLike) -> str:
    """`path` made absolute (user folder expanded), as messages show it."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


class FilePanel:
    """`path` (Text), `save` and `load` (Buttons), and the hidden confirmation row `confirm`,
    laid out in `box`. DOM classes: bclab-path, bclab-save, bclab-load, bclab-confirm,
    bclab-yes, bclab-no."""

    def __init__(self, default: str = "bclab-run"):
        self.path = widgets.Text(
            value=default,
            description="folder or .npz",
            placeholder="a folder (Save) or a trace .npz (Load)",
            style={"description_width": "100px"},
            layout={"width": "380px"},
        ).add_class("bclab-path")
        self.save = widgets.Button(description="Save", icon="save", tooltip="config, figures, trace and model")
        self.save.add_class("bclab-save")
        self.load = widgets.Button(description="Load trace", icon="folder-open", tooltip="show a saved trace.npz")
        self.load.add_class("bclab-load")
        self.question = widgets.HTML()
        self.yes = widgets.Button(button_style="warning").add_class("bclab-yes")
        self.no = widgets.Button(description="Cancel").add_class("bclab-no")
        self.confirm = widgets.HBox([self.question, self.yes, self.no], layout={"display": "none"})
        self.confirm.add_class("bclab-confirm")
        self._action: Callable[[], None] | None = None
        self.yes.on_click(lambda _b: self._answer(True))
        self.no.on_click(lambda _b: self._answer(False))
        self.box = widgets.VBox([widgets.HBox([self.path, self.save, self.load]), self.confirm])

    def ask(self, question: str, action: Callable[[], None], yes: str) -> None:
        """Shows `question`; `action()` runs if the user clicks the `yes` button."""
        self._action = action
        self.question.value = f'<span style="color:#b35900">{escape(question)}</span>'
        self.yes.description = yes
        self.confirm.layout.display = "flex"

    @property
    def asking(self) -> bool:
        return self._action is not None

    def dismiss(self) -> None:
        self._action = None
        self.confirm.layout.display = "none"

    def _answer(self, yes: bool) -> None:
        action = self._action
        self.dismiss()
        if yes and action is not None:
            action()


class LabFiles:
    """The lab's file commands. The lab provides `trace`, `runner`, `views`, `files` (a
    `FilePanel`), `save_folder`, `_own`, `export_config`, `import_config`, `_release` and `_say`."""

    trace: Trace | None
    runner: Any
    views: Any
    files: FilePanel
    save_folder: widgets.Text
    _own: Any
    _loaded: Trace | None

    def save_trace(self, path: str | os.PathLike) -> None:
        """Writes the trace on show to an .npz file (see `Trace.save`)."""
        if self.trace is None:
            raise ValueError("There is no trace to save: start a run with tracing 'scalars' or 'full', or load one.")
        self.trace.save(path)

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

    def save_packed(self, path: str | os.PathLike) -> int | None:
        """Writes the model with 1-bit binary kernels (`bclab.export_packed`) between two steps;
        returns the file's size, or None for a network that does not pack into bits (stochastic
        layers use their real weights at test time; a float network has no binary kernel)."""
        from bclab.core.layers import binary_layers
        from bclab.export.keras_model import export_packed

        with self.runner.hold() as trainer:
            if trainer is None:
                raise ValueError("There is no model to export: start a run first.")
            model = trainer.model
            layers = binary_layers(model)
            if not layers or any(layer.stochastic for layer in layers):
                return None
            return export_packed(model, path).file_bytes

    def save_all(self, folder: str | os.PathLike) -> list[str]:
        """Writes config.json, figures.html and, when they exist, trace.npz, model.keras and (a
        deterministic binary network) the 1-bit model.bclab into `folder` (made if missing);
        returns the absolute paths written. `saved_sizes` notes the models' sizes."""
        folder = absolute(folder)
        os.makedirs(folder, exist_ok=True)
        written = [os.path.join(folder, "config.json"), os.path.join(folder, "figures.html")]
        with open(written[0], "w", encoding="utf-8") as f:
            f.write(self.export_config())
        self.save_figures(written[1])
        if self.trace is not None:
            written.append(os.path.join(folder, "trace.npz"))
            self.save_trace(written[-1])
        self.saved_sizes = ""
        if self.runner.trainer is not None:
            keras_path, packed_path = os.path.join(folder, "model.keras"), os.path.join(folder, "model.bclab")
            self.save_model(keras_path)
            written.append(keras_path)
            packed = self.save_packed(packed_path)
            self.saved_sizes = f"model.keras {_megabytes(os.path.getsize(keras_path))}, "
            if packed is None:
                self.saved_sizes += "no 1-bit model.bclab: only a deterministic binary network packs into bits"
            else:
                written.append(packed_path)
                ratio = os.path.getsize(keras_path) / packed
                self.saved_sizes += f"model.bclab {_megabytes(packed)}, {ratio:.1f}x smaller"
        return written

    def _save_clicked(self) -> None:
        folder = absolute(self.save_folder.value)
        if os.path.isdir(folder) and os.listdir(folder):
            self.files.ask(f"{folder} already holds files; overwrite them?", self._save_to_path, yes="Overwrite")
        else:
            self._save_to_path()

    def _save_to_path(self) -> None:
        try:
            written = self.save_all(self.save_folder.value)
        except Exception as error:
            self._say(f"Not saved: {describe(error)}", error=True)
        else:
            sizes = f" ({self.saved_sizes})" if self.saved_sizes else ""
            self._say(
                f"Saved into {os.path.dirname(written[0])}: " + ", ".join(os.path.basename(p) for p in written) + sizes
            )

    def _load_clicked(self) -> None:
        path = absolute(self.save_folder.value)
        if os.path.isdir(path):
            path = os.path.join(path, "trace.npz")  # a folder that Save wrote
        if self.runner.trainer is not None:
            question = f"Loading {path} discards the current run (step {self.runner.trainer.global_step}); go on?"
            self.files.ask(question, lambda: self.load_trace(path, discard=True), yes="Discard run and load")
        else:
            self.load_trace(path)

    def load_trace(self, path: str | os.PathLike, discard: bool = False) -> Trace | None:
        """Shows a saved trace; its config goes into the controls. A run is discarded only with
        `discard=True` (the Load button asks first); otherwise the status line says so.

        A file that cannot be loaded (missing, corrupt, edited, hostile) is reported in the
        status line and None returned; the run and the views stay as they were.
        """
        path = absolute(path)
        if self.runner.trainer is not None and not discard:
            self._say(f"Not loaded: a run exists; Reset it first, or call load_trace({path!r}, discard=True).", True)
            return None
        try:
            trace = Trace.load(path)
        except TraceFileError as error:
            self._say(f"Trace not loaded: {error}", error=True)
            return None
        except Exception as error:  # Trace.load promises TraceFileError; never let the lab die of a file
            logger.exception("loading trace %r failed", path)
            self._say(f"Trace not loaded from {path}: {describe(error)}", error=True)
            return None
        if self.runner.trainer is not None or self.runner.active:
            self._release()
        self._loaded = trace
        saved = trace.meta.get("config")
        if isinstance(saved, dict) and self._own is None:
            try:
                self.import_config(RunConfig.from_dict(saved).to_json())
            except Exception:  # a trace from another version: the views still work
                logger.info("the config saved in %r is not this version's; controls unchanged", path, exc_info=True)
        self._say(f"Showing the trace loaded from {path} ({len(trace)} steps).")
        try:
            self.views.show_latest()
        except Exception as error:  # a figure that cannot show this trace: say so, keep the lab alive
            self._report_error("drawing the loaded trace", error)
        return trace


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB"
