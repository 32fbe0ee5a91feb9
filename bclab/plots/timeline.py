"""The call timeline of one training step, beside the trace/run counters: when does the update run?"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bclab.plots.common import BLUE, EMPTY, GREEN, GREY, RED, heavy_step, lookup, write
from bclab.trace import Trace
from bclab.trace.schema import COMPILED_RUNS, PYTHON_TRACES

__all__ = ["UPDATE_LABEL", "is_update_phase", "make_timeline_figure", "update_timeline"]

UPDATE_LABEL = "update_step (Keras 2: get_updates)"
_UPDATE_MARKS = ("apply_gradients", "update_step", "optimizer", "get_updates")
_COUNTERS = (PYTHON_TRACES, COMPILED_RUNS)


def is_update_phase(phase: str) -> bool:
    """True for the optimizer's update phase (apply_gradients / update_step / optimizer)."""
    lowered = phase.lower()
    return any(mark in lowered for mark in _UPDATE_MARKS)


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
    fig.add_bar(name="phases", orientation="h", marker_color=BLUE, hovertemplate=hover, row=1, col=1)
    fig.add_bar(name=UPDATE_LABEL, orientation="h", marker_color=RED, hovertemplate=hover, row=1, col=1)
    # Log scale and printed values: 1 trace against thousands of runs is the point to see.
    fig.add_bar(name="counters", x=list(_COUNTERS), marker_color=[GREY, GREEN], textposition="outside", row=1, col=2)
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
        font={"color": RED},
        visible=False,
    )
    fig.update_layout(showlegend=False, title_text="timeline", barmode="overlay", height=520)
    fig.update_yaxes(autorange="reversed", type="category", categoryorder="array", tickfont={"size": 9}, row=1, col=1)
    fig.update_xaxes(title_text="ms", row=1, col=1)
    update_timeline(fig, trace, layer, step)
    return fig


def update_timeline(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the events and counters of the heavy step nearest `step`; `layer` is unused."""
    s = heavy_step(trace, step)
    events = [] if s is None else lookup(trace.events, s, default=[])
    counters = {} if s is None else lookup(trace.counters, s, default={})
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
    bars[2] = {"y": values or EMPTY, "text": [str(v) for v in values]}
    label: dict[str, Any] = {"visible": bool(split[True])}
    if split[True]:
        first = split[True][0]
        label.update(x=1e3 * (first["start"] + first["duration"]), y=first["phase"])
    write(
        fig,
        bars,
        {"yaxis.categoryarray": phases, "title.text": "timeline" + ("" if s is None else f": step {s}")},
        notes={2: label},
    )
