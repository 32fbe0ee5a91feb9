"""The views of one layer at one step: its weights, their hard-sigmoid probabilities, its gradients.

Histograms arrive pre-binned from the trace (`bclab.plots.common.histogram_bars`). Units are
stated on every axis: the real-weight histogram is over the trace's sample of a layer's weights
(every k-th weight, e.g. 16,384 of 200,704) and the +H/-H counts are over all of them, so both
are drawn as fractions, each labelled with the population it counts.
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
from bclab.trace import LayerInfo, Trace

__all__ = [
    "hard_sigmoid",
    "make_grads_figure",
    "make_hard_sigmoid_figure",
    "make_weights_figure",
    "update_grads",
    "update_hard_sigmoid",
    "update_weights",
]

NO_BINARY = "float layer: no binary kernel Wb<br>(mode 'float' trains W itself)"
DRAW_Y = (-0.15, 1.15)  # the rows of the hard-sigmoid view where the -H and +H draws sit
HEIGHT = 300  # every view's height in px; the width follows its container (autosize)


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """`clip((x + 1) / 2, 0, 1)`, BinaryConnect's probability of +H (arXiv:1511.00363)."""
    return np.clip((np.asarray(x, np.float64) + 1.0) / 2.0, 0.0, 1.0)


def _note(fig: go.Figure, text: str, x: float, y: float = 0.5) -> None:
    """A hidden paper-positioned note (shown by an update when it applies)."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=x, y=y, showarrow=False, visible=False)


def _fractions(bar: dict) -> dict:
    """A histogram's counts as fractions of its total (empty stays empty)."""
    if not len(bar["y"]):
        return bar
    counts = np.asarray(bar["y"], np.float64)
    total = counts.sum()
    return {**bar, "y": counts / total if total > 0 else counts}


def _n_weights(info: LayerInfo) -> int:
    return int(np.prod(info.shape))


# ---------------------------------------------------------------------------- weights


def make_weights_figure(trace: Trace | None = None, layer: str | None = None, step: int | None = None) -> go.Figure:
    """Real-weight histogram with the clip bounds, beside the binary weights' +H/-H shares.

    fig.data: [0] bar, the "real" histogram as fractions of the trace's sample of the layer's
    weights (x = bin centers); [1] bar, x = ["-H", "+H"], fractions of all the layer's weights
    from `trace.binary_counts`. fig.layout.shapes: [0] vertical line at -H, [1] at +H.
    fig.layout.annotations: [0], [1] subplot titles; [2] the float-layer note (right panel);
    [3] "no weight histogram recorded" (left panel).
    """
    fig = make_subplots(rows=1, cols=2, column_widths=[0.72, 0.28], subplot_titles=("real weights W", "binary Wb"))
    fig.add_bar(name="W", marker_color=BLUE, row=1, col=1)
    fig.add_bar(name="Wb", x=["-H", "+H"], marker_color=[RED, GREEN], row=1, col=2)
    vline(fig, None, color=RED)
    vline(fig, None, color=RED)
    _note(fig, NO_BINARY, x=0.93)
    _note(fig, "no weight histogram recorded<br>for this layer at this step", x=0.33)
    fig.update_layout(showlegend=False, bargap=0, title_text="weights", height=HEIGHT, margin={"t": 60, "r": 10})
    fig.update_xaxes(title_text="W", row=1, col=1)
    fig.update_yaxes(title_text="fraction of sample", tickformat=".1~%", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", range=[0, 1], row=1, col=2)
    update_weights(fig, trace, layer, step)
    return fig


def update_weights(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the layer's real histogram, ±H lines and binary shares at `step` into `fig`."""
    info, s = layer_info(trace, layer), heavy_step(trace, step)
    counts = None if s is None or not info.binary else lookup(trace.binary_counts, info.name, s)
    bar = histogram_bars(trace, "real", info and info.name, s)
    sampled = int(np.sum(bar["y"])) if len(bar["y"]) else 0
    layout = {"title.text": f"weights: {where(info, s)}"}
    if info is not None:
        n = _n_weights(info)
        layout["yaxis.title.text"] = f"fraction of {sampled:,} of {n:,}" if sampled else "fraction of sample"
        layout["xaxis2.title.text"] = f"all {n:,}" if info.binary else ""
        layout["title.text"] += f" (H = {info.H:g})" if info.binary else " (float)"
    shares = EMPTY if counts is None else [counts[1] / max(1, sum(counts)), counts[0] / max(1, sum(counts))]
    write(
        fig,
        {0: _fractions(bar), 1: {"y": shares}},
        layout,
        vlines=(info and info.binary and -info.H or None, info and info.binary and info.H or None),
        notes={2: {"visible": info is not None and not info.binary}, 3: {"visible": s is not None and not sampled}},
    )


# ---------------------------------------------------------------------------- hard sigmoid


def make_hard_sigmoid_figure(
    trace: Trace | None = None, layer: str | None = None, step: int | None = None
) -> go.Figure:
    """p = hard_sigmoid(W / H) with the tracked weights on it and, above and below the curve,
    the binary value each of them got at the step (the draw), beside the distribution of p.

    In stochastic mode a weight with p = 0.7 lands in the "+H" row about 7 times in 10; in
    deterministic mode the rows split exactly at W = 0.

    fig.data: [0] line, the curve over W in [-1.5H, 1.5H]; [1] markers, (W, p) of the tracked
    weights; [2] markers at y = `DRAW_Y[1]`, the tracked weights whose Wb was +H (x = W);
    [3] markers at y = `DRAW_Y[0]`, those whose Wb was -H; [4] bar, the "prob" histogram as
    fractions (x = bin centers).
    fig.layout.annotations: [0], [1] subplot titles; [2] the draw's summary (e.g. "stochastic
    draw: 130 of 256 tracked weights +H; p expects 127.4").
    """
    fig = make_subplots(
        rows=1, cols=2, column_widths=[0.6, 0.4], subplot_titles=("p = hard_sigmoid(W / H)", "distribution of p")
    )
    fig.add_scatter(name="hard sigmoid", mode="lines", line_color=GREY, row=1, col=1)
    fig.add_scatter(name="tracked weights", mode="markers", marker={"color": BLUE, "size": 5}, row=1, col=1)
    fig.add_scatter(
        name="drew +H", mode="markers", marker={"color": GREEN, "size": 6, "symbol": "line-ns-open"}, row=1, col=1
    )
    fig.add_scatter(
        name="drew -H", mode="markers", marker={"color": RED, "size": 6, "symbol": "line-ns-open"}, row=1, col=1
    )
    fig.add_bar(name="p", marker_color=BLUE, row=1, col=2)
    fig.add_annotation(text="", xref="paper", yref="paper", x=0, y=-0.42, showarrow=False, xanchor="left")
    fig.update_layout(
        showlegend=False, bargap=0, title_text="hard sigmoid", height=HEIGHT, margin={"t": 60, "b": 95, "r": 10}
    )
    fig.update_xaxes(title_text="W", row=1, col=1)
    fig.update_yaxes(
        title_text="p(+H)",
        range=[DRAW_Y[0] - 0.1, DRAW_Y[1] + 0.1],
        tickvals=[DRAW_Y[0], 0, 0.5, 1, DRAW_Y[1]],
        ticktext=["drew -H", "0", "0.5", "1", "drew +H"],
        row=1,
        col=1,
    )
    fig.update_xaxes(title_text="p", row=1, col=2)
    fig.update_yaxes(tickformat=".1~%", row=1, col=2)
    update_hard_sigmoid(fig, trace, layer, step)
    return fig


def _draw_text(info: LayerInfo | None, wb: np.ndarray | None, p: np.ndarray | None) -> str:
    """One line on the tracked weights' draw: how many took +H, against what p expects."""
    if info is None or wb is None or not len(wb):
        return ""
    plus = int(np.sum(wb > 0))
    if not info.binary:
        return "float layer: W is used as is, no draw"
    if not info.stochastic:
        return f"deterministic: +H where W ≥ 0 ({plus} of {len(wb)})"
    expected = float(np.sum(p)) if p is not None else float("nan")
    return f"stochastic: {plus} of {len(wb)} drew +H; p expects {expected:.1f}"


def update_hard_sigmoid(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the curve for the layer's H, the sample's (W, p), its draw and the p histogram
    into `fig`. If a record has W but no p, p = hard_sigmoid(W / H); without Wb (or for a float
    layer) the draw rows stay empty."""
    info, s = layer_info(trace, layer), heavy_step(trace, step)
    sample = {} if s is None else lookup(trace.sample_at, info.name, s, default={})
    w, wb = sample.get("W"), sample.get("Wb")
    p = sample.get("p") if "p" in sample or w is None else hard_sigmoid(w / info.H)
    # The curve is piecewise linear, so its five corners draw it exactly.
    curve = (
        {"x": EMPTY, "y": EMPTY}
        if info is None
        else {"x": info.H * np.array([-1.5, -1.0, 0.0, 1.0, 1.5]), "y": [0.0, 0.0, 0.5, 1.0, 1.0]}
    )
    markers = {"x": EMPTY, "y": EMPTY} if w is None else {"x": w, "y": p}
    draws = {2: {"x": EMPTY, "y": EMPTY}, 3: {"x": EMPTY, "y": EMPTY}}
    if w is not None and wb is not None and info.binary:
        up = np.asarray(wb) > 0
        draws = {
            2: {"x": w[up], "y": np.full(up.sum(), DRAW_Y[1])},
            3: {"x": w[~up], "y": np.full((~up).sum(), DRAW_Y[0])},
        }
    write(
        fig,
        {0: curve, 1: markers, **draws, 4: _fractions(histogram_bars(trace, "prob", info and info.name, s))},
        {"title.text": f"hard sigmoid: {where(info, s)}"},
        notes={2: {"text": _draw_text(info, wb, p)}},
    )


# ---------------------------------------------------------------------------- gradients


def make_grads_figure(trace: Trace | None = None, layer: str | None = None, step: int | None = None) -> go.Figure:
    """Histograms of a layer's gradients and of its applied updates at one step.

    fig.data: [0] bar, counts of the "grad" histogram; [1] bar, of the "update" histogram.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("gradient dC/dWb", "update ΔW"), horizontal_spacing=0.12)
    fig.add_bar(name="grad", marker_color=BLUE, row=1, col=1)
    fig.add_bar(name="update", marker_color=GREEN, row=1, col=2)
    fig.update_layout(showlegend=False, bargap=0, title_text="gradients", height=HEIGHT, margin={"t": 60, "r": 10})
    fig.update_yaxes(title_text="count (sample)", row=1, col=1)
    fig.update_xaxes(tickangle=-45, tickfont={"size": 10})
    update_grads(fig, trace, layer, step)
    return fig


def update_grads(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the layer's grad and update histograms at `step` into `fig`.

    Their bins are symmetric-log (equal ratios of magnitude), so each bin is drawn one unit
    wide at its index and the axis is labelled with a few edge values, angled so that they
    never overlap in a half-width panel."""
    info, s = layer_info(trace, layer), heavy_step(trace, step)
    layout = {"title.text": f"gradients: {where(info, s)}"}
    bars = {}
    for i, kind in enumerate(("grad", "update")):
        bar = histogram_bars(trace, kind, info and info.name, s)
        if bar["width"] is not None:
            edges = trace.bin_edges[kind]
            n = len(edges) - 1
            bar = {"x": np.arange(n) + 0.5, "y": bar["y"], "width": np.ones(n)}
            center, spacing = n // 2, max(1, n // 6)  # symmetric bins: 0 sits at the middle edge
            ticks = np.array([t for t in center + spacing * np.arange(-3, 4) if 0 <= t <= n])
            axis = "xaxis" if i == 0 else "xaxis2"
            layout[f"{axis}.tickvals"] = ticks
            layout[f"{axis}.ticktext"] = [f"{edges[t]:.0e}".replace("e-0", "e-") if edges[t] else "0" for t in ticks]
        bars[i] = bar
    write(fig, bars, layout)
