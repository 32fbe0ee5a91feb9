"""`bclab.LiveTrace`: the step trace of your own `model.fit`, with the lab's views live below the cell.

    model.fit(x, y, callbacks=[bclab.LiveTrace()])

Recording is `bclab.train.callback.TraceCallback`'s (any compiled model, loss, metrics and
optimizer; see there). With `show` (default: inside a notebook) the lab's views (`bclab.lab.views`)
and a status line are displayed when `fit` starts and redrawn at most once per `REFRESH_S` while it
runs. `fit` blocks the cell, but a kernel sends widget updates while a cell runs (it only cannot
receive them), so the views move during `fit`; the layer selector and step slider answer once the
cell has finished.
"""

from __future__ import annotations

import os
import sys

import ipywidgets as widgets

from bclab.lab.views import Guard, Views
from bclab.train.callback import TraceCallback
from bclab.train.histograms import HIST_SUBSET
from bclab.validation import check_flag

__all__ = ["LiveTrace", "in_notebook"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where widgets can show)."""
    shell = sys.modules.get("IPython")
    ipython = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return ipython is not None and getattr(ipython, "kernel", None) is not None


class LiveTrace(TraceCallback):
    """A Keras callback that records bclab's step trace of `fit` and, with `show`, shows it live.

    Args:
        level: "scalars" or "full" (`TraceCallback`).
        show: display the views below the cell (default: True inside a notebook).
        save_to: a `.npz` path the trace is saved to at the end of every `fit`, or None.
        sample_size: tracked weights per kernel layer (level "full").
        seed: chooses the tracked weights.
        hist_subset: at most this many weights per layer in the histograms.

    After `fit`: `callback.trace` (a `bclab.Trace`: `summary()`, `save`, TensorBoard export),
    `callback.history` (each epoch's logs, validation included), `callback.widget` (the views).
    """

    def __init__(
        self,
        level: str = "full",
        *,
        show: bool | None = None,
        save_to: str | os.PathLike | None = None,
        sample_size: int = 256,
        seed: int = 0,
        hist_subset: int = HIST_SUBSET,
    ):
        super().__init__(level, save_to=save_to, sample_size=sample_size, seed=seed, hist_subset=hist_subset)
        self.show = in_notebook() if show is None else check_flag("show", show)
        self.views: Views | None = None
        self.widget: widgets.Widget | None = None
        self._status = widgets.HTML()
        if self.show:
            self.listeners.append(self._on_event)

    def _on_event(self, _callback: TraceCallback, event: str) -> None:
        if event == "train_begin" and self.views is None:
            self._build()
            if in_notebook():  # elsewhere `display` would print the widget's repr; `widget` is there to embed
                from IPython.display import display

                display(self.widget)
        if self.views is None:
            return
        self._status.value = self._status_text(event)
        self.views.refresh(force=event != "batch_end")

    def _build(self) -> None:
        self.views = Views(lambda: self.trace, Guard(), on_error=self._on_view_error)
        self.widget = widgets.VBox([self._status, self.views.navigation, self.views.grid], layout={"width": "100%"})
        self.widget.add_class("bclab-live")

    def _status_text(self, event: str) -> str:
        trace, probe = self.trace, self.probe
        if trace is None or probe is None:
            return "<b>LiveTrace</b>: waiting for fit"
        state = "fit finished" if event == "train_end" else "fit running"
        last = trace.last_step
        counters = trace.counters(last) if last is not None else {}
        counts = ", ".join(f"{name} {value}" for name, value in counters.items())
        return (
            f"<b>LiveTrace</b> of <code>{probe.model.name}</code> ({probe.mode}, "
            f"{type(probe.inner_optimizer).__name__}): {state}, step {last if last is not None else '-'}, "
            f"epoch {self._epoch}; {counts}"
        )

    def _on_view_error(self, what: str, error: Exception) -> None:
        self._status.value = f"<b>LiveTrace</b>: error while {what}: {type(error).__name__}: {error}"
