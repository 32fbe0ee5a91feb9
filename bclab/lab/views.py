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
WIDE = ("scalars", "timeline")  # views that take a whole row of the grid
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
    `navigation`, the layer selector, the step slider (`history`) with one-step buttons
    (`back`, `forward`), the "follow latest" box and `position`, which says which step is on show.

    One numbering everywhere: a step is the trace's step number (0 for the first batch), in the
    slider, the figure titles, `position` and the lab's status line ("last step 422").

    A new trace on show (a new run after Reset or Start, a loaded file) always starts followed:
    the views move with the run until the user picks a step, and `position` then reads "viewing
    step X of Y, not following".

    The grid is responsive: the narrow views sit two in a row where each can be at least
    `MIN_COLUMN` wide, one otherwise; the scalars and the timeline take a whole row. Figures have no fixed width
    (plotly autosize), so each fills its cell.

    Args:
        current_trace: Returns the trace on show (None when there is none).
        guard: The lab's `Guard`, shared with its other widgets.
        on_error: Called with what failed and the exception when a user's change of the selector,
            the slider or the box raises (ipywidgets would only log it); default: raise.
        validation: Returns the validation results to draw on the scalars view, as (step, loss,
            accuracy) tuples (default: none).
    """

    MIN_COLUMN = "420px"

    def __init__(
        self,
        current_trace: Callable[[], Trace | None],
        guard: Guard,
        on_error: Callable[[str, Exception], None] | None = None,
        validation: Callable[[], list] | None = None,
    ):
        self._current_trace = current_trace
        self._validation = validation or list
        self._guard = guard
        self._on_error = on_error
        self._bound: Trace | None = None  # the trace the layer selector and slider describe
        self._last_refresh = 0.0
        # autosize: plotly.js otherwise draws 700 px wide whatever the cell (its default is off)
        self.figures = {name: go.FigureWidget(_MAKERS[name]().update_layout(autosize=True)) for name in VIEWS}
        self.layer_selector = widgets.Dropdown(description="layer", options=[], layout={"width": "180px"})
        self.layer_selector.style.description_width = "40px"
        self.history = widgets.IntSlider(
            description="step", min=0, max=0, readout=True, continuous_update=False, layout={"flex": "1 1 auto"}
        )
        self.history.style.description_width = "35px"
        self.back = widgets.Button(icon="step-backward", tooltip="one step back", layout={"width": "36px"})
        self.forward = widgets.Button(icon="step-forward", tooltip="one step forward", layout={"width": "36px"})
        self.follow = widgets.Checkbox(description="follow latest", value=True, indent=False, layout={"width": "110px"})
        self.position = widgets.HTML().add_class("bclab-position")
        self.layer_selector.observe(self._reporting("showing the layer", self._on_layer), names="value")
        self.history.observe(self._reporting("showing the step", self._on_history), names="value")
        self.follow.observe(self._reporting("following the latest step", self._on_follow), names="value")
        self.back.on_click(lambda _b: self._reporting("stepping back", lambda _c: self._nudge(-1))(None))
        self.forward.on_click(lambda _b: self._reporting("stepping forward", lambda _c: self._nudge(1))(None))
        self.navigation = widgets.HBox(
            [self.layer_selector, self.back, self.history, self.forward, self.follow, self.position],
            layout={"width": "100%", "align_items": "center"},
        ).add_class("bclab-navigation")
        cells = {}
        for name, fig in self.figures.items():
            fig.add_class(f"bclab-fig-{name}")
            cells[name] = widgets.VBox([fig], layout={"min_width": "0"}).add_class(
                "bclab-cell"
            )  # a column: the figure stretches
        pair = {
            "grid_template_columns": f"repeat(auto-fit, minmax(min({self.MIN_COLUMN}, 100%), 1fr))",
            "grid_gap": "6px",
        }
        rows: list[widgets.Widget] = []
        for name in VIEWS:  # consecutive narrow views share a row of the grid
            if name in WIDE:
                rows.append(cells[name])
            elif rows and isinstance(rows[-1], widgets.GridBox) and len(rows[-1].children) < 2:
                rows[-1].children = (*rows[-1].children, cells[name])
            else:
                rows.append(widgets.GridBox([cells[name]], layout=pair))
        self.grid = widgets.VBox(rows, layout={"width": "100%"}).add_class("bclab-grid")
        self._sync_position()

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
                if name == "scalars":
                    plots.update_scalars(fig, trace, layer, step, self._validation() if trace is not None else None)
                else:
                    _UPDATERS[name](fig, trace, layer, step)
            self._sync_position()

    def _bind(self, trace: Trace | None) -> None:
        """Layer names and slider range of `trace`; a new trace starts at its first layer, followed."""
        with self._guard.quiet():
            if trace is not self._bound:
                self._bound = trace
                names = list(trace.layer_names) if trace is not None else []
                self.layer_selector.options = names
                self.layer_selector.value = names[0] if names else None
                self.history.value = 0
                self.follow.value = True  # a new run (or file) is followed until the user picks a step
            last = None if trace is None else trace.last_step
            self.history.max = last or 0
            if self.follow.value:
                self.history.value = last or 0
            self.history.disabled = last is None
            self.back.disabled = self.forward.disabled = last is None

    def _sync_position(self) -> None:
        trace = self._bound
        last = None if trace is None else trace.last_step
        if last is None:
            text = "no steps yet"
        elif self.follow.value:
            text = f"viewing step <b>{last}</b> of {last}, following the run"
        else:
            text = f'<span style="color:#b35900">viewing step <b>{self.history.value}</b> of {last}, <b>not following</b></span>'
        self.position.value = f'<span style="font-size:90%;white-space:nowrap">{text}</span>'

    def _nudge(self, delta: int) -> None:
        """One step back or forward (leaves "follow latest", like moving the slider)."""
        if self.history.disabled:
            return
        target = min(self.history.max, max(self.history.min, self.history.value + delta))
        with self._guard.quiet():
            self.follow.value = False
            self.history.value = target
        self.refresh(force=True)

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
        if self._guard.quiet_here:
            return
        if change["new"]:
            self.refresh(force=True)
        else:
            self._sync_position()
