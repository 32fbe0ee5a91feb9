"""Tests for bclab.trace: exact storage, thinning, bounded memory, files, threads, isolation."""

import json
import math
import pathlib
import threading
import time

import numpy as np
import pytest
from conftest import wait_until

from bclab.trace import KINDS, SAMPLE_FIELDS, LayerInfo, Trace, TraceFileError, TraceLookupError

REPO = pathlib.Path(__file__).resolve().parents[1]
NAMES = ("binary_dense", "binary_dense_1", "binary_dense_2", "binary_dense_3")
HIST_TOTAL = 1000  # every synthetic histogram sums to this, so a torn read would show


def make_trace(n_layers=2, nbins=8, sample_size=4, **kwargs):
    layers = [LayerInfo(NAMES[i], (16, 8), 1.0, 2.5, True, i % 2 == 1) for i in range(n_layers)]
    edges = {kind: np.linspace(-2.0, 2.0, nbins + 1) for kind in KINDS}
    return Trace(
        layers,
        edges,
        params=("bias", "bn_gamma"),
        sample_size=sample_size,
        meta={"device": "cpu", "config": {"lr": 0.003}},
        **kwargs,
    )


def make_record(trace, step, rng, heavy=True, loss=None):
    """A synthetic record for `trace` at `step`; sample values W all equal the step."""
    k = trace.sample_size
    layers = {}
    for li in trace.layers:
        entry = {
            "scalars": {
                "grad_norm": float(rng.random()),
                "update_norm": float(rng.random()),
                "clipped_fraction": float(rng.random()),
                "flip_ratio": 0.01,
            }
        }
        if heavy:
            hist = {}
            for kind in KINDS:
                nbins = len(trace.bin_edges[kind]) - 1
                hist[kind] = rng.multinomial(HIST_TOTAL, np.full(nbins, 1 / nbins))
            entry["hist"] = hist
            plus = int(rng.integers(0, 128))
            entry.update(plus=plus, minus=128 - plus)
            if k:
                entry["sample"] = {f: rng.standard_normal(k).astype(np.float32) for f in SAMPLE_FIELDS}
                entry["sample"]["W"] = np.full(k, step, np.float32)
        layers[li.name] = entry
    record = {
        "step": step,
        "epoch": step // 10,
        "scalars": {
            "loss": float(rng.random()) if loss is None else loss,
            "accuracy": float(rng.random()),
            "lr": 0.003,
        },
        "layers": layers,
        "params": {p: {"grad_norm": float(rng.random()), "mean": float(rng.standard_normal())} for p in trace.params},
        "counters": {"python_traces": 2, "compiled_runs": step + 1},
    }
    if heavy:
        record["events"] = [
            {"phase": "forward", "start": 0.0, "duration": 0.001 * step, "detail": "compiled"},
            {"phase": "apply", "start": 0.5, "duration": 1e-4, "detail": ""},
        ]
    return record


def fill(trace, steps, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    records = [make_record(trace, s, rng, **kwargs) for s in steps]
    for record in records:
        trace.append(record)
    return records


def test_append_then_lookup_returns_exactly_what_was_stored():
    trace = make_trace()
    records = fill(trace, range(5))
    assert len(trace) == 5 and trace.last_step == 4 and trace.latest_heavy_step() == 4
    np.testing.assert_array_equal(trace.steps(), np.arange(5))
    steps, losses = trace.scalars("loss")
    np.testing.assert_array_equal(steps, np.arange(5))
    assert losses.tolist() == [r["scalars"]["loss"] for r in records]
    for r in records:
        s = r["step"]
        for name, entry in r["layers"].items():
            for kind in KINDS:
                edges, counts = trace.histogram(kind, name, s)
                assert counts.dtype == np.int64
                np.testing.assert_array_equal(counts, entry["hist"][kind])
                np.testing.assert_array_equal(edges, np.linspace(-2.0, 2.0, 9))
            assert trace.binary_counts(name, s) == (entry["plus"], entry["minus"])
            at = trace.sample_at(name, s)
            for field in SAMPLE_FIELDS:
                np.testing.assert_array_equal(at[field], entry["sample"][field])
        assert trace.events(s) == r["events"]
        assert trace.counters(s) == r["counters"]
    _, grad = trace.scalars("grad_norm", "binary_dense_1")
    assert grad.tolist() == [r["layers"]["binary_dense_1"]["scalars"]["grad_norm"] for r in records]
    _, mean = trace.scalars("mean", "bias")
    assert mean.tolist() == [r["params"]["bias"]["mean"] for r in records]
    assert trace.scalars("compiled_runs")[1].tolist() == [1, 2, 3, 4, 5]
    assert trace.scalars("epoch")[1].tolist() == [0, 0, 0, 0, 0]
    s_steps, w = trace.sample("binary_dense", "W")
    np.testing.assert_array_equal(s_steps, np.arange(5))
    np.testing.assert_array_equal(w, np.repeat(np.arange(5, dtype=np.float32)[:, None], 4, 1))
    assert set(trace.scalar_names()) == {"loss", "accuracy", "lr", "epoch", "python_traces", "compiled_runs"}
    assert trace.meta == {"device": "cpu", "config": {"lr": 0.003}}


def test_readers_get_copies():
    trace = make_trace()
    fill(trace, range(2))
    _, counts = trace.histogram("real", "binary_dense", 1)
    counts[:] = -7
    assert trace.histogram("real", "binary_dense", 1)[1].min() >= 0
    trace.bin_edges["real"][:] = 0
    assert trace.bin_edges["real"][0] == -2.0


def test_light_records_keep_scalars_only():
    trace = make_trace()
    rng = np.random.default_rng(1)
    trace.append(make_record(trace, 0, rng))
    trace.append({"step": 1, "scalars": {"loss": 0.5}})
    trace.append(make_record(trace, 2, rng, heavy=False))
    np.testing.assert_array_equal(trace.steps(), [0])
    assert trace.latest_heavy_step() == 0
    np.testing.assert_array_equal(trace.scalars("loss")[0], [0, 1, 2])
    np.testing.assert_array_equal(trace.scalars("grad_norm", "binary_dense")[0], [0, 2])
    assert trace.counters(2) == {"python_traces": 2, "compiled_runs": 3}


def test_thinning_hand_computed_small_cap():
    # cap 4, heavy steps 0..9: keep 0 1 2 3; at 4 full -> keep 0 2, stride 2, add 4, 6;
    # at 8 full -> keep 0 4, stride 4, add 8; 9 is not a multiple of 4 -> only "latest".
    trace = make_trace(max_records=4, max_scalar_steps=4)
    fill(trace, range(10))
    np.testing.assert_array_equal(trace.steps(), [0, 4, 8, 9])
    assert trace.heavy_stride == 4
    np.testing.assert_array_equal(trace.scalars("loss")[0], [0, 4, 8])
    assert trace.scalar_stride == 4  # the same rule on the scalar table: 10 records, cap 4
    assert trace.latest_heavy_step() == 9 and trace.last_step == 9
    assert trace.histogram("grad", "binary_dense", 9)[1].sum() == HIST_TOTAL
    assert trace.nearest_step(5) == 4 and trace.nearest_step(7) == 8
    assert trace.nearest_step(6) == 4  # tie goes to the earlier step
    assert trace.nearest_step(100) == 9


@pytest.mark.parametrize("n_steps", [1, 7, 8, 9, 100, 1000])
def test_thinning_keeps_first_latest_and_evenly_spaced_steps(n_steps):
    trace = make_trace(n_layers=1, nbins=4, sample_size=0, max_records=8)
    fill(trace, range(n_steps))
    steps = trace.steps()
    stride = trace.heavy_stride
    history = steps[:-1] if steps[-1] % stride else steps
    assert steps[0] == 0 and steps[-1] == n_steps - 1
    np.testing.assert_array_equal(history, np.arange(0, n_steps, stride)[: len(history)])
    assert len(history) <= 8
    assert stride == 1 or len(history) > 8 // 2  # it halves only when full, never below half


def test_thinning_counts_heavy_records_not_steps():
    # Heavy data every 3rd step: heavy records number 0, 1, 2, ... in order of arrival.
    trace = make_trace(n_layers=1, sample_size=0, max_records=4)
    rng = np.random.default_rng(2)
    for step in range(30):
        trace.append(make_record(trace, step, rng, heavy=step % 3 == 0))
    # heavy steps 0 3 6 ... 27 are records 0..9; with cap 4 the stride ends at 4: 0 4 8 -> 0 12 24
    np.testing.assert_array_equal(trace.steps(), [0, 12, 24, 27])


def test_memory_is_bounded_on_a_long_run():
    n_layers, nbins, k, max_records, max_scalar = 4, 64, 256, 1000, 10_000
    trace = make_trace(
        n_layers=n_layers, nbins=nbins, sample_size=k, max_records=max_records, max_scalar_steps=max_scalar
    )
    rng = np.random.default_rng(3)
    pool = [make_record(trace, 0, rng) for _ in range(8)]
    n_steps = 50_000
    start = time.perf_counter()
    for step in range(n_steps):
        record = dict(pool[step % 8], step=step)
        trace.append(record)
    per_append = (time.perf_counter() - start) / n_steps
    # per heavy row and layer: 4 kinds x (nbins int64 + 1 mask), +H/-H int64 + mask,
    # 5 fields x (k float32 + 1 mask); plus the step. Scalar columns are at most doubled.
    row = 8 + n_layers * (4 * (8 * nbins + 1) + 17 + 5 * (4 * k + 1))
    n_columns = sum(len(trace.scalar_names(s)) for s in (None, *NAMES, "bias", "bn_gamma"))
    bound = (max_records + 1) * row + 300 * 2 * (max_records + 1) + max_scalar * (8 + 9 * 2 * n_columns)
    held = trace.memory_bytes()
    assert held <= bound
    assert held >= len(trace.steps()) * (row - 8)  # honest: at least what is retained
    steps = trace.steps()
    assert steps[0] == 0 and steps[-1] == n_steps - 1 and len(steps) <= max_records + 1
    assert trace.scalars("loss")[0][0] == 0
    assert per_append < 2e-3  # typically ~0.15 ms; loose because CI machines are shared


def test_lookup_errors_list_what_is_there():
    trace = make_trace()
    fill(trace, range(3))
    with pytest.raises(TraceLookupError, match=r"\['binary_dense', 'binary_dense_1'\].*layer='foo'"):
        trace.histogram("real", "foo", 0)
    with pytest.raises(TraceLookupError, match=r"kinds: \['real', 'prob', 'grad', 'update'\]"):
        trace.histogram("weights", "binary_dense", 0)
    with pytest.raises(TraceLookupError, match=r"\['W', 'Wb', 'p', 'grad', 'update'\].*field='X'"):
        trace.sample("binary_dense", "X")
    with pytest.raises(TraceLookupError, match=r"'loss'.*name='los'"):
        trace.scalars("los")
    with pytest.raises(TraceLookupError, match=r"3 heavy steps in \[0, 2\].*nearest_step\(7\)"):
        trace.events(7)
    with pytest.raises(TraceLookupError, match=r"params \['bias', 'bn_gamma'\].*layer='nope'"):
        trace.scalar_names("nope")
    assert isinstance(TraceLookupError("x"), LookupError)
    with pytest.raises(TraceLookupError, match="no heavy records"):
        make_trace().nearest_step(0)


def test_invalid_records_are_rejected_and_leave_the_trace_unchanged():
    trace = make_trace()
    records = fill(trace, range(3))
    bad_hist = make_record(trace, 3, np.random.default_rng(4))
    bad_hist["layers"]["binary_dense"]["hist"]["prob"] = np.ones(7, np.int64)
    with pytest.raises(ValueError, match=r"hist'\]\['prob'\].*8 integer counts"):
        trace.append(bad_hist)
    bad_sample = make_record(trace, 3, np.random.default_rng(4))
    bad_sample["layers"]["binary_dense_1"]["sample"]["p"] = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="sample_size=4"):
        trace.append(bad_sample)
    with pytest.raises(ValueError, match=r"last step: 2\). Received: step=2"):
        trace.append(dict(records[0], step=2))
    with pytest.raises(ValueError, match=r"`layers`.*unknown: \['dense_9'\]"):
        trace.append({"step": 3, "layers": {"dense_9": {}}})
    with pytest.raises(ValueError, match="non-negative"):
        negative = make_record(trace, 3, np.random.default_rng(4))
        negative["layers"]["binary_dense"]["hist"]["real"][0] = -1
        trace.append(negative)
    with pytest.raises(ValueError, match="'step' key"):
        trace.append({"scalars": {"loss": 1.0}})
    assert len(trace) == 3 and trace.last_step == 2
    np.testing.assert_array_equal(trace.steps(), [0, 1, 2])


def test_constructor_validates_bin_edges():
    layer = [LayerInfo("a", (2, 2), 1.0, 1.0, True, False)]
    edges = {kind: np.linspace(0, 1, 5) for kind in KINDS}
    with pytest.raises(ValueError, match="strictly increasing"):
        Trace(layer, {**edges, "grad": np.array([0.0, 1.0, 1.0])})
    with pytest.raises(ValueError, match="finite"):
        Trace(layer, {**edges, "prob": np.array([0.0, np.inf])})
    with pytest.raises(ValueError, match="exactly the kinds"):
        Trace(layer, {k: v for k, v in edges.items() if k != "update"})


def assert_same(a, b):
    """Everything readable from `a` equals `b`, arrays bit for bit (NaN included)."""
    assert (len(a), a.last_step, a.latest_heavy_step()) == (len(b), b.last_step, b.latest_heavy_step())
    assert a.layers == b.layers and a.params == b.params and a.meta == b.meta
    assert a.first_nonfinite() == b.first_nonfinite()
    np.testing.assert_array_equal(a.steps(), b.steps())
    for scope in (None, *a.layer_names, *a.params):
        assert a.scalar_names(scope) == b.scalar_names(scope)
        for name in a.scalar_names(scope):
            for x, y in zip(a.scalars(name, scope), b.scalars(name, scope), strict=True):
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    for step in a.steps().tolist():
        assert a.events(step) == b.events(step) and a.counters(step) == b.counters(step)
        for layer in a.layer_names:
            assert a.binary_counts(layer, step) == b.binary_counts(layer, step)
            for kind in KINDS:
                np.testing.assert_array_equal(a.histogram(kind, layer, step)[1], b.histogram(kind, layer, step)[1])
    for layer in a.layer_names:
        for field in SAMPLE_FIELDS if a.sample_size else ():
            for x, y in zip(a.sample(layer, field), b.sample(layer, field), strict=True):
                assert x.tobytes() == y.tobytes()


def test_save_load_round_trip_is_exact_and_appending_continues(tmp_path):
    original = make_trace(max_records=8, max_scalar_steps=16)
    fill(original, range(40), seed=5)
    path = tmp_path / "run.npz"
    original.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]  # no temp file left behind
    loaded = Trace.load(path)
    assert_same(original, loaded)
    for name in KINDS:
        np.testing.assert_array_equal(loaded.bin_edges[name], original.bin_edges[name])
    more = fill(original, range(40, 75), seed=6)
    for record in more:
        loaded.append(record)
    assert_same(original, loaded)
    assert loaded.summary() == original.summary()


def test_round_trip_of_an_empty_trace_and_nan_values(tmp_path):
    empty = make_trace(sample_size=0)
    empty.save(tmp_path / "empty.npz")
    assert_same(empty, Trace.load(tmp_path / "empty.npz"))
    trace = make_trace()
    fill(trace, range(3), loss=math.nan)
    trace.save(tmp_path / "nan.npz")
    assert_same(trace, Trace.load(tmp_path / "nan.npz"))


def rewrite_header(src, dst, change):
    with np.load(src, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    header = json.loads(arrays["header"].tobytes())
    change(header)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


def test_broken_files_raise_trace_file_error(tmp_path):
    trace = make_trace()
    fill(trace, range(3))
    good = tmp_path / "good.npz"
    trace.save(good)
    with pytest.raises(TraceFileError, match="does not exist"):
        Trace.load(tmp_path / "missing.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(TraceFileError, match=r"truncated\.npz"):
        Trace.load(truncated)
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(TraceFileError, match=r"not a readable \.npz"):
        Trace.load(noise)
    old = tmp_path / "old.npz"
    rewrite_header(good, old, lambda h: h.update(version=99))
    with pytest.raises(TraceFileError, match="version 99"):
        Trace.load(old)
    lacking = tmp_path / "lacking.npz"
    rewrite_header(good, lacking, lambda h: h.pop("heavy_objects"))
    with pytest.raises(TraceFileError, match="heavy_objects"):
        Trace.load(lacking)
    inconsistent = tmp_path / "inconsistent.npz"
    rewrite_header(good, inconsistent, lambda h: h["heavy_objects"].pop())
    with pytest.raises(TraceFileError, match="inconsistent"):
        Trace.load(inconsistent)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(TraceFileError, match="header"):
        Trace.load(other)


def test_save_while_another_thread_appends(tmp_path):
    trace = make_trace(max_records=100_000, max_scalar_steps=100_000)
    rng = np.random.default_rng(7)
    records = [make_record(trace, s, rng) for s in range(3000)]
    halfway = threading.Event()

    def writer():
        for record in records:
            trace.append(record)
            if record["step"] == 1000:
                halfway.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert halfway.wait(30)
    done_before_save = len(trace)
    trace.save(tmp_path / "live.npz")
    thread.join()
    loaded = Trace.load(tmp_path / "live.npz")
    assert done_before_save <= len(loaded) <= len(records)
    n = len(loaded)
    np.testing.assert_array_equal(loaded.steps(), np.arange(n))
    np.testing.assert_array_equal(loaded.scalars("loss")[0], np.arange(n))
    for step in (0, done_before_save - 1, n - 1):
        expected = records[step]["layers"]["binary_dense_1"]["hist"]["update"]
        np.testing.assert_array_equal(loaded.histogram("update", "binary_dense_1", step)[1], expected)


def test_first_nonfinite_is_tracked_and_survives_thinning(tmp_path):
    trace = make_trace(max_records=4, max_scalar_steps=4)
    rng = np.random.default_rng(8)
    assert trace.first_nonfinite() is None
    for step in range(30):
        record = make_record(trace, step, rng, loss=math.nan if step >= 20 else None)
        if step == 17:
            record["layers"]["binary_dense_1"]["scalars"]["update_norm"] = math.inf
        trace.append(record)
    expected = {"step": 17, "name": "update_norm", "layer": "binary_dense_1"}
    assert trace.first_nonfinite() == expected
    trace.save(tmp_path / "bad.npz")
    assert Trace.load(tmp_path / "bad.npz").first_nonfinite() == expected
    model = make_trace()
    fill(model, range(2), loss=math.inf)
    assert model.first_nonfinite() == {"step": 0, "name": "loss", "layer": None}
    assert "step 17, update_norm (binary_dense_1)" in trace.summary()


def test_writer_and_reader_threads_do_not_interfere():
    trace = make_trace(max_records=16, max_scalar_steps=64)
    rng = np.random.default_rng(9)
    pool = [make_record(trace, 0, rng) for _ in range(4)]
    errors, stop, reads = [], threading.Event(), [0]

    def writer():
        step = 0
        while not stop.is_set():
            record = dict(pool[step % 4], step=step)
            record["layers"] = {
                name: {**entry, "sample": {**entry["sample"], "W": np.full(4, step, np.float32)}}
                for name, entry in pool[step % 4]["layers"].items()
            }
            trace.append(record)
            step += 1

    def reader():
        try:
            while not stop.is_set():
                latest = trace.latest_heavy_step()
                if latest is None:
                    continue
                try:
                    counts = trace.histogram("real", "binary_dense", latest)[1]
                    w = trace.sample_at("binary_dense_1", latest)["W"]
                except TraceLookupError:
                    continue  # thinned away between the two calls: allowed
                assert counts.sum() == HIST_TOTAL and np.all(w == w[0])
                steps = trace.steps()
                assert np.all(np.diff(steps) > 0)
                s, v = trace.scalars("loss")
                assert len(s) == len(v)
                trace.nearest_step(latest // 2)
                trace.summary()
                reads[0] += 1
        except Exception as exc:  # reported to the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    try:  # run both until each has done plenty (or the reader failed)
        wait_until(lambda: errors or (len(trace) > 3000 and reads[0] > 300), what="3000 appends and 300 full reads")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert len(trace) > 3000 and reads[0] > 300


def test_summary_mentions_the_essentials():
    trace = make_trace()
    fill(trace, range(12))
    text = trace.summary()
    for piece in (
        "12 appended",
        "binary_dense_1: shape (16, 8), H 1, W_LR_scale 2.5",
        "stochastic binary",
        "deterministic binary",
        "flip_ratio 0.01",
        "python_traces=2",
        "compiled_runs=12",
        "first non-finite: none",
        "stride 1",
        "MiB",
        "last epoch: 1",
    ):
        assert piece in text, (piece, text)
