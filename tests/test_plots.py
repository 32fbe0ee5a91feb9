"""Tests for bclab.plots, through the figures' data: exact counts, lines, markers, isolation."""

import os
import pathlib
import time

import numpy as np
import plotly.graph_objects as go
import pytest

from bclab import plots
from bclab.trace import KINDS, SAMPLE_FIELDS, LayerInfo, Trace, TraceLookupError

REPO = pathlib.Path(__file__).resolve().parents[1]
H = (1.0, 0.25, 0.5, 2.0)  # per layer, all different so a mixed-up layer shows
N_STEPS, K = 50, 6


def make_trace(n_layers=2, sample_size=K, **kwargs):
    layers = [LayerInfo(f"binary_dense_{i}", (16, 8), H[i], 1 / H[i], True, i % 2 == 1) for i in range(n_layers)]
    edges = {
        "real": np.linspace(-2.0, 2.0, 21),
        "prob": np.linspace(0.0, 1.0, 11),
        "grad": np.geomspace(1, 5, 9) - 3.0,
        "update": np.linspace(-0.1, 0.1, 17),
    }
    return Trace(layers, edges, sample_size=sample_size, **kwargs)


def make_record(trace, step, rng):
    """Heavy record: random histograms, plus + minus = 128, events with one optimizer phase."""
    layers = {}
    for li in trace.layers:
        hist = {kind: rng.integers(0, 50, len(trace.bin_edges[kind]) - 1) for kind in KINDS}
        plus = int(rng.integers(0, 129))
        entry = {
            "hist": hist,
            "plus": plus,
            "minus": 128 - plus,
            "scalars": {
                name: float(rng.random()) for name in ("grad_norm", "update_norm", "clipped_fraction", "flip_ratio")
            },
        }
        if trace.sample_size:
            w = rng.uniform(-li.H, li.H, trace.sample_size).astype(np.float32)
            w[0] = 0.0  # an exact zero: p = 0.5, Wb = +H
            sample = {f: rng.standard_normal(trace.sample_size).astype(np.float32) for f in SAMPLE_FIELDS}
            sample.update(W=w, p=np.clip((w / li.H + 1) / 2, 0, 1), Wb=np.where(w >= 0, li.H, -li.H).astype(np.float32))
            entry["sample"] = sample
        layers[li.name] = entry
    return {
        "step": step,
        "scalars": {"loss": float(rng.random()), "accuracy": float(rng.random()), "lr": 0.003},
        "layers": layers,
        "counters": {"python_traces": 2, "compiled_runs": step + 1},
        "events": [
            {"phase": "forward", "start": 0.0, "duration": 0.002, "detail": "compiled"},
            {"phase": "backward", "start": 0.002, "duration": 0.003, "detail": ""},
            {"phase": "optimizer.apply_gradients", "start": 0.005, "duration": 0.001, "detail": "Adam"},
            {"phase": "constraint", "start": 0.006, "duration": 0.0005, "detail": "clip"},
        ],
    }


def filled(n_layers=2, steps=range(N_STEPS), **kwargs):
    trace = make_trace(n_layers, **kwargs)
    rng = np.random.default_rng(0)
    for step in steps:
        trace.append(make_record(trace, step, rng))
    return trace


@pytest.fixture(scope="module")
def trace():
    return filled()


MAKERS = {  # view -> (make, update, number of traces)
    "weights": (plots.make_weights_figure, plots.update_weights, 2),
    "hard_sigmoid": (plots.make_hard_sigmoid_figure, plots.update_hard_sigmoid, 5),
    "scalars": (plots.make_scalars_figure, plots.update_scalars, 8),
    "timeline": (plots.make_timeline_figure, plots.update_timeline, 2),
    "trajectories": (plots.make_trajectories_figure, plots.update_trajectories, 10),
    "grads": (plots.make_grads_figure, plots.update_grads, 2),
}


def test_the_package_exports_each_view_pair_and_only_names_it_has():
    assert all(hasattr(plots, name) for name in plots.__all__)
    for view, (make, update, _) in MAKERS.items():
        assert {make.__name__, update.__name__} == {f"make_{view}_figure", f"update_{view}"}
        assert {make.__name__, update.__name__} <= set(plots.__all__)


def assert_bars(bar, trace, kind, layer, step, fractions=False):
    edges, counts = trace.histogram(kind, layer, step)
    np.testing.assert_allclose(bar.y, counts / counts.sum() if fractions else counts, rtol=1e-12)
    if kind in ("grad", "update"):  # symmetric-log bins: drawn one unit wide at their index
        np.testing.assert_array_equal(bar.x, np.arange(len(counts)) + 0.5)
        np.testing.assert_array_equal(bar.width, np.ones(len(counts)))
        return
    np.testing.assert_allclose(bar.x, (edges[:-1] + edges[1:]) / 2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bar.width, np.diff(edges), rtol=0, atol=1e-12)


@pytest.mark.parametrize("view", MAKERS)
def test_each_view_has_its_fixed_traces_and_updates_keep_them(trace, view):
    make, update, n = MAKERS[view]
    fig = make(trace)
    assert len(fig.data) == n
    n_shapes, n_annotations = len(fig.layout.shapes), len(fig.layout.annotations)
    for layer in trace.layer_names:
        for step in (0, 17, None):
            update(fig, trace, layer, step)
            assert (len(fig.data), len(fig.layout.shapes), len(fig.layout.annotations)) == (n, n_shapes, n_annotations)


@pytest.mark.parametrize("view", MAKERS)
def test_empty_and_missing_traces_give_empty_figures(view):
    make, update, n = MAKERS[view]
    for fig in (make(None), make(make_trace())):
        assert len(fig.data) == n
        assert all(len(t.y) == 0 for t in fig.data if t.type == "scatter" and t.mode == "markers")
        assert all(len(t.y or ()) == 0 for t in fig.data if t.type == "bar" and t.orientation != "h")
        update(fig, None, None, None)
        update(fig, make_trace(), "binary_dense_1", 3)
        assert len(fig.data) == n


def test_weights_show_exact_counts_clip_bounds_and_binary_counts(trace):
    fig = plots.make_weights_figure(trace)
    for layer, h in zip(trace.layer_names, H, strict=False):
        plots.update_weights(fig, trace, layer, 20)
        assert_bars(fig.data[0], trace, "real", layer, 20, fractions=True)  # of the histogram's sample
        assert (fig.layout.shapes[0].x0, fig.layout.shapes[0].x1) == (-h, -h)
        assert (fig.layout.shapes[1].x0, fig.layout.shapes[1].x1) == (h, h)
        plus, minus = trace.binary_counts(layer, 20)
        assert list(fig.data[1].x) == ["-H", "+H"] and list(fig.data[1].y) == [minus / 128, plus / 128]  # of all
        sampled = int(trace.histogram("real", layer, 20)[1].sum())
        assert fig.layout.yaxis.title.text == f"fraction of {sampled:,} of 128"  # each population named
        assert fig.layout.xaxis2.title.text == "all 128" and fig.layout.title.text.endswith(f"(H = {h:g})")
        assert not fig.layout.annotations[2].visible  # a binary layer: no float note


def test_weights_default_to_first_layer_and_latest_step(trace):
    fig = plots.make_weights_figure(trace)
    assert_bars(fig.data[0], trace, "real", "binary_dense_0", N_STEPS - 1, fractions=True)
    assert "step 49" in fig.layout.title.text


def test_a_dropped_step_shows_the_nearest_retained_one():
    thinned = filled(steps=range(0, 40, 4))  # heavy steps 0, 4, ..., 36
    fig = plots.make_grads_figure(thinned, "binary_dense_1", 9)  # nearest: 8
    assert_bars(fig.data[0], thinned, "grad", "binary_dense_1", 8)
    assert_bars(fig.data[1], thinned, "update", "binary_dense_1", 8)
    plots.update_grads(fig, thinned, "binary_dense_1", 1000)  # past the end: 36
    assert_bars(fig.data[0], thinned, "grad", "binary_dense_1", 36)


def test_an_unknown_layer_is_an_error_that_names_the_layers(trace):
    with pytest.raises(TraceLookupError, match="binary_dense_0"):
        plots.make_weights_figure(trace, "nope")


def test_hard_sigmoid_curve_markers_and_p_histogram(trace):
    fig = plots.make_hard_sigmoid_figure(trace, "binary_dense_1", 30)
    h = H[1]
    # hard_sigmoid(W / H) = clip((W / H + 1) / 2, 0, 1): 0 at W <= -H, 0.5 at 0, 1 at W >= H.
    np.testing.assert_allclose(fig.data[0].x, [-1.5 * h, -h, 0, h, 1.5 * h], rtol=0, atol=0)
    np.testing.assert_array_equal(fig.data[0].y, [0, 0, 0.5, 1, 1])
    sample = trace.sample_at("binary_dense_1", 30)
    np.testing.assert_array_equal(fig.data[1].x, sample["W"])
    np.testing.assert_array_equal(fig.data[1].y, sample["p"])
    assert fig.data[1].x[0] == 0 and fig.data[1].y[0] == 0.5  # the exact zero sits mid-curve
    np.testing.assert_allclose(fig.data[1].y, plots.hard_sigmoid(np.asarray(fig.data[1].x) / h), atol=1e-7)
    assert_bars(fig.data[4], trace, "prob", "binary_dense_1", 30, fractions=True)
    # The draw: each tracked weight in the +H row (data[2]) or the -H row (data[3]) by its Wb.
    up = sample["Wb"] > 0
    np.testing.assert_array_equal(fig.data[2].x, sample["W"][up])
    np.testing.assert_array_equal(fig.data[3].x, sample["W"][~up])
    assert set(fig.data[2].y) == {1.15} and set(fig.data[3].y) == {-0.15}
    note = fig.layout.annotations[2].text
    assert note.startswith("stochastic:") and f"{up.sum()} of {K} drew +H" in note
    plots.update_hard_sigmoid(fig, trace, "binary_dense_0", 30)  # deterministic layer
    assert fig.layout.annotations[2].text.startswith("deterministic: +H where W ≥ 0")


def test_hard_sigmoid_markers_compute_p_when_only_w_was_recorded():
    trace = make_trace(1, sample_size=4)
    w = np.array([-2.0, -1.0, 0.0, 0.5], np.float32)  # H = 1: |w| > H, -H, exact zero, inside
    trace.append({"step": 0, "layers": {"binary_dense_0": {"sample": {"W": w}}}})
    fig = plots.make_hard_sigmoid_figure(trace)
    np.testing.assert_array_equal(fig.data[1].y, [0.0, 0.0, 0.5, 0.75])  # (w + 1) / 2, clipped
    assert len(fig.data[2].y) == len(fig.data[3].y) == 0  # no Wb recorded: no draw drawn
    assert len(fig.data[4].y) == 0  # no "prob" histogram in that record


def test_hard_sigmoid_is_the_papers_rule():
    # (x + 1) / 2 clipped: x = -3 -> -1 -> 0; -1 -> 0; 0 -> 0.5; 0.5 -> 0.75; 1 -> 1; 3 -> 2 -> 1.
    np.testing.assert_array_equal(plots.hard_sigmoid(np.array([-3, -1, 0, 0.5, 1, 3])), [0, 0, 0.5, 0.75, 1, 1])


def test_scalar_lines_equal_the_trace_and_mark_the_step(trace):
    fig = plots.make_scalars_figure(trace, "binary_dense_1", 12)
    for i, (_, name, model_level) in enumerate(plots.SCALAR_PANELS):
        steps, values = trace.scalars(name, None if model_level else "binary_dense_1")
        np.testing.assert_array_equal(fig.data[i].x, steps)
        np.testing.assert_array_equal(fig.data[i].y, values)
        assert fig.layout.shapes[i].x0 == fig.layout.shapes[i].x1 == 12
        assert fig.layout.shapes[i].visible
    plots.update_scalars(fig, trace, "binary_dense_0", None)
    np.testing.assert_array_equal(fig.data[2].y, trace.scalars("grad_norm", "binary_dense_0")[1])
    assert fig.layout.shapes[0].x0 == N_STEPS - 1


def test_downsample_keeps_a_stride_and_the_last_point():
    x = np.arange(10_001)
    xs, ys = plots.downsample(x, 2.0 * x)
    # stride = ceil(10001 / 1999) = 6: points 0, 6, ..., 9996, then the last, 10000.
    assert len(xs) <= plots.MAX_POINTS and xs[1] == 6 and xs[-2] == 9996 and xs[-1] == 10_000
    np.testing.assert_array_equal(ys, 2.0 * xs)
    short = np.arange(5)
    assert plots.downsample(short, short)[0] is short


def test_long_scalar_lines_are_downsampled():
    trace = make_trace(1, sample_size=0)
    for step in range(5000):
        trace.append({"step": step, "scalars": {"loss": 1.0 / (step + 1)}})
    fig = plots.make_scalars_figure(trace)
    assert len(fig.data[0].x) <= plots.MAX_POINTS and fig.data[0].x[-1] == 4999
    np.testing.assert_array_equal(fig.data[0].y, 1.0 / (np.asarray(fig.data[0].x) + 1))
    assert len(fig.data[1].x) == 0  # accuracy never logged: an empty line, no error


def test_timeline_highlights_the_update_phase_and_shows_counters(trace):
    fig = plots.make_timeline_figure(trace, None, 10)
    assert list(fig.data[0].y) == ["forward", "backward", "constraint"]
    assert list(fig.data[0].text) == ["forward", "backward", "constraint"]  # names beside the bars
    np.testing.assert_allclose(fig.data[0].base, [0.0, 2.0, 6.0])  # seconds -> ms
    np.testing.assert_allclose(fig.data[0].x, [2.0, 3.0, 0.5])
    assert list(fig.data[1].y) == ["optimizer.apply_gradients"]
    assert "Adam" in fig.data[1].hovertext[0]
    assert fig.data[1].marker.color != fig.data[0].marker.color
    notes = fig.layout.annotations
    assert [n.text for n in notes[:3]] == ["<b>2</b>", "–", "<b>11</b>"]  # the third counter is not in this trace
    assert notes[3].text.startswith("step's Python ran") and notes[5].text.startswith("steps ran")
    label = notes[7]
    assert label.visible and label.text == plots.UPDATE_LABEL
    assert label.y == "optimizer.apply_gradients" and label.x == pytest.approx(5.0)
    assert list(fig.layout.yaxis.categoryarray) == ["forward", "backward", "optimizer.apply_gradients", "constraint"]


def test_timeline_groups_per_variable_update_calls_and_keeps_them_visible():
    events = [{"phase": "enter step function", "start": 0.0, "duration": 0.010, "detail": "compiled"}]
    events += [
        {"phase": f"Adam.update_step model/v{i}", "start": 0.0100 + 1e-7 * i, "duration": 1e-7, "detail": ""}
        for i in range(16)
    ]
    rows = plots.group_phases(events)
    assert [r["phase"] for r in rows] == ["enter step function", "Adam.update_step × 16 (per variable)"]
    assert rows[1]["count"] == 16 and "model/v15" in rows[1]["detail"]
    trace = make_trace(1)
    counters = {"python_traces": 1, "python_update_step_calls": 16, "compiled_runs": 350}
    trace.append({"step": 349, "events": events, "counters": counters})
    fig = plots.make_timeline_figure(trace)
    assert fig.data[1].x[0] >= plots.timeline.MIN_WIDTH * 10.0 * 0.999  # visible: >= 1% of the 10 ms step
    assert [n.text for n in fig.layout.annotations[:3]] == ["<b>1</b>", "<b>16</b>", "<b>350</b>"]
    assert "16× while tracing" in fig.layout.annotations[6].text and "all 350 steps" in fig.layout.annotations[6].text


@pytest.mark.parametrize(
    "phase,expected", [("optimizer", True), ("Adam.update_step", True), ("apply_gradients", True), ("forward", False)]
)
def test_is_update_phase(phase, expected):
    assert plots.is_update_phase(phase) is expected


def test_trajectories_show_w_and_wb_of_the_first_samples(trace):
    fig = plots.make_trajectories_figure(trace, "binary_dense_0", 25, n_tracked=4)
    assert len(fig.data) == 8
    for field, offset in (("W", 0), ("Wb", 4)):
        steps, values = trace.sample("binary_dense_0", field)
        for i in range(4):
            np.testing.assert_array_equal(fig.data[offset + i].x, steps)
            np.testing.assert_array_equal(fig.data[offset + i].y, values[:, i])
    assert fig.data[4].line.dash == "dash" and fig.data[4].line.shape == "hv"
    assert fig.data[0].line.color == fig.data[4].line.color
    assert fig.layout.shapes[0].x0 == 25 and not fig.layout.annotations[0].visible


def test_trajectories_with_more_lines_than_samples_leave_the_rest_empty():
    small = filled(sample_size=2)
    fig = plots.make_trajectories_figure(small, n_tracked=5)
    assert [len(t.y) for t in fig.data] == [N_STEPS, N_STEPS, 0, 0, 0] * 2


def test_trajectories_without_samples_say_so():
    fig = plots.make_trajectories_figure(filled(sample_size=0))
    assert all(len(t.x) == 0 for t in fig.data)
    assert fig.layout.annotations[0].visible
    assert fig.layout.annotations[0].text == "no tracked weights in this trace"
    with pytest.raises(ValueError, match="n_tracked"):
        plots.make_trajectories_figure(None, n_tracked=0)


def test_comparison_draws_one_line_per_trace():
    traces = {"deterministic": filled(), "stochastic": filled(steps=range(0, 100, 2))}
    fig = plots.make_comparison_figure(traces, "loss", step=4)
    assert [t.name for t in fig.data] == ["deterministic", "stochastic"]
    for line, t in zip(fig.data, traces.values(), strict=True):
        np.testing.assert_array_equal(line.x, t.scalars("loss")[0])
        np.testing.assert_array_equal(line.y, t.scalars("loss")[1])
    plots.update_comparison(fig, traces, "flip_ratio", "binary_dense_1")
    np.testing.assert_array_equal(fig.data[1].y, traces["stochastic"].scalars("flip_ratio", "binary_dense_1")[1])
    assert len(fig.data) == 2 and not fig.layout.shapes[0].visible
    with pytest.raises(ValueError, match="deterministic"):
        plots.update_comparison(fig, {"other": filled()})


def test_updates_work_on_a_figure_widget(trace):
    for view, (make, update, n) in MAKERS.items():
        widget = go.FigureWidget(make(None))
        update(widget, trace, "binary_dense_1", 30)
        assert len(widget.data) == n, view
    widget = go.FigureWidget(plots.make_weights_figure())
    plots.update_weights(widget, trace, "binary_dense_1", 30)
    assert_bars(widget.data[0], trace, "real", "binary_dense_1", 30, fractions=True)
    assert widget.layout.shapes[1].x0 == H[1]


def test_figures_to_html_writes_one_offline_file(tmp_path, trace):
    figs = {"weights": plots.make_weights_figure(trace), "grads": plots.make_grads_figure(trace)}
    path = tmp_path / "report.html"
    plots.figures_to_html(figs, path)
    html = path.read_text(encoding="utf-8")
    assert 'id="bclab-weights"' in html and 'id="bclab-grads"' in html
    assert html.count("* plotly.js v") == 1  # the library is embedded once, not fetched
    assert "<script src=" not in html
    assert os.listdir(tmp_path) == ["report.html"]


def test_figures_to_html_is_atomic(tmp_path, monkeypatch, trace):
    path = tmp_path / "report.html"
    path.write_text("old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        plots.figures_to_html({"grads": plots.make_grads_figure(trace)}, path)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["report.html"]
    with pytest.raises(ValueError, match="figs"):
        plots.figures_to_html({}, path)


def update_all(figs, trace, layer, step):
    for view, (_, update, _) in MAKERS.items():
        update(figs[view], trace, layer, step)


def test_updating_all_views_of_a_four_layer_trace_is_fast():
    big = filled(n_layers=4, steps=range(2000), max_records=500)
    figs = {view: go.FigureWidget(make(big)) for view, (make, _, _) in MAKERS.items()}
    update_all(figs, big, "binary_dense_3", 100)  # warm up
    n = 12
    timings = {}
    for case, layers in (
        ("step slider, same layer", ["binary_dense_3"] * n),
        ("new layer each time (re-reads W/Wb samples)", big.layer_names * (n // 4)),
    ):
        start = time.perf_counter()
        for i, layer in enumerate(layers):
            update_all(figs, big, layer, 150 * i + 7)
        timings[case] = (time.perf_counter() - start) / n
        print(f"\nupdate of all 6 views, 4 layers x 2000 steps, FigureWidget, {case}: {1e3 * timings[case]:.1f} ms")
    assert max(timings.values()) < 0.5  # generous for a loaded CI machine; ~5-20 ms expected
