"""Figure builders: a `bclab.trace.Trace` in, a plotly `Figure` out. No Keras, no widgets.

Every view is a pair. `make_<view>_figure(trace=None, ...)` builds the figure with its fixed set
of traces, titles, axes and shapes (empty data when `trace` is None or holds nothing yet).
`update_<view>(fig, trace, layer, step)` writes new data into the EXISTING traces of `fig` (a
`go.Figure` or the lab's `go.FigureWidget(fig)`) with ONE `fig.plotly_update` call
(`bclab.plots.common.write`); it never adds or removes traces, so a live widget gets one small
message per update. The `fig.data` index of every trace is listed in each `make_*` docstring;
the lab relies on it. How `layer` and `step` are looked up: `bclab.plots.common`.

Modules: `common` (lookups, the write, markers, colours, downsampling), `distributions`
(weights, hard sigmoid, gradients at one step), `series` (scalars, trajectories, comparison over
steps), `timeline` (one step's calls and the counters), `export` (`figures_to_html`).
"""

from bclab.plots.common import MAX_POINTS, downsample
from bclab.plots.distributions import (
    hard_sigmoid,
    make_grads_figure,
    make_hard_sigmoid_figure,
    make_weights_figure,
    update_grads,
    update_hard_sigmoid,
    update_weights,
)
from bclab.plots.export import figures_to_html
from bclab.plots.series import (
    SCALAR_PANELS,
    make_comparison_figure,
    make_scalars_figure,
    make_trajectories_figure,
    update_comparison,
    update_scalars,
    update_trajectories,
)
from bclab.plots.timeline import (
    COUNTER_WORDS,
    UPDATE_LABEL,
    group_phases,
    is_update_phase,
    make_timeline_figure,
    update_timeline,
)

__all__ = [
    "COUNTER_WORDS",
    "MAX_POINTS",
    "SCALAR_PANELS",
    "UPDATE_LABEL",
    "downsample",
    "figures_to_html",
    "group_phases",
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
