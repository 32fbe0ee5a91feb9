"""The lab's six live views and the controls that choose what they show: layer, step, follow latest.

`Views.refresh` is the one place the figures change: it points the layer selector and the step
slider at the trace on show and calls each `bclab.plots.update_*` (one `plotly_update` message per
figure), at most once per `REFRESH_S` unless forced. It runs in the kernel thread (a user's
change) or in the run's worker thread (progress), so it holds the `Guard`'s lock.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from bclab import plots
from bclab.trace import Trace
from bclab.train.runner import REFRESH_S

__all__ = ["VIEWS", "Guard", "Views"]

VIEWS = ("weights", "hard_sigmoid", "scalars", "timeline", "trajectories", "grads")
_MAKERS = {name: getattr(plots, f"make_{name}_figure") for name in VIEWS}
_UPDATERS = {name: getattr(plots, f"update_{name}") for name in VIEWS}


class Guard:
    """One lock for the lab's own widget changes, and a per-thread mark that a change is one.

    Observers return at once while `quiet_here` is true: the change came from the lab, not the
    user. Per thread, because a user's change handled in the kernel thread must not be ignored
    while the worker thread is moving the slider at the same moment.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._local = threading.local()

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Widget changes made inside (by this thread) are the lab's own."""
        with self.lock:
            previous, self._local.quiet = self.quiet_here, True
            try:
                yield
            finally:
                self._local.quiet = previous

    @property
    def quiet_here(self) -> bool:
        """True inside `quiet()` in the calling thread."""
        return getattr(self._local, "quiet", False)


class Views:
    """One `go.FigureWidget` per name in `VIEWS` (`figures`, laid out in `grid`) and, in
    `navigation`, the layer selector, the step slider (`history`) and the "follow latest" box.

    Args:
        current_trace: Returns the trace on show (None when there is none).
        guard: The lab's `Guard`, shared with its other widgets.
        on_error: Called with what failed and the exception when a user's change of the selector,
            the slider or the box raises (ipywidgets would only log it); default: raise.
    """

    def __init__(
        self,
        current_trace: Callable[[], Trace | None],
        guard: Guard,
        on_error: Callable[[str, Exception], None] | None = None,
    ):
        self._current_trace = current_trace
        self._guard = guard
        self._on_error = on_error
        self._bound: Trace | None = None  # the trace the layer selector and slider describe
        self._last_refresh = 0.0
        self.figures = {name: go.FigureWidget(_MAKERS[name]()) for name in VIEWS}
        self.layer_selector = widgets.Dropdown(description="layer", options=[])
        self.history = widgets.IntSlider(description="step", min=0, max=0, layout={"width": "420px"})
        self.follow = widgets.Checkbox(description="follow latest", value=True, indent=False)
        self.layer_selector.observe(self._reporting("showing the layer", self._on_layer), names="value")
        self.history.observe(self._reporting("showing the step", self._on_history), names="value")
        self.follow.observe(self._reporting("following the latest step", self._on_follow), names="value")
        self.navigation = widgets.HBox([self.layer_selector, self.history, self.follow])
        cells = []
        for name, fig in self.figures.items():
            fig.add_class(f"bclab-fig-{name}")
            cells.append(widgets.Box([fig], layout={"min_width": "0"}))
        # One column: plotly figures are 700 px wide by default and were cut off in half-width cells.
        self.grid = widgets.GridBox(cells, layout={"grid_template_columns": "minmax(0, 1fr)"})

    def show_latest(self) -> None:
        """Ticks "follow latest" and redraws at the newest step."""
        with self._guard.quiet():
            self.follow.value = True
        self.refresh(force=True)

    def to_html(self, path: str | os.PathLike) -> None:
        """Writes the figures, as shown, to one offline HTML file (see `bclab.plots.figures_to_html`)."""
        with self._guard.lock:
            plots.figures_to_html(self.figures, path)

    def refresh(self, force: bool = False) -> None:
        """Points the selector and slider at the trace on show and redraws every view (at the
        newest step when following, else at the slider's step)."""
        now = time.monotonic()
        if not force and now - self._last_refresh < REFRESH_S:
            return
        with self._guard.lock:
            self._last_refresh = now
            trace = self._current_trace()
            self._bind(trace)
            if trace is None:
                layer, step = None, None
            else:
                layer, step = self.layer_selector.value, None if self.follow.value else self.history.value
            for name, fig in self.figures.items():
                _UPDATERS[name](fig, trace, layer, step)

    def _bind(self, trace: Trace | None) -> None:
        """Layer names and slider range of `trace`; a new trace starts at its first layer."""
        with self._guard.quiet():
            if trace is not self._bound:
                self._bound = trace
                names = list(trace.layer_names) if trace is not None else []
                self.layer_selector.options = names
                self.layer_selector.value = names[0] if names else None
                self.history.value = 0
            last = None if trace is None else trace.last_step
            self.history.max = last or 0
            if self.follow.value:
                self.history.value = last or 0
            self.history.disabled = last is None

    def _reporting(self, what: str, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        def reporting(change: Any) -> None:
            try:
                handler(change)
            except Exception as error:
                if self._on_error is None:
                    raise
                self._on_error(what, error)

        return reporting

    def _on_layer(self, _change: Any) -> None:
        if not self._guard.quiet_here:
            self.refresh(force=True)

    def _on_history(self, _change: Any) -> None:
        if self._guard.quiet_here:
            return
        with self._guard.quiet():
            self.follow.value = False  # the user picked a step: stay there
        self.refresh(force=True)

    def _on_follow(self, change: Any) -> None:
        if not self._guard.quiet_here and change["new"]:
            self.refresh(force=True)
