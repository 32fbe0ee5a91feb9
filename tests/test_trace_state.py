"""Tests for the trace's state and files: `Trace.to_state`/`from_state`, `bclab.trace.fileformat`
on its own, the on-disk layout of version 1, inconsistent states, and the TensorBoard tags."""

import json
import math

import numpy as np
import pytest
from test_trace import assert_same, fill, make_trace

from bclab.trace import KINDS, Trace, TraceFileError
from bclab.trace.fileformat import FORMAT_NAME, FORMAT_VERSION, read_file, write_file
from bclab.trace.store import STATE_KEYS
from bclab.trace.tensorboard import scalar_tags


def thinned_trace():
    """A trace whose both tables have thinned (caps 8 and 16 over 40 steps) and that holds a NaN loss."""
    trace = make_trace(max_records=8, max_scalar_steps=16)
    fill(trace, range(40), seed=5)
    fill(trace, range(40, 42), seed=6, loss=math.nan)
    assert trace.heavy_stride > 1 and trace.scalar_stride > 1
    return trace


def assert_same_state(a, b):
    """Two `(header, arrays)` pairs are equal, arrays bit for bit (NaN included) with their dtypes."""
    assert json.dumps(a[0], sort_keys=True) == json.dumps(b[0], sort_keys=True)
    assert sorted(a[1]) == sorted(b[1])
    for name, x in a[1].items():
        y = b[1][name]
        assert (x.dtype, x.shape, x.tobytes()) == (y.dtype, y.shape, y.tobytes()), name


def test_state_round_trip_equals_save_and_load(tmp_path):
    original = thinned_trace()
    state = original.to_state()
    assert sorted(state[0]) == sorted(STATE_KEYS)
    json.dumps(state[0], allow_nan=True)  # the header is JSON-able as it stands
    from_state = Trace.from_state(*state)
    original.save(tmp_path / "run.npz")
    loaded = Trace.load(tmp_path / "run.npz")
    assert_same(original, from_state)
    assert_same(from_state, loaded)
    assert from_state.summary() == loaded.summary() == original.summary()
    assert_same_state(from_state.to_state(), loaded.to_state())
    assert_same_state(read_file(tmp_path / "run.npz"), state)  # the file holds exactly the state
    for trace in (original, from_state, loaded):  # appending continues identically, thinning included
        fill(trace, range(42, 80), seed=7)
    assert_same(original, from_state)
    assert_same(original, loaded)


def test_state_shares_nothing_with_the_trace():
    trace = thinned_trace()
    before = trace.to_state()
    header, arrays = trace.to_state()
    header["heavy_objects"][-1]["events"].clear()
    header["meta"]["device"] = "changed"
    header["counter_names"].append("changed")
    for a in arrays.values():
        a.fill(0)
    assert_same_state(trace.to_state(), before)
    rebuilt = Trace.from_state(*before)
    before[0]["heavy_objects"][-1]["events"].clear()
    before[1]["heavy_hist_real"].fill(7)
    assert_same(rebuilt, trace)


def test_file_module_round_trips_any_header_and_arrays(tmp_path):
    header = {"name": "x", "values": [1, 2.5, None], "nested": {"a": [True, False]}}
    arrays = {"ints": np.arange(6, dtype=np.int16).reshape(2, 3), "empty": np.zeros((0, 4), np.float32)}
    write_file(tmp_path / "f.bin", header, arrays)  # the name is kept as given: no .npz added
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    assert_same_state(read_file(tmp_path / "f.bin", required=["name"]), (header, arrays))
    with pytest.raises(TraceFileError, match=r"lacks the keys \['other'\]"):
        read_file(tmp_path / "f.bin", required=["name", "other"])
    with pytest.raises(ValueError, match=r"`header`.*'version'"):
        write_file(tmp_path / "g.bin", {"version": 2}, {})
    with pytest.raises(ValueError, match=r"`arrays`.*'header'"):
        write_file(tmp_path / "g.bin", {}, {"header": np.zeros(1)})


def raw_archive(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return json.loads(arrays.pop("header").tobytes()), arrays


def write_archive(path, header, arrays):
    """An archive in the documented layout, written without bclab: JSON header as 1-D uint8."""
    payload = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, header=payload, **arrays)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "other.trace"}, f"format={FORMAT_NAME!r}"),
        ({"version": FORMAT_VERSION + 1}, f"version {FORMAT_VERSION + 1}, this bclab reads version {FORMAT_VERSION}"),
        ({"version": None}, "version None"),
    ],
)
def test_file_module_rejects_another_format_or_version(tmp_path, change, message):
    write_file(tmp_path / "f.npz", {"k": 1}, {"a": np.arange(3)})
    header, arrays = raw_archive(tmp_path / "f.npz")
    write_archive(tmp_path / "f.npz", {**header, **change}, arrays)
    with pytest.raises(TraceFileError, match=message):
        read_file(tmp_path / "f.npz")


def test_a_hand_written_version_1_file_loads(tmp_path):
    """The version-1 layout, spelled out independently of the code that writes it (a 0.1 layer key too)."""
    obj = {"epoch": 0, "events": [{"phase": "apply", "start": 0.0, "duration": 0.5, "detail": ""}], "counters": {}}
    header = {
        "format": "bclab.trace",
        "version": 1,
        "layers": [{"name": "d", "shape": [2, 2], "H": 0.5, "lr_scale": 2.0, "binary": True, "stochastic": False}],
        "params": [],
        "sample_size": 0,
        "max_records": 4,
        "max_scalar_steps": 4,
        "meta": {"note": "by hand"},
        "scalar_columns": [["", "loss"], ["d", "grad_norm"]],
        "counter_names": [],
        "scalar_thinning": {"stride": 1, "offered": 2},
        "heavy_thinning": {"stride": 1, "offered": 1},
        "heavy_objects": [obj],
        "latest": {"step": 0, "object": obj},
        "latest_counters": None,
        "n_appended": 2,
        "last_step": 1,
        "last_epoch": 0,
        "first_nonfinite": None,
    }
    arrays = {
        "scalar_step": np.array([0, 1]),
        "scalar_values": np.array([[0.5, 0.25], [0.4, np.nan]]),
        "scalar_mask": np.array([[True, True], [True, False]]),
        "heavy_step": np.array([0]),
        "heavy_plus": np.array([[3]]),
        "heavy_minus": np.array([[1]]),
        "heavy_binary_mask": np.array([[True]]),
        "latest_plus": np.array([3]),
        "latest_minus": np.array([1]),
        "latest_binary_mask": np.array([True]),
    }
    for i, kind in enumerate(KINDS):
        arrays[f"bin_edges_{kind}"] = np.array([-1.0, 0.0, 1.0])
        arrays[f"heavy_hist_{kind}"] = np.array([[[i, 4 - i]]])
        arrays[f"heavy_hist_mask_{kind}"] = np.array([[True]])
        arrays[f"latest_hist_{kind}"] = np.array([[i, 4 - i]])
        arrays[f"latest_hist_mask_{kind}"] = np.array([True])
    write_archive(tmp_path / "v1.npz", header, arrays)
    trace = Trace.load(tmp_path / "v1.npz")
    assert (len(trace), trace.last_step, trace.latest_heavy_step()) == (2, 1, 0)
    assert trace.layers[0].W_LR_scale == 2.0 and trace.meta == {"note": "by hand"}
    assert trace.scalars("loss")[1].tolist() == [0.5, 0.4]
    assert trace.scalars("grad_norm", "d")[0].tolist() == [0]  # masked out at step 1
    edges, counts = trace.histogram("real", "d", 0)
    assert edges.tolist() == [-0.5, 0.0, 0.5] and counts.tolist() == [0, 4]  # "real" edges scale by H = 0.5
    assert trace.histogram("update", "d", 0)[1].tolist() == [3, 1]
    assert trace.binary_counts("d", 0) == (3, 1) and trace.events(0) == obj["events"]
    trace.append({"step": 2, "scalars": {"loss": 0.3}})  # appending continues: row 2 of 4
    assert trace.scalars("loss")[0].tolist() == [0, 1, 2]


def break_state(change):
    header, arrays = thinned_trace().to_state()
    change(header, arrays)
    return header, arrays


BROKEN = {
    "a heavy array of the wrong shape": lambda h, a: a.update(heavy_plus=a["heavy_plus"][:, :1]),
    "a heavy array with a row too few": lambda h, a: a.update(heavy_step=a["heavy_step"][:-1]),
    "a missing array": lambda h, a: a.pop("scalar_mask"),
    "scalar columns that do not match": lambda h, a: h["scalar_columns"].pop(),
    "a latest row of the wrong dtype": lambda h, a: a.update(latest_plus=a["latest_plus"].astype(np.float32)),
    "more rows than offered": lambda h, a: h["heavy_thinning"].update(offered=1),
    "a zero stride": lambda h, a: h["scalar_thinning"].update(stride=0),
    "a row object with other keys": lambda h, a: h["heavy_objects"][0].pop("events"),
    "a step that is not an integer": lambda h, a: h.update(last_step="forty"),
    "bin edges that decrease": lambda h, a: a.update(bin_edges_prob=a["bin_edges_prob"][::-1].copy()),
}


@pytest.mark.parametrize("what", list(BROKEN))
def test_an_inconsistent_state_is_refused(tmp_path, what):
    header, arrays = break_state(BROKEN[what])
    with pytest.raises(ValueError, match="the trace state is inconsistent"):
        Trace.from_state(header, arrays)
    write_file(tmp_path / "bad.npz", header, arrays)
    with pytest.raises(TraceFileError, match=r"bad\.npz.*inconsistent"):
        Trace.load(tmp_path / "bad.npz")


def test_tensorboard_tags_name_every_scalar_series_once():
    trace = make_trace()
    fill(trace, range(3))
    tags = scalar_tags(trace)
    assert len({tag for tag, _, _ in tags}) == len(tags)
    expected = {("model/loss", "loss", None), ("model/compiled_runs", "compiled_runs", None)}
    expected |= {("binary_dense_1/flip_ratio", "flip_ratio", "binary_dense_1"), ("params/bias/mean", "mean", "bias")}
    assert expected <= set(tags)
    n_series = sum(len(trace.scalar_names(scope)) for scope in (None, *trace.layer_names, *trace.params))
    assert len(tags) == n_series
