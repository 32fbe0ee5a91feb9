"""Pure figure builders: a `bclab.trace.Trace` in, a plotly `Figure` out. No widgets, no framework.

Every view is a pair. `make_<view>_figure(trace=None, ...)` builds the figure with its fixed set
of traces, titles, axes and shapes (empty data when `trace` is None or holds nothing yet).
`update_<view>(fig, trace, layer, step)` writes new data into the EXISTING traces of `fig` (a
`go.Figure` or the lab's `go.FigureWidget(fig)`) with ONE `fig.plotly_update` call; it never adds
or removes traces, so a live widget gets one small message per update (only changed values are
sent). Histograms arrive pre-binned from the trace and are drawn as bars of counts on the
trace's fixed bins.

Why `plotly_update` rather than attribute writes inside `fig.batch_update()` (also one message):
those validate every array (~0.3 ms each) and resolve each dotted layout path (~0.5 ms), which
made an update of all views ~60 ms; `_write` takes about a quarter of that. Values are built
here, so they are valid already.

Lookups are forgiving: `layer=None` means the first layer, `step=None` the latest heavy step, a
step that thinning dropped is replaced by `trace.nearest_step(step)`, and data the trace lacks
(no histogram at that step, a scalar never logged, sample_size 0) gives empty traces. An unknown
layer name is a caller bug and raises `TraceLookupError`.

Vertical markers (the clip bounds -H/+H and the selected step) are layout shapes spanning the
subplot's height (`yref="y domain"`), so they need no data range. The `fig.data` index of every
trace is listed in each `make_*` docstring; the lab relies on it.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.basedatatypes import Undefined  # plotly's "leave this property as it is"
from plotly.subplots import make_subplots

from bclab.atomic import atomic_write
from bclab.trace.store import Trace, TraceLookupError

__all__ = [
    "MAX_POINTS",
    "SCALAR_PANELS",
    "UPDATE_LABEL",
    "downsample",
    "figures_to_html",
    "hard_sigmoid",
    "is_update_phase",
    "make_comparison_figure",
    "make_grads_figure",
    "make_hard_sigmoid_figure",
    "make_scalars_figure",
    "make_timeline_figure",
    "make_trajectories_figure",
    "make_weights_figure",
    "update_comparison",
    "update_grads",
    "update_hard_sigmoid",
    "update_scalars",
    "update_timeline",
    "update_trajectories",
    "update_weights",
]

MAX_POINTS = 2000  # most points per line sent to the browser; see `downsample`
SCALAR_PANELS = (  # (title, scalar name, model-level?) in fig.data order of the scalars view
    ("loss", "loss", True),
    ("accuracy", "accuracy", True),
    ("gradient norm", "grad_norm", False),
    ("update norm", "update_norm", False),
    ("flip ratio", "flip_ratio", False),
    ("clipped fraction", "clipped_fraction", False),
)
UPDATE_LABEL = "update_step (Keras 2: get_updates)"
_UPDATE_MARKS = ("apply_gradients", "update_step", "optimizer", "get_updates")
_COUNTERS = ("python_traces", "compiled_runs")
_BLUE, _RED, _GREY, _GREEN = "#1f77b4", "#d62728", "#7f7f7f", "#2ca02c"
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_EMPTY: tuple = ()
_SAMPLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # trace -> (key, W/Wb series)


# ---------------------------------------------------------------------------- helpers


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """`clip((x + 1) / 2, 0, 1)`, BinaryConnect's probability of +H (arXiv:1511.00363)."""
    return np.clip((np.asarray(x, np.float64) + 1.0) / 2.0, 0.0, 1.0)


def is_update_phase(phase: str) -> bool:
    """True for the optimizer's update phase (apply_gradients / update_step / optimizer)."""
    lowered = phase.lower()
    return any(mark in lowered for mark in _UPDATE_MARKS)


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Keeps every `ceil(n / (max_points - 1))`-th point (a plain stride, no averaging, so kept
    values are exact) and always the last, so the line reaches the newest step."""
    n = len(x)
    if n <= max_points:
        return x, y
    stride = math.ceil(n / (max_points - 1))
    keep = np.arange(0, n, stride)
    if keep[-1] != n - 1:
        keep = np.append(keep, n - 1)
    return x[keep], y[keep]


def _get(fn: Callable[..., Any], *args: Any, default: Any = None) -> Any:
    """`fn(*args)`, or `default` when the trace lacks that record (not for bad layer names)."""
    try:
        return fn(*args)
    except TraceLookupError:
        return default


def _layer(trace: Trace | None, layer: str | None):
    """The LayerInfo for `layer` (the first layer when None); None without a trace."""
    if trace is None:
        return None
    if layer is None:
        return trace.layers[0]
    for info in trace.layers:
        if info.name == layer:
            return info
    raise TraceLookupError(
        f"Received an invalid value for `layer`: {layer!r}. The trace has layers: {list(trace.layer_names)}"
    )


def _heavy_step(trace: Trace | None, step: int | None) -> int | None:
    """The retained heavy step to show for `step` (latest when None); None if there is none."""
    if trace is None or trace.latest_heavy_step() is None:
        return None
    return trace.latest_heavy_step() if step is None else _get(trace.nearest_step, int(step))


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


def _bars(trace: Trace | None, kind: str, layer: str | None, step: int | None) -> dict[str, Any]:
    """Bar properties of one histogram: x = bin centers, y = counts, width = bin widths."""
    found = None if step is None else _get(trace.histogram, kind, layer, step)
    if found is None:
        return {"x": _EMPTY, "y": _EMPTY, "width": None}
    edges, counts = found
    return {"x": (edges[:-1] + edges[1:]) / 2, "y": counts, "width": np.diff(edges)}


def _contiguous(value: Any) -> Any:
    return np.ascontiguousarray(value) if isinstance(value, np.ndarray) else value


def _write(
    fig: go.Figure,
    traces: Mapping[int, Mapping[str, Any]],
    layout: Mapping[str, Any] | None = None,
    vlines: Sequence[float | None] = (),
    notes: Mapping[int, Mapping[str, Any]] | None = None,
) -> None:
    """Writes trace properties, layout paths, shape x positions (None hides a line) and
    annotation properties in one `fig.plotly_update`. Shapes and annotations are replaced as
    whole lists (cheaper than one path per property), so their count never changes."""
    indexes = sorted(traces)
    keys = dict.fromkeys(key for i in indexes for key in traces[i])
    # The widget sends arrays as raw buffers, which must be C-contiguous: a column slice
    # (trajectories) otherwise fails in the comm layer and the whole update is lost.
    restyle = {key: [_contiguous(traces[i].get(key, Undefined)) for i in indexes] for key in keys}
    relayout = dict(layout or {})
    if vlines:
        shapes = [shape.to_plotly_json() for shape in fig.layout.shapes]  # deep copies
        for shape, x in zip(shapes, vlines, strict=False):
            shape["visible"] = x is not None
            if x is not None:
                shape["x0"] = shape["x1"] = x
        relayout["shapes"] = shapes
    if notes:
        annotations = [note.to_plotly_json() for note in fig.layout.annotations]
        for i, props in notes.items():
            annotations[i].update(props)
        relayout["annotations"] = annotations
    fig.plotly_update(restyle_data=restyle, relayout_data=relayout, trace_indexes=indexes)


def _vline(fig: go.Figure, x: float | None, row: int = 1, col: int = 1, color: str = _GREY) -> None:
    """Adds one vertical line shape spanning the subplot's height (hidden while x is None)."""
    fig.add_shape(
        type="line",
        x0=x or 0,
        x1=x or 0,
        y0=0,
        y1=1,
        yref="y domain",
        line={"color": color, "dash": "dash", "width": 1.5},
        visible=x is not None,
        row=row,
        col=col,
    )


def _where(info: Any, step: int | None) -> str:
    return "(no data yet)" if info is None or step is None else f"{info.name}, step {step}"


# ---------------------------------------------------------------------------- 1. weights


def make_weights_figure(trace: Trace | None = None, layer: str | None = None, step: int | None = None) -> go.Figure:
    """Real-weight histogram with the clip bounds, beside the binary weights' +H/-H counts.

    fig.data: [0] bar, counts of the "real" histogram (x = bin centers);
    [1] bar, x = ["-H", "+H"], y = [minus, plus] from `trace.binary_counts`.
    fig.layout.shapes: [0] vertical line at -H, [1] at +H (left subplot).
    """
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.75, 0.25], subplot_titles=("real weights W", "binary weights Wb")
    )
    fig.add_bar(name="W", marker_color=_BLUE, row=1, col=1)
    fig.add_bar(name="Wb", x=["-H", "+H"], marker_color=[_RED, _GREEN], row=1, col=2)
    _vline(fig, None, color=_RED)
    _vline(fig, None, color=_RED)
    fig.update_layout(showlegend=False, bargap=0, title_text="weights")
    fig.update_xaxes(title_text="W", row=1, col=1)
    fig.update_yaxes(title_text="count", row=1, col=1)
    update_weights(fig, trace, layer, step)
    return fig


def update_weights(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the layer's real histogram, ±H lines and binary counts at `step` into `fig`."""
    info, s = _layer(trace, layer), _heavy_step(trace, step)
    counts = None if s is None else _get(trace.binary_counts, info.name, s)
    _write(
        fig,
        {
            0: _bars(trace, "real", info and info.name, s),
            1: {"y": _EMPTY if counts is None else [counts[1], counts[0]]},
        },
        {"xaxis2.title.text": "" if info is None else f"H = {info.H:g}", "title.text": f"weights: {_where(info, s)}"},
        vlines=(info and -info.H, info and info.H),
    )


# ---------------------------------------------------------------------------- 2. hard sigmoid


def make_hard_sigmoid_figure(
    trace: Trace | None = None, layer: str | None = None, step: int | None = None
) -> go.Figure:
    """p = hard_sigmoid(W / H) with the tracked weights on it, beside the distribution of p.

    fig.data: [0] line, the curve over W in [-1.5H, 1.5H]; [1] markers, (W, p) of the tracked
    sample at the step; [2] bar, counts of the "prob" histogram (x = bin centers).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("p = hard_sigmoid(W / H)", "distribution of p"))
    fig.add_scatter(name="hard sigmoid", mode="lines", line_color=_GREY, row=1, col=1)
    fig.add_scatter(name="tracked weights", mode="markers", marker={"color": _BLUE, "size": 8}, row=1, col=1)
    fig.add_bar(name="p", marker_color=_BLUE, row=1, col=2)
    fig.update_layout(showlegend=False, bargap=0, title_text="hard sigmoid")
    fig.update_xaxes(title_text="W", row=1, col=1)
    fig.update_yaxes(title_text="p(+H)", range=[-0.05, 1.05], row=1, col=1)
    fig.update_xaxes(title_text="p", row=1, col=2)
    fig.update_yaxes(title_text="count", row=1, col=2)
    update_hard_sigmoid(fig, trace, layer, step)
    return fig


def update_hard_sigmoid(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the curve for the layer's H, the sample's (W, p) and the p histogram into `fig`.

    The markers use the recorded p; if a record has W but no p, p = hard_sigmoid(W / H).
    """
    info, s = _layer(trace, layer), _heavy_step(trace, step)
    sample = {} if s is None else _get(trace.sample_at, info.name, s, default={})
    w = sample.get("W")
    p = sample.get("p") if "p" in sample or w is None else hard_sigmoid(w / info.H)
    # The curve is piecewise linear, so its five corners draw it exactly.
    curve = (
        {"x": _EMPTY, "y": _EMPTY}
        if info is None
        else {"x": info.H * np.array([-1.5, -1.0, 0.0, 1.0, 1.5]), "y": [0.0, 0.0, 0.5, 1.0, 1.0]}
    )
    markers = {"x": _EMPTY, "y": _EMPTY} if w is None else {"x": w, "y": p}
    _write(
        fig,
        {0: curve, 1: markers, 2: _bars(trace, "prob", info and info.name, s)},
        {"title.text": f"hard sigmoid: {_where(info, s)}"},
    )


# ---------------------------------------------------------------------------- 3. scalars


def make_scalars_figure(trace: Trace | None = None, layer: str | None = None, step: int | None = None) -> go.Figure:
    """A 2 x 3 grid of per-step lines, in `SCALAR_PANELS` order.

    fig.data: [0] loss, [1] accuracy (model level), [2] grad_norm, [3] update_norm,
    [4] flip_ratio, [5] clipped_fraction (of the layer); each downsampled to `MAX_POINTS`.
    fig.layout.shapes: [i] the selected-step line in panel i (same order as fig.data).
    """
    fig = make_subplots(
        rows=2,
        cols=3,
        subplot_titles=[title for title, _, _ in SCALAR_PANELS],
        horizontal_spacing=0.07,
        vertical_spacing=0.15,
    )
    for i, (title, _, _) in enumerate(SCALAR_PANELS):
        row, col = divmod(i, 3)
        fig.add_scatter(name=title, mode="lines", line_color=_BLUE, row=row + 1, col=col + 1)
    for i in range(len(SCALAR_PANELS)):
        _vline(fig, None, row=i // 3 + 1, col=i % 3 + 1)
    fig.update_layout(showlegend=False, title_text="scalars", margin={"t": 60})
    update_scalars(fig, trace, layer, step)
    return fig


def update_scalars(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes each panel's line and moves the marker to `step` (default: the last step)."""
    info = _layer(trace, layer)
    lines = []
    for _, name, model_level in SCALAR_PANELS:
        found = None if trace is None else _get(trace.scalars, name, None if model_level else info.name)
        lines.append((_EMPTY, _EMPTY) if found is None else downsample(*found))
    marker = None if trace is None else (trace.last_step if step is None else step)
    _write(
        fig,
        {i: {"x": x, "y": y} for i, (x, y) in enumerate(lines)},
        {"title.text": "scalars" + ("" if info is None else f": {info.name}")},
        vlines=[marker] * len(lines),
    )


# ---------------------------------------------------------------------------- 4. timeline


def make_timeline_figure(trace: Trace | None = None, layer: str | None = None, step: int | None = None) -> go.Figure:
    """The call timeline of one step as horizontal bars, beside the trace/run counters.

    `layer` is unused (the timeline is model-wide); it keeps one signature for all views.

    fig.data: [0] bar (horizontal), every phase except the optimizer update (y = phase,
    base = start, x = duration, in ms; hover shows detail); [1] bar (horizontal), the update
    phases (`is_update_phase`) in red; [2] bar, x = ["python_traces", "compiled_runs"].
    fig.layout.annotations: [0], [1] the subplot titles; [2] the label `UPDATE_LABEL` at the
    first update bar (hidden when the step has none).
    """
    fig = make_subplots(rows=1, cols=2, column_widths=[0.8, 0.2], subplot_titles=("call timeline (ms)", "counters"))
    hover = "%{y}<br>start %{base:.3f} ms, %{x:.3f} ms<br>%{hovertext}<extra></extra>"
    fig.add_bar(name="phases", orientation="h", marker_color=_BLUE, hovertemplate=hover, row=1, col=1)
    fig.add_bar(name=UPDATE_LABEL, orientation="h", marker_color=_RED, hovertemplate=hover, row=1, col=1)
    # Log scale and printed values: 1 trace against thousands of runs is the point to see.
    fig.add_bar(name="counters", x=list(_COUNTERS), marker_color=[_GREY, _GREEN], textposition="outside", row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.add_annotation(
        text=UPDATE_LABEL,
        x=0,
        y=0,
        xref="x",
        yref="y",
        showarrow=True,
        arrowhead=2,
        ax=40,
        ay=-25,
        font={"color": _RED},
        visible=False,
    )
    fig.update_layout(showlegend=False, title_text="timeline", barmode="overlay", height=520)
    fig.update_yaxes(autorange="reversed", type="category", categoryorder="array", tickfont={"size": 9}, row=1, col=1)
    fig.update_xaxes(title_text="ms", row=1, col=1)
    update_timeline(fig, trace, layer, step)
    return fig


def update_timeline(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the events and counters of the heavy step nearest `step`; `layer` is unused."""
    s = _heavy_step(trace, step)
    events = [] if s is None else _get(trace.events, s, default=[])
    counters = {} if s is None else _get(trace.counters, s, default={})
    split = {False: [], True: []}
    for event in events:
        split[is_update_phase(event["phase"])].append(event)
    phases = list(dict.fromkeys(e["phase"] for e in events))
    bars = {
        i: {
            "y": [e["phase"] for e in group],
            "base": [1e3 * e["start"] for e in group],
            "x": [1e3 * e["duration"] for e in group],
            "hovertext": [e["detail"] for e in group],
        }
        for i, group in enumerate((split[False], split[True]))
    }
    values = [counters.get(name) for name in _COUNTERS] if counters else []
    bars[2] = {"y": values or _EMPTY, "text": [str(v) for v in values]}
    label: dict[str, Any] = {"visible": bool(split[True])}
    if split[True]:
        first = split[True][0]
        label.update(x=1e3 * (first["start"] + first["duration"]), y=first["phase"])
    _write(
        fig,
        bars,
        {"yaxis.categoryarray": phases, "title.text": "timeline" + ("" if s is None else f": step {s}")},
        notes={2: label},
    )


# ---------------------------------------------------------------------------- 5. trajectories


def make_trajectories_figure(
    trace: Trace | None = None, layer: str | None = None, step: int | None = None, n_tracked: int = 5
) -> go.Figure:
    """W and Wb over the heavy steps for the first `n_tracked` tracked weights of a layer.

    fig.data: [i] line, W of tracked weight i; [n_tracked + i] dashed step line, its Wb
    (i < n_tracked; same colour for a pair). fig.layout.shapes: [0] the selected-step line.
    fig.layout.annotations: [0] "no tracked weights in this trace" (shown when sample_size 0).
    """
    if isinstance(n_tracked, bool) or not isinstance(n_tracked, int) or n_tracked < 1:
        raise ValueError(
            f"Received an invalid value for `n_tracked`, expected a positive integer. Received: n_tracked={n_tracked!r}"
        )
    fig = make_subplots(rows=1, cols=1)  # a grid, so shapes can take row/col like elsewhere
    for field, dash, shape in (("W", "solid", "linear"), ("Wb", "dash", "hv")):
        for i in range(n_tracked):
            color = _PALETTE[i % len(_PALETTE)]
            fig.add_scatter(
                name=f"{field}[{i}]",
                mode="lines",
                legendgroup=str(i),
                line={"color": color, "dash": dash, "shape": shape},
            )
    _vline(fig, None)
    fig.add_annotation(
        text="no tracked weights in this trace",
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        visible=False,
    )
    fig.update_layout(title_text="trajectories", xaxis_title="step", yaxis_title="weight")
    update_trajectories(fig, trace, layer, step)
    return fig


def update_trajectories(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the W and Wb histories of the first tracked weights; marks `step`."""
    info, s = _layer(trace, layer), _heavy_step(trace, step)
    k = len(fig.data) // 2
    empty = (np.zeros(0, np.int64), np.zeros((0, k), np.float32))
    no_samples = trace is not None and trace.sample_size == 0
    series = {"W": empty, "Wb": empty} if trace is None or no_samples else _samples(trace, info.name)
    lines = {}
    for j, field in enumerate(("W", "Wb")):
        steps, values = series[field]
        for i in range(k):
            x, y = downsample(steps, values[:, i]) if i < values.shape[1] else (_EMPTY, _EMPTY)
            lines[j * k + i] = {"x": x, "y": y}
    _write(
        fig, lines, {"title.text": f"trajectories: {_where(info, s)}"}, vlines=[s], notes={0: {"visible": no_samples}}
    )


# ---------------------------------------------------------------------------- 6. grads


def make_grads_figure(trace: Trace | None = None, layer: str | None = None, step: int | None = None) -> go.Figure:
    """Histograms of a layer's gradients and of its applied updates at one step.

    fig.data: [0] bar, counts of the "grad" histogram; [1] bar, of the "update" histogram.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("gradient dC/dWb", "update ΔW"))
    fig.add_bar(name="grad", marker_color=_BLUE, row=1, col=1)
    fig.add_bar(name="update", marker_color=_GREEN, row=1, col=2)
    fig.update_layout(showlegend=False, bargap=0, title_text="gradients")
    fig.update_yaxes(title_text="count", row=1, col=1)
    update_grads(fig, trace, layer, step)
    return fig


def update_grads(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the layer's grad and update histograms at `step` into `fig`.

    Their bins are symmetric-log (equal ratios of magnitude), so each bin is drawn one unit
    wide at its index and the axis is labelled with the edge values."""
    info, s = _layer(trace, layer), _heavy_step(trace, step)
    layout = {"title.text": f"gradients: {_where(info, s)}"}
    bars = {}
    for i, kind in enumerate(("grad", "update")):
        bar = _bars(trace, kind, info and info.name, s)
        if bar["width"] is not None:
            edges = trace.bin_edges[kind]
            n = len(edges) - 1
            bar = {"x": np.arange(n) + 0.5, "y": bar["y"], "width": np.ones(n)}
            ticks = np.arange(0, n + 1, max(1, n // 8))
            axis = "xaxis" if i == 0 else "xaxis2"
            layout[f"{axis}.tickvals"] = ticks
            layout[f"{axis}.ticktext"] = [f"{edges[t]:.0e}" if edges[t] else "0" for t in ticks]
        bars[i] = bar
    _write(fig, bars, layout)


# ---------------------------------------------------------------------------- comparison


def make_comparison_figure(
    traces: Mapping[str, Trace], scalar: str = "loss", layer: str | None = None, step: int | None = None
) -> go.Figure:
    """One line per trace (e.g. deterministic vs stochastic) of one scalar over steps.

    fig.data: [i] the i-th trace of `traces`, in mapping order, named by its key.
    `layer=None` reads a model-level scalar. fig.layout.shapes: [0] the selected-step line.
    """
    fig = make_subplots(rows=1, cols=1)  # a grid, so shapes can take row/col like elsewhere
    for i, name in enumerate(traces):
        fig.add_scatter(name=str(name), mode="lines", line_color=_PALETTE[i % len(_PALETTE)])
    _vline(fig, None)
    fig.update_layout(xaxis_title="step", yaxis_title=scalar)
    update_comparison(fig, traces, scalar, layer, step)
    return fig


def update_comparison(
    fig: go.Figure, traces: Mapping[str, Trace], scalar: str = "loss", layer: str | None = None, step: int | None = None
) -> None:
    """Writes each trace's line of `scalar`; `traces` must have the figure's names, in order."""
    names = [str(name) for name in traces]
    if names != [t.name for t in fig.data]:
        raise ValueError(
            f"Received an invalid value for `traces`, expected the names the figure "
            f"was made with, {[t.name for t in fig.data]}; make a new figure to "
            f"compare other traces. Received: {names}"
        )
    lines = [_get(t.scalars, scalar, layer, default=(_EMPTY, _EMPTY)) for t in traces.values()]
    _write(
        fig,
        {i: dict(zip(("x", "y"), downsample(x, y), strict=True)) for i, (x, y) in enumerate(lines)},
        {"title.text": scalar + ("" if layer is None else f" ({layer})")},
        vlines=[step],
    )


# ---------------------------------------------------------------------------- HTML export


def figures_to_html(figs: Mapping[str, go.Figure], path: str | os.PathLike, title: str = "bclab") -> None:
    """Writes all figures to one self-contained HTML file that works offline.

    plotly.js is embedded once (with the first figure); each figure's div has id
    `bclab-<key>`. The page is written to a temp file beside `path`, then `os.replace`d onto it,
    so readers see the old file or the new one, never half of one.
    """
    if not figs:
        raise ValueError(
            "Received an invalid value for `figs`, expected a non-empty mapping of "
            f"name -> Figure. Received: figs={figs!r}"
        )
    parts = [
        f"<h2>{escape(str(key))}</h2>\n"
        + pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"bclab-{key}")
        for i, (key, fig) in enumerate(figs.items())
    ]
    html = (
        f'<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>{escape(title)}</title></head>\n'
        "<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n"
    )
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(html)
