"""When does the update run? One step's calls as a timeline, under the three counters in words.

The counters answer the question at a glance, in large type: how often the Python of the step
ran, how often the Python of the optimizer's `update_step` ran (once per variable, per trace),
and how often the compiled step ran (every batch); a one-line caption says what that means for
the step shown. The timeline below draws the step's phases in order; consecutive calls of one
kind (an `update_step` per variable, a binarization per layer) are grouped in one row labelled
with their count, and every bar is drawn at least `MIN_WIDTH` of the step wide, so a compiled
step's near-instant device phases stay visible (the hover gives the measured times).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from bclab.plots.common import BLUE, EMPTY, RED, heavy_step, lookup, write
from bclab.trace import Trace
from bclab.trace.schema import COMPILED_RUNS, PYTHON_TRACES, PYTHON_UPDATE_STEP_CALLS

__all__ = [
    "COUNTER_WORDS",
    "UPDATE_LABEL",
    "group_phases",
    "is_update_phase",
    "make_timeline_figure",
    "update_timeline",
]

UPDATE_LABEL = "update_step (Keras 2: get_updates)"
_UPDATE_MARKS = ("apply_gradients", "update_step", "optimizer", "get_updates")
_GROUPED = ("binarize ",)  # besides the update phases: one row per kind, whatever the layer
MIN_WIDTH = 0.012  # the narrowest bar, as a fraction of the step's span
HEIGHT = 470
# counter -> (what ran, when it runs in a compiled step, when in an eager one)
COUNTER_WORDS = {
    PYTHON_TRACES: ("step's Python ran", "only while tracing", "at every step (eager)"),
    PYTHON_UPDATE_STEP_CALLS: ("update_step's Python ran", "per variable, while tracing", "per variable, every step"),
    COMPILED_RUNS: ("steps ran", "compiled: update ops in each", "eager: all Python in each"),
}
_X = (1 / 6, 1 / 2, 5 / 6)  # the counters' centers across the figure


def is_update_phase(phase: str) -> bool:
    """True for the optimizer's update phase (apply_gradients / update_step / optimizer)."""
    lowered = phase.lower()
    return any(mark in lowered for mark in _UPDATE_MARKS)


def _group_key(phase: str) -> str:
    if is_update_phase(phase) and " " in phase:
        return phase.split(" ")[0]  # "Adam.update_step binaryconnect_mlp/dense_1/kernel" -> "Adam.update_step"
    if phase.startswith(_GROUPED):
        return phase.split(" ")[0]
    return phase


def group_phases(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive events of one kind as one row: {"phase" (with " × n" when grouped), "start",
    "end", "count", "update", "detail" (each member's name and duration, for the hover)}."""
    rows: list[dict[str, Any]] = []
    for event in events:
        key, end = _group_key(event["phase"]), event["start"] + event["duration"]
        line = f"{event['phase']}: {1e3 * event['duration']:.3f} ms"
        if rows and rows[-1]["key"] == key and key != event["phase"]:
            row = rows[-1]
            row["count"] += 1
            row["end"] = max(row["end"], end)
            row["detail"].append(line)
            continue
        rows.append(
            {
                "key": key,
                "start": event["start"],
                "end": end,
                "count": 1,
                "update": is_update_phase(event["phase"]),
                "detail": [f"{event['detail']}", line] if key == event["phase"] else [line],
            }
        )
    for row in rows:
        row["phase"] = row.pop("key") + (f" × {row['count']}" if row["count"] > 1 else "")
        if row["count"] > 1:
            per = "per variable" if row["update"] else "per layer"
            row["phase"] = row["phase"].replace(f" × {row['count']}", f" × {row['count']} ({per})")
        row["detail"] = "<br>".join(row["detail"][:20]) + ("<br>..." if len(row["detail"]) > 20 else "")
    return rows


def make_timeline_figure(trace: Trace | None = None, layer: str | None = None, step: int | None = None) -> go.Figure:
    """The three counters in words, a caption, and the call timeline of one step.

    `layer` is unused (the timeline is model-wide); it keeps one signature for all views.

    fig.data: [0] bar (horizontal), the grouped phases except the optimizer update (y = row,
    base = start, x = drawn width, in ms; hover: measured times); [1] bar (horizontal), the
    update rows (`is_update_phase`) in red.
    fig.layout.annotations: [0..2] the counters' numbers, [3..5] their words (in
    `COUNTER_WORDS` order: python_traces, python_update_step_calls, compiled_runs), [6] the
    caption, [7] the label `UPDATE_LABEL` at the update row (hidden when the step has none).
    """
    fig = go.Figure()
    hover = "%{y}<br>start %{base:.3f} ms<br>%{hovertext}<extra></extra>"
    # Each row's name is written beside its bar (not as a tick label), so the plot and the
    # counters above it use the figure's whole width.
    for name, color in (("phases", BLUE), (UPDATE_LABEL, RED)):
        fig.add_bar(
            name=name,
            orientation="h",
            marker_color=color,
            hovertemplate=hover,
            textposition="outside",
            cliponaxis=False,
            textfont={"size": 11, "color": color},
        )
    for x in _X:
        fig.add_annotation(
            text="–", x=x, y=1.36, xref="paper", yref="paper", showarrow=False, xanchor="center", font={"size": 30}
        )
    for x in _X:
        fig.add_annotation(
            text="", x=x, y=1.2, xref="paper", yref="paper", showarrow=False, xanchor="center", font={"size": 12}
        )
    fig.add_annotation(text="", x=0.5, y=1.06, xref="paper", yref="paper", showarrow=False, font={"size": 13})
    fig.add_annotation(
        text=UPDATE_LABEL, x=0, y=0, xref="x", yref="y", showarrow=True, arrowhead=2, ax=-40, ay=0,
        font={"color": RED, "size": 11}, xanchor="right", visible=False,
    )  # fmt: skip
    fig.update_layout(
        showlegend=False,
        title_text="when does the update run?",
        barmode="overlay",
        height=HEIGHT,
        margin={"t": 190, "l": 15, "r": 15, "b": 40},
    )
    fig.update_yaxes(autorange="reversed", type="category", categoryorder="array", showticklabels=False)
    fig.update_xaxes(title_text="ms since the step began (bars at least 1% wide; hover for times)")
    update_timeline(fig, trace, layer, step)
    return fig


def _caption(counters: dict[str, int], eager: bool) -> str:
    runs = counters.get(COMPILED_RUNS)
    calls = counters.get(PYTHON_UPDATE_STEP_CALLS)
    if runs is None:
        return ""
    if eager:
        return f"No tracing: update_step's Python ran in each of the {runs} steps."
    return f"update_step's Python ran {calls}× while tracing; its ops ran in all {runs} steps."


def update_timeline(fig: go.Figure, trace: Trace | None, layer: str | None = None, step: int | None = None) -> None:
    """Writes the counters, the caption and the grouped events of the heavy step nearest `step`."""
    s = heavy_step(trace, step)
    events = [] if s is None else lookup(trace.events, s, default=[])
    counters = {} if s is None else lookup(trace.counters, s, default={})
    eager = trace is not None and str(trace.meta.get("mode", "")).startswith("eager")
    rows = group_phases(events)
    span = max((row["end"] for row in rows), default=0.0) - min((row["start"] for row in rows), default=0.0)
    bars = {}
    for i, update in enumerate((False, True)):
        group = [row for row in rows if row["update"] is update]
        widths = [1e3 * max(row["end"] - row["start"], MIN_WIDTH * span) for row in group]
        bars[i] = {
            "y": [row["phase"] for row in group] or EMPTY,
            "base": [1e3 * row["start"] for row in group] or EMPTY,
            "x": widths or EMPTY,
            "hovertext": [row["detail"] for row in group] or EMPTY,
            "text": [row["phase"] for row in group] or EMPTY,
        }
    notes: dict[int, dict[str, Any]] = {}
    for i, name in enumerate(COUNTER_WORDS):
        what, compiled, eager_when = COUNTER_WORDS[name]
        value = counters.get(name)
        notes[i] = {"text": "–" if value is None else f"<b>{value:,}</b>"}
        notes[3 + i] = {"text": f"{what}<br><i>{eager_when if eager else compiled}</i>"}
    notes[6] = {"text": _caption(counters, eager)}
    update_rows = [row for row in rows if row["update"]]
    notes[7] = {"visible": bool(update_rows)}
    if update_rows:
        first = update_rows[0]
        notes[7].update(x=1e3 * first["start"], y=first["phase"])
    phases = [row["phase"] for row in rows]
    title = "when does the update run?" + ("" if s is None else f" step {s}" + (" (eager)" if eager else " (compiled)"))
    layout = {"yaxis.categoryarray": phases, "title.text": title, "xaxis.range": [0, 1e3 * span * 1.45 or 1]}
    write(fig, bars, layout, notes=notes)
