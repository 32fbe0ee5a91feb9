"""What every view shares: trace lookups, the one-message figure write, markers, colours, downsampling.

Lookups are forgiving: `layer=None` means the first layer, `step=None` the latest heavy step, a
step that thinning dropped is replaced by `trace.nearest_step(step)`, and data the trace lacks
(no histogram at that step, a scalar never logged, sample_size 0) gives empty traces. An unknown
layer name is a caller bug and raises `TraceLookupError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.basedatatypes import Undefined  # plotly's "leave this property as it is"

from bclab.trace import LayerInfo, Trace, TraceLookupError
from bclab.validation import invalid_value

__all__ = [
    "BLUE",
    "EMPTY",
    "GREEN",
    "GREY",
    "MAX_POINTS",
    "PALETTE",
    "RED",
    "downsample",
    "heavy_step",
    "histogram_bars",
    "layer_info",
    "lookup",
    "vline",
    "where",
    "write",
]

MAX_POINTS = 2000  # most points per line sent to the browser; see `downsample`
BLUE, RED, GREY, GREEN = "#1f77b4", "#d62728", "#7f7f7f", "#2ca02c"
PALETTE = (BLUE, "#ff7f0e", GREEN, RED, "#9467bd", "#8c564b", "#e377c2", GREY, "#bcbd22", "#17becf")
EMPTY: tuple = ()


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


def lookup(fn: Callable[..., Any], *args: Any, default: Any = None) -> Any:
    """`fn(*args)`, or `default` when the trace lacks that record (not for bad layer names)."""
    try:
        return fn(*args)
    except TraceLookupError:
        return default


def layer_info(trace: Trace | None, layer: str | None) -> LayerInfo | None:
    """The LayerInfo for `layer` (the first layer when None); None without a trace."""
    if trace is None:
        return None
    if layer is None:
        return trace.layers[0]
    for info in trace.layers:
        if info.name == layer:
            return info
    raise TraceLookupError(*invalid_value("layer", layer, f"one of the trace's layers {list(trace.layer_names)}").args)


def heavy_step(trace: Trace | None, step: int | None) -> int | None:
    """The retained heavy step to show for `step` (latest when None); None if there is none."""
    if trace is None or trace.latest_heavy_step() is None:
        return None
    return trace.latest_heavy_step() if step is None else lookup(trace.nearest_step, int(step))


def histogram_bars(trace: Trace | None, kind: str, layer: str | None, step: int | None) -> dict[str, Any]:
    """Bar properties of one histogram: x = bin centers, y = counts, width = bin widths."""
    found = None if step is None else lookup(trace.histogram, kind, layer, step)
    if found is None:
        return {"x": EMPTY, "y": EMPTY, "width": None}
    edges, counts = found
    return {"x": (edges[:-1] + edges[1:]) / 2, "y": counts, "width": np.diff(edges)}


def where(info: LayerInfo | None, step: int | None) -> str:
    """The "layer, step" part of a view's title."""
    return "(no data yet)" if info is None or step is None else f"{info.name}, step {step}"


def _contiguous(value: Any) -> Any:
    return np.ascontiguousarray(value) if isinstance(value, np.ndarray) else value


def write(
    fig: go.Figure,
    traces: Mapping[int, Mapping[str, Any]],
    layout: Mapping[str, Any] | None = None,
    vlines: Sequence[float | None] = (),
    notes: Mapping[int, Mapping[str, Any]] | None = None,
) -> None:
    """Writes trace properties, layout paths, shape x positions (None hides a line) and
    annotation properties in one `fig.plotly_update`. Shapes and annotations are replaced as
    whole lists (cheaper than one path per property), so their count never changes.

    Why `plotly_update` rather than attribute writes inside `fig.batch_update()` (also one
    message): those validate every array (~0.3 ms each) and resolve each dotted layout path
    (~0.5 ms), which made an update of all views ~60 ms; this takes about a quarter of that.
    The views build their values, so they are valid already.
    """
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


def vline(fig: go.Figure, x: float | None, row: int = 1, col: int = 1, color: str = GREY) -> None:
    """Adds one vertical line shape spanning the subplot's height (`yref="y domain"`, so it
    needs no data range), hidden while x is None."""
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
