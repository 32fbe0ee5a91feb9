"""The views over steps: the per-step scalars, the tracked weights' trajectories, runs compared.

Every line is downsampled to `MAX_POINTS` (see `bclab.plots.common.downsample`).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bclab.plots.common import BLUE, EMPTY, PALETTE, downsample, heavy_step, layer_info, lookup, vline, where, write
from bclab.trace import Trace
from bclab.trace.schema import ACCURACY, CLIPPED_FRACTION, FLIP_RATIO, GRAD_NORM, LOSS, UPDATE_NORM
from bclab.validation import check_positive_int, invalid_value

__all__ = [
    "SCALAR_PANELS",
    "make_comparison_figure",
    "make_scalars_figure",
    "make_trajectories_figure",
    "update_comparison",
    "update_scalars",
    "update_trajectories",
]

SCALAR_PANELS = (  # (title, scalar name, model-level?) in fig.data order of the scalars view
    ("loss", LOSS, True),
    ("accuracy", ACCURACY, True),
    ("gradient norm", GRAD_NORM, False),
    ("update norm", UPDATE_NORM, False),
    ("flip ratio", FLIP_RATIO, False),
    ("clipped fraction", CLIPPED_FRACTION, False),
)
_SAMPLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # trace -> (key, W/Wb series)


# ---------------------------------------------------------------------------- scalars

HEIGHT = 300  # every view's height in px; the width follows its container (autosize)
GREEN_DARK = "#2ca02c"


def make_scalars_figure(
    trace: Trace | None = None,
    layer: str | None = None,
    step: int | None = None,
    validation: Sequence[tuple[int, float, float]] | None = None,
) -> go.Figure:
    """A 2 x 3 grid of per-step lines, in `SCALAR_PANELS` order, with the validation results.

    fig.data: [0] loss, [1] accuracy (model level, per training batch), [2] grad_norm,
    [3] update_norm, [4] flip_ratio, [5] clipped_fraction (of the layer); [6] validation loss
    and [7] validation accuracy at each epoch's end (markers; see `update_scalars`).
    fig.layout.shapes: [i] the selected-step line in panel i (i < 6, same order as fig.data).
    """
    titles = [
        "loss (batch ─, validation ●)" if name == LOSS else "accuracy (batch ─, val. ●)" if name == ACCURACY else title
        for title, name, _ in SCALAR_PANELS
    ]
    fig = make_subplots(rows=2, cols=3, subplot_titles=titles, horizontal_spacing=0.08, vertical_spacing=0.2)
    for i, (title, _, _) in enumerate(SCALAR_PANELS):
        row, col = divmod(i, 3)
        fig.add_scatter(name=title, mode="lines", line_color=BLUE, row=row + 1, col=col + 1)
    for i in range(len(SCALAR_PANELS)):
        vline(fig, None, row=i // 3 + 1, col=i % 3 + 1)
    for col, name in ((1, "validation loss"), (2, "validation accuracy")):
        fig.add_scatter(
            name=name, mode="lines+markers", line={"color": GREEN_DARK, "width": 1}, marker={"size": 7}, row=1, col=col
        )
    fig.update_layout(showlegend=False, title_text="scalars", height=HEIGHT, margin={"t": 70, "r": 10, "b": 30})
    fig.update_annotations(font_size=12)
    update_scalars(fig, trace, layer, step, validation)
    return fig


def update_scalars(
    fig: go.Figure,
    trace: Trace | None,
    layer: str | None = None,
    step: int | None = None,
    validation: Sequence[tuple[int, float, float]] | None = None,
) -> None:
    """Writes each panel's line and moves the marker to `step` (default: the last step).

    `validation`: (step, loss, accuracy) at each epoch's end, e.g. from a Trainer's history
    (None or empty: no validation points; a loaded trace has none).
    """
    info = layer_info(trace, layer)
    lines = []
    for _, name, model_level in SCALAR_PANELS:
        found = None if trace is None else lookup(trace.scalars, name, None if model_level else info.name)
        lines.append((EMPTY, EMPTY) if found is None else downsample(*found))
    marker = None if trace is None else (trace.last_step if step is None else step)
    points = list(validation or []) if trace is not None else []
    data = {i: {"x": x, "y": y} for i, (x, y) in enumerate(lines)}
    data[6] = {"x": [p[0] for p in points], "y": [p[1] for p in points]}
    data[7] = {"x": [p[0] for p in points], "y": [p[2] for p in points]}
    title = "per step · loss, accuracy: the model" + ("" if info is None else f" · the rest: layer {info.name}")
    write(fig, data, {"title.text": title}, vlines=[marker] * len(lines))


# ---------------------------------------------------------------------------- trajectories


def _samples(trace: Trace, layer: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The W and Wb histories of a layer, cached until the trace changes (`len(trace)` grows):
    `Trace.sample` walks every heavy step in Python (~3 ms a field at 500 steps), and moving the
    step slider over a paused run should not repeat that."""
    key = (len(trace), layer)
    cached = _SAMPLES.get(trace)
    if cached is None or cached[0] != key:
        cached = (key, {field: trace.sample(layer, field) for field in ("W", "Wb")})
        _SAMPLES[trace] = cached
    return cached[1]


def make_trajectories_figure(
    trace: Trace | None = None, layer: str | None = None, step: int | None = None, n_tracked: int = 5
) -> go.Figure:
    """W and Wb over the heavy steps for the first `n_tracked` tracked weights of a layer.

    fig.data: [i] line, W of tracked weight i; [n_tracked + i] dashed step line, its Wb
    (i < n_tracked; same colour for a pair). fig.layout.shapes: [0] the selected-step line.
    fig.layout.annotations: [0] "no tracked weights in this trace" (shown when sample_size 0).
    """
    n_tracked = check_positive_int("n_tracked", n_tracked)
    fig = make_subplots(rows=1, cols=1)  # a grid, so shapes can take row/col like elsewhere
    for field, dash, shape in (("W", "solid", "linear"), ("Wb", "dash", "hv")):
        for i in range(n_tracked):
            color = PALETTE[i % len(PALETTE)]
            fig.add_scatter(
                name=f"{field}[{i}]",
                mode="lines",
                legendgroup=str(i),
                line={"color": color, "dash": dash, "shape": shape},
            )
    vline(fig, None)
    fig.add_annotation(
        text="no tracked weights in this trace",
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        visible=False,
    )
    fig.update_layout(
        title_text="trajectories",
        xaxis_title="step",
        yaxis_title="weight",
        height=HEIGHT,
        margin={"t": 60, "r": 10},
        legend={"font": {"size": 10}},
    )
    update_trajectories(fig, trace, layer, step)
    return fig


def update_trajectories(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the W and Wb histories of the first tracked weights; marks `step`."""
    info, s = layer_info(trace, layer), heavy_step(trace, step)
    k = len(fig.data) // 2
    empty = (np.zeros(0, np.int64), np.zeros((0, k), np.float32))
    no_samples = trace is not None and trace.sample_size == 0
    series = {"W": empty, "Wb": empty} if trace is None or no_samples else _samples(trace, info.name)
    lines = {}
    for j, field in enumerate(("W", "Wb")):
        steps, values = series[field]
        for i in range(k):
            x, y = downsample(steps, values[:, i]) if i < values.shape[1] else (EMPTY, EMPTY)
            lines[j * k + i] = {"x": x, "y": y}
    write(fig, lines, {"title.text": f"trajectories: {where(info, s)}"}, vlines=[s], notes={0: {"visible": no_samples}})


# ---------------------------------------------------------------------------- comparison


def make_comparison_figure(
    traces: Mapping[str, Trace], scalar: str = LOSS, layer: str | None = None, step: int | None = None
) -> go.Figure:
    """One line per trace (e.g. deterministic vs stochastic) of one scalar over steps.

    fig.data: [i] the i-th trace of `traces`, in mapping order, named by its key.
    `layer=None` reads a model-level scalar. fig.layout.shapes: [0] the selected-step line.
    """
    fig = make_subplots(rows=1, cols=1)  # a grid, so shapes can take row/col like elsewhere
    for i, name in enumerate(traces):
        fig.add_scatter(name=str(name), mode="lines", line_color=PALETTE[i % len(PALETTE)])
    vline(fig, None)
    fig.update_layout(
        xaxis_title="step",
        yaxis_title=scalar,
        height=HEIGHT,
        margin={"t": 80, "r": 10},
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
    )
    update_comparison(fig, traces, scalar, layer, step)
    return fig


def update_comparison(
    fig: go.Figure, traces: Mapping[str, Trace], scalar: str = LOSS, layer: str | None = None, step: int | None = None
) -> None:
    """Writes each trace's line of `scalar`; `traces` must have the figure's names, in order."""
    names = [str(name) for name in traces]
    shown = [t.name for t in fig.data]
    if names != shown:
        expected = f"the names the figure was made with, {shown} (make a new figure to compare other traces)"
        raise invalid_value("traces", names, expected)
    lines = [lookup(t.scalars, scalar, layer, default=(EMPTY, EMPTY)) for t in traces.values()]
    write(
        fig,
        {i: dict(zip(("x", "y"), downsample(x, y), strict=True)) for i, (x, y) in enumerate(lines)},
        {"title.text": scalar + ("" if layer is None else f" ({layer})")},
        vlines=[step],
    )
