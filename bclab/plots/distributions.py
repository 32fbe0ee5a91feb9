"""The views of one layer at one step: its weights, their hard-sigmoid probabilities, its gradients.

Histograms arrive pre-binned from the trace and are drawn as bars of counts on the trace's
fixed bins (see `bclab.plots.common.histogram_bars`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bclab.plots.common import (
    BLUE,
    EMPTY,
    GREEN,
    GREY,
    RED,
    heavy_step,
    histogram_bars,
    layer_info,
    lookup,
    vline,
    where,
    write,
)
from bclab.trace import Trace

__all__ = [
    "hard_sigmoid",
    "make_grads_figure",
    "make_hard_sigmoid_figure",
    "make_weights_figure",
    "update_grads",
    "update_hard_sigmoid",
    "update_weights",
]


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """`clip((x + 1) / 2, 0, 1)`, BinaryConnect's probability of +H (arXiv:1511.00363)."""
    return np.clip((np.asarray(x, np.float64) + 1.0) / 2.0, 0.0, 1.0)


# ---------------------------------------------------------------------------- weights


def make_weights_figure(trace: Trace | None = None, layer: str | None = None, step: int | None = None) -> go.Figure:
    """Real-weight histogram with the clip bounds, beside the binary weights' +H/-H counts.

    fig.data: [0] bar, counts of the "real" histogram (x = bin centers);
    [1] bar, x = ["-H", "+H"], y = [minus, plus] from `trace.binary_counts`.
    fig.layout.shapes: [0] vertical line at -H, [1] at +H (left subplot).
    """
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.75, 0.25], subplot_titles=("real weights W", "binary weights Wb")
    )
    fig.add_bar(name="W", marker_color=BLUE, row=1, col=1)
    fig.add_bar(name="Wb", x=["-H", "+H"], marker_color=[RED, GREEN], row=1, col=2)
    vline(fig, None, color=RED)
    vline(fig, None, color=RED)
    fig.update_layout(showlegend=False, bargap=0, title_text="weights")
    fig.update_xaxes(title_text="W", row=1, col=1)
    fig.update_yaxes(title_text="count", row=1, col=1)
    update_weights(fig, trace, layer, step)
    return fig


def update_weights(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the layer's real histogram, ±H lines and binary counts at `step` into `fig`."""
    info, s = layer_info(trace, layer), heavy_step(trace, step)
    counts = None if s is None else lookup(trace.binary_counts, info.name, s)
    write(
        fig,
        {
            0: histogram_bars(trace, "real", info and info.name, s),
            1: {"y": EMPTY if counts is None else [counts[1], counts[0]]},
        },
        {"xaxis2.title.text": "" if info is None else f"H = {info.H:g}", "title.text": f"weights: {where(info, s)}"},
        vlines=(info and -info.H, info and info.H),
    )


# ---------------------------------------------------------------------------- hard sigmoid


def make_hard_sigmoid_figure(
    trace: Trace | None = None, layer: str | None = None, step: int | None = None
) -> go.Figure:
    """p = hard_sigmoid(W / H) with the tracked weights on it, beside the distribution of p.

    fig.data: [0] line, the curve over W in [-1.5H, 1.5H]; [1] markers, (W, p) of the tracked
    sample at the step; [2] bar, counts of the "prob" histogram (x = bin centers).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("p = hard_sigmoid(W / H)", "distribution of p"))
    fig.add_scatter(name="hard sigmoid", mode="lines", line_color=GREY, row=1, col=1)
    fig.add_scatter(name="tracked weights", mode="markers", marker={"color": BLUE, "size": 8}, row=1, col=1)
    fig.add_bar(name="p", marker_color=BLUE, row=1, col=2)
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
    info, s = layer_info(trace, layer), heavy_step(trace, step)
    sample = {} if s is None else lookup(trace.sample_at, info.name, s, default={})
    w = sample.get("W")
    p = sample.get("p") if "p" in sample or w is None else hard_sigmoid(w / info.H)
    # The curve is piecewise linear, so its five corners draw it exactly.
    curve = (
        {"x": EMPTY, "y": EMPTY}
        if info is None
        else {"x": info.H * np.array([-1.5, -1.0, 0.0, 1.0, 1.5]), "y": [0.0, 0.0, 0.5, 1.0, 1.0]}
    )
    markers = {"x": EMPTY, "y": EMPTY} if w is None else {"x": w, "y": p}
    write(
        fig,
        {0: curve, 1: markers, 2: histogram_bars(trace, "prob", info and info.name, s)},
        {"title.text": f"hard sigmoid: {where(info, s)}"},
    )


# ---------------------------------------------------------------------------- gradients


def make_grads_figure(trace: Trace | None = None, layer: str | None = None, step: int | None = None) -> go.Figure:
    """Histograms of a layer's gradients and of its applied updates at one step.

    fig.data: [0] bar, counts of the "grad" histogram; [1] bar, of the "update" histogram.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("gradient dC/dWb", "update ΔW"))
    fig.add_bar(name="grad", marker_color=BLUE, row=1, col=1)
    fig.add_bar(name="update", marker_color=GREEN, row=1, col=2)
    fig.update_layout(showlegend=False, bargap=0, title_text="gradients")
    fig.update_yaxes(title_text="count", row=1, col=1)
    update_grads(fig, trace, layer, step)
    return fig


def update_grads(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the layer's grad and update histograms at `step` into `fig`.

    Their bins are symmetric-log (equal ratios of magnitude), so each bin is drawn one unit
    wide at its index and the axis is labelled with the edge values."""
    info, s = layer_info(trace, layer), heavy_step(trace, step)
    layout = {"title.text": f"gradients: {where(info, s)}"}
    bars = {}
    for i, kind in enumerate(("grad", "update")):
        bar = histogram_bars(trace, kind, info and info.name, s)
        if bar["width"] is not None:
            edges = trace.bin_edges[kind]
            n = len(edges) - 1
            bar = {"x": np.arange(n) + 0.5, "y": bar["y"], "width": np.ones(n)}
            ticks = np.arange(0, n + 1, max(1, n // 8))
            axis = "xaxis" if i == 0 else "xaxis2"
            layout[f"{axis}.tickvals"] = ticks
            layout[f"{axis}.ticktext"] = [f"{edges[t]:.0e}" if edges[t] else "0" for t in ticks]
        bars[i] = bar
    write(fig, bars, layout)
