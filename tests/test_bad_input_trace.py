"""Bad input to the trace reader, the lab and the TensorBoard export: one row per case, each with its exact outcome.

Trace files: every bad file raises `TraceFileError` naming the file and the problem, using little
memory however much the file claims (peak traced by `tracemalloc`, which sees NumPy's buffers).
The lab: loading each such file, or importing a bad config, shows the message in the status line
and leaves the lab as it was. TensorBoard: a missing install names the fix and writes nothing; a
failed export leaves nothing new; a second export into one folder replaces the first.
"""

import io
import json
import math
import os
import sys
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from test_trace import fill, make_trace

from bclab.trace import Trace, TraceFileError
from bclab.trace import tensorboard as tb
from bclab.trace.fileformat import FORMAT_VERSION, JSON_MEMORY_FACTOR, MIN_BUDGET_BYTES

PEAK_LIMIT = 50 * 2**20  # bytes any rejection may take; the hostile files claim gigabytes


@pytest.fixture(scope="module")
def good_state():
    """The raw contents of a small, valid trace file: its JSON header (with format and version) and its arrays."""
    trace = make_trace()
    fill(trace, range(3))
    header, arrays = trace.to_state()
    return {"format": "bclab.trace", "version": FORMAT_VERSION, **header}, arrays


def npy(shape, dtype, data: bytes) -> bytes:
    """A `.npy` file whose header declares `shape` and `dtype`, followed by `data` (which may disagree)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return out.getvalue() + data


def archive(path, header, arrays, raw=None, compression=zipfile.ZIP_DEFLATED):
    """Writes an npz by hand: the header (a dict as JSON, or bytes as they are), the arrays, and `raw` entries."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    entries = {"header.npy": npy((len(text),), np.uint8, text)}
    for key, a in arrays.items():
        out = io.BytesIO()
        np.lib.format.write_array(out, a, allow_pickle=True)
        entries[f"{key}.npy"] = out.getvalue()
    entries.update(raw or {})
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)


def edited(change):
    """A file maker: the good state, `change(header, arrays)` applied, written as an npz."""

    def make(path, state):
        header, arrays = json.loads(json.dumps(state[0])), dict(state[1])
        change(header, arrays)
        archive(path, header, arrays)

    return make


def raw_bytes(data):
    return lambda path, state: path.write_bytes(data)


def good_then(cut):
    """The good file's bytes, cut by `cut`."""

    def make(path, state):
        archive(path, *state)
        path.write_bytes(cut(path.read_bytes()))

    return make


def zip_of(entries, compression=zipfile.ZIP_DEFLATED):
    def make(path, state):
        with zipfile.ZipFile(path, "w", compression) as z:
            for name, data in entries.items():
                z.writestr(name, data)

    return make


def with_raw(entries, compression=zipfile.ZIP_DEFLATED):
    """The good state plus hand-made entries (name -> bytes)."""
    return lambda path, state: archive(path, *state, raw=entries, compression=compression)


def twice(name):
    """The good file with a second entry called `name` appended (zip allows it; np.load would keep one)."""

    def make(path, state):
        archive(path, *state)
        with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as z:
            warnings.simplefilter("ignore")  # "Duplicate name": that is the point
            z.writestr(name, npy((1,), np.int64, bytes(8)))

    return make


def zero_row_huge_sample(header, arrays):
    """Consistent claims of 10**8 tracked weights per layer, in zero rows: nothing in the file, gigabytes to build."""
    header.update(sample_size=10**8, heavy_objects=[], latest=None, heavy_thinning={"stride": 1, "offered": 0})
    for key in [k for k in arrays if k.startswith("latest_")]:
        del arrays[key]
    for key, a in list(arrays.items()):
        if key.startswith("heavy_"):
            sample = key.startswith("heavy_sample_") and "mask" not in key
            arrays[key] = np.zeros((0, 2, 10**8) if sample else (0, *a.shape[1:]), a.dtype)


def lying_sizes(path, state):
    """The good file plus an entry whose zip records (and .npy header) claim 4 GB but that holds 128 bytes."""
    claimed = 4_000_000_000
    header = npy(((claimed - 128) // 8,), np.float64, b"")
    assert len(header) == 128
    with_raw({"extra.npy": header})(path, state)
    data = bytearray(path.read_bytes())
    # The name follows a local record's 30 fixed bytes and a central record's 46; the uncompressed size
    # sits at offset 22 and 24 of them.
    for record, signature, size_at in ((30, b"PK\x03\x04", 22), (46, b"PK\x01\x02", 24)):
        at = next(i - record for i in _find_all(data, b"extra.npy") if data[i - record : i - record + 4] == signature)
        data[at + size_at : at + size_at + 4] = claimed.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _find_all(data, needle):
    at = data.find(needle)
    while at >= 0:
        yield at
        at = data.find(needle, at + 1)


def corrupt_data(path, state):
    """A stored (uncompressed) archive with one byte of an array's data flipped: the CRC no longer matches."""
    archive(path, *state, compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    magic = data.index(b"\x93NUMPY", data.index(b"heavy_plus.npy"))
    header_length = int.from_bytes(data[magic + 8 : magic + 10], "little")  # .npy version 1.0
    data[magic + 10 + header_length + 1] ^= 0xFF  # the second byte of the array's data
    path.write_bytes(bytes(data))


def put(key, value):
    return edited(lambda h, a: h.__setitem__(key, value))


def layer0(key, value):
    return edited(lambda h, a: h["layers"][0].__setitem__(key, value))


EMPTY_LISTS = b'{"format": "bclab.trace", "x": [' + b"[]," * 10**6 + b"[]]}"  # 3 MB, 56 bytes per list parsed
DEEP = b'{"format": "bclab.trace", "version": 1, "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

# name -> (make the file, a fragment the message must hold besides the file's name)
FILES = {
    "an empty file": (raw_bytes(b""), "not a readable .npz archive"),
    "random bytes": (raw_bytes(np.random.default_rng(0).bytes(4096)), "not a readable .npz archive"),
    "the first 100 bytes of a trace": (good_then(lambda b: b[:100]), "not a readable .npz archive"),
    "a trace without its last 100 bytes": (good_then(lambda b: b[:-100]), "not a readable .npz archive"),
    "a plain .npy file": (raw_bytes(npy((3,), np.int64, bytes(24))), "not a readable .npz archive"),
    "a zip of a text file": (zip_of({"notes.txt": b"hello"}), "'notes.txt' is not a .npy array"),
    "a zip with a folder entry": (zip_of({"sub/": b""}), "'sub/' is not a .npy array"),
    "an npz without a header": (zip_of({"x.npy": npy((3,), np.int64, bytes(24))}), "no `header` entry"),
    "a header of floats": (
        zip_of({"header.npy": npy((2,), np.float64, bytes(16))}),
        "no `header` entry holding a JSON header",
    ),
    "a header that is not JSON": (lambda p, s: archive(p, b"{not json", {}), "JSON header does not parse"),
    "a header that is not UTF-8": (lambda p, s: archive(p, b"\xff\xfe{}", {}), "JSON header does not parse"),
    "a header nested 100,000 deep": (lambda p, s: archive(p, DEEP, {}), "does not parse: RecursionError"),
    "a header integer of 5,000 digits": (
        lambda p, s: archive(p, b'{"sample_size": ' + b"9" * 5000 + b"}", {}),
        "does not parse: ValueError: Exceeds the limit",
    ),
    "a header that is a list": (lambda p, s: archive(p, b"[1, 2]", {}), "format='bclab.trace'"),
    "another format": (put("format", "other.trace"), "format='bclab.trace'"),
    "version 99": (put("version", 99), "format version 99, this bclab reads version 1"),
    "version true": (put("version", True), "format version True"),
    "a missing header key": (edited(lambda h, a: h.pop("latest")), "lacks the keys ['latest']"),
    "sample_size as text": (put("sample_size", "4"), "`sample_size`"),
    "sample_size 10**30": (put("sample_size", 10**30), "`sample_size`, expected an integer in [0, 2**63 - 1]"),
    "sample_size true": (put("sample_size", True), "`sample_size`"),
    "max_records 1": (put("max_records", 1), "`max_records`"),
    "layers as a mapping": (put("layers", {"name": "x"}), "`layers`, expected a list"),
    "a layer's H as text": (layer0("H", "1.0"), "`layers[0]['H']`"),
    "a layer's shape as text": (layer0("shape", "16x8"), "`layers[0]['shape']`"),
    "params with a number": (put("params", ["bias", 3]), "`params`"),
    "meta as a list": (put("meta", [1, 2]), "`meta`, expected a mapping"),
    "scalar columns of numbers": (put("scalar_columns", [[0, 1]]), "`scalar_columns[0]`"),
    "a zero stride": (edited(lambda h, a: h["scalar_thinning"].update(stride=0)), "`scalar_thinning['stride']`"),
    "events as text": (edited(lambda h, a: h["heavy_objects"][0].update(events="x")), "`events`"),
    "an event time of null": (
        edited(lambda h, a: h["heavy_objects"][0]["events"][0].update(start=None)),
        "a finite number of seconds",
    ),
    "first_nonfinite of other keys": (put("first_nonfinite", {"x": 1}), "`first_nonfinite`"),
    "latest_counters as a number": (put("latest_counters", 5), "`latest_counters`"),
    "a small extra entry": (edited(lambda h, a: a.update(extra=np.zeros(3))), "unknown ['extra']"),
    "a huge extra entry": (edited(lambda h, a: a.update(extra=np.zeros(10**8, np.uint8))), "unknown ['extra']"),
    "an entry whose zip sizes lie": (
        lying_sizes,
        "its arrays ('extra' the largest, of shape (499999984,)) would take 4000",
    ),
    "a JSON header of a million empty lists": (
        lambda p, s: archive(p, EMPTY_LISTS, {}),
        f"its JSON header of {len(EMPTY_LISTS)} bytes, once parsed, would take "
        f"{JSON_MEMORY_FACTOR * len(EMPTY_LISTS)} bytes in memory",
    ),
    "a missing array": (edited(lambda h, a: a.pop("heavy_plus")), "missing ['heavy_plus']"),
    "an object array": (edited(lambda h, a: a.update(heavy_plus=np.array([None, 1], object))), "dtype object"),
    "a complex array": (edited(lambda h, a: a.update(extra=np.zeros(2, complex))), "dtype complex128"),
    "a structured array": (edited(lambda h, a: a.update(extra=np.zeros(2, "i4,f4"))), "plain numbers and booleans"),
    "counts as floats": (
        edited(lambda h, a: a.update(heavy_plus=a["heavy_plus"].astype(np.float64))),
        "'heavy_plus' has shape (3, 2) and dtype float64",
    ),
    "heavy steps out of order": (
        edited(lambda h, a: a.update(heavy_step=a["heavy_step"][::-1].copy())),
        "'heavy_step' holds steps that are not non-negative and increasing",
    ),
    "negative +H counts": (edited(lambda h, a: a.update(heavy_plus=-a["heavy_plus"])), "negative counts"),
    "a latest step before the rows'": (
        edited(lambda h, a: h["latest"].update(step=1)),
        "the latest heavy step 1 comes before the last row's, 2",
    ),
    "sample_size 10**8 over arrays of 4": (put("sample_size", 10**8), "gives shape (3, 2, 100000000)"),
    "10**8 tracked weights in zero rows": (edited(zero_row_huge_sample), "bytes allowed for a file of its size"),
    "an entry claiming 10**9 elements": (
        with_raw({"extra.npy": npy((10**9,), np.float64, bytes(80))}),
        "declares shape (1000000000,) of float64 (8000000000 bytes) but holds 80 bytes",
    ),
    "an entry of fewer bytes than its shape": (
        with_raw({"extra.npy": npy((10,), np.float64, bytes(8))}),
        "but holds 8 bytes",
    ),
    "two entries of one name": (twice("heavy_plus.npy"), "'heavy_plus.npy' is a second entry of that name"),
    "an entry that is not .npy inside": (with_raw({"extra.npy": b"PK not numpy"}), "'extra.npy' is not a valid .npy"),
    "an entry compressed with bzip2": (
        with_raw({"extra.npy": npy((1,), np.int64, bytes(8))}, compression=zipfile.ZIP_BZIP2),
        "compressed in a way np.savez never writes",
    ),
    "flipped bytes in an array": (corrupt_data, "'heavy_plus.npy' is corrupt: BadZipFile"),
}


@pytest.mark.parametrize("case", list(FILES))
def test_a_bad_trace_file_raises_trace_file_error_naming_it(tmp_path, good_state, case):
    make, fragment = FILES[case]
    path = tmp_path / "bad.npz"
    make(path, good_state)
    assert os.path.getsize(path) < MIN_BUDGET_BYTES / 100  # every file here is small ...
    tracemalloc.start()
    try:
        with pytest.raises(TraceFileError) as caught:
            Trace.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(f"Cannot load trace file {str(path)!r}: ")
    assert fragment in message
    assert len(message) < 1200  # a huge value in the file is cut short, not pasted whole
    assert peak < PEAK_LIMIT  # ... and however much it claims, rejecting it takes little memory


def test_the_good_state_itself_loads(tmp_path, good_state):
    """The rows above differ from a loadable file only by what each changes."""
    archive(tmp_path / "good.npz", *good_state)
    assert len(Trace.load(tmp_path / "good.npz")) == 3
    edited(lambda h, a: None)(tmp_path / "same.npz", good_state)
    assert len(Trace.load(tmp_path / "same.npz")) == 3


NOT_FILES = {  # name -> (the path, relative to tmp_path, made by `make`; the problem stated)
    "a missing file": ("missing.npz", lambda path: None, "the file does not exist."),
    "a folder": ("folder.npz", os.mkdir, "it is a folder, not a trace file."),
    "a named pipe": ("pipe.npz", os.mkfifo, "it is not a regular file (a pipe or a device?)."),
}


@pytest.mark.parametrize("case", list(NOT_FILES))
def test_a_path_that_is_not_a_file_is_named(tmp_path, case):
    name, make, problem = NOT_FILES[case]
    make(tmp_path / name)
    with pytest.raises(TraceFileError) as caught:
        Trace.load(tmp_path / name)  # a pipe would block a reader forever
    assert str(caught.value) == f"Cannot load trace file {str(tmp_path / name)!r}: {problem}"


def test_non_finite_values_are_written_as_null_and_load(tmp_path):
    trace = make_trace()
    trace = Trace(
        trace.layers,
        trace.bin_edges,
        meta={"lr": math.nan, "limits": [math.inf, -math.inf, 1.5], "ok": {"x": 2}},
    )
    trace.append({"step": 0, "scalars": {"loss": math.nan}})
    trace.save(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz", allow_pickle=False) as data:
        text = data["header"].tobytes().decode()

    def refuse(constant):
        raise AssertionError(f"bare {constant} in the header")

    header = json.loads(text, parse_constant=refuse)  # strict JSON: no NaN, Infinity, -Infinity
    assert header["meta"] == {"lr": None, "limits": [None, None, 1.5], "ok": {"x": 2}}
    assert header["first_nonfinite"] == {"step": 0, "name": "loss", "layer": None}
    loaded = Trace.load(tmp_path / "t.npz")
    assert loaded.meta == header["meta"] and loaded.first_nonfinite() == trace.first_nonfinite()
    assert math.isnan(loaded.scalars("loss")[1][0])  # arrays keep their NaN: only the JSON header changes


def test_an_event_time_must_be_finite():
    trace = make_trace()
    with pytest.raises(ValueError, match=r"`events\[0\]\['start'\]`, expected a finite number of seconds"):
        trace.append({"step": 0, "events": [{"phase": "x", "start": math.nan, "duration": 0.0}]})
    assert len(trace) == 0


# ---------------------------------------------------------------------------------------- the lab


@pytest.fixture(scope="module")
def lab_with_trace(tmp_path_factory, good_state):
    """A lab showing a good trace; each row tries to replace it with a bad one."""
    from bclab.lab import Lab

    folder = tmp_path_factory.mktemp("lab")
    archive(folder / "good.npz", *good_state)
    lab = Lab()
    shown = lab.load_trace(folder / "good.npz")
    assert shown is not None
    yield lab, shown
    lab.runner.reset(timeout=60)


LAB_FILES = [
    "an empty file",
    "a trace without its last 100 bytes",
    "a header nested 100,000 deep",
    "sample_size as text",
    "a huge extra entry",
    "an object array",
    "10**8 tracked weights in zero rows",
    "flipped bytes in an array",
]


@pytest.mark.parametrize("case", LAB_FILES)
def test_the_lab_shows_why_a_trace_file_did_not_load_and_keeps_what_it_showed(
    tmp_path, lab_with_trace, good_state, case
):
    import html

    lab, shown = lab_with_trace
    make, fragment = FILES[case]
    path = tmp_path / "bad.npz"
    make(path, good_state)
    assert lab.load_trace(path) is None
    status = html.unescape(lab.status.value)
    assert f"Trace not loaded: Cannot load trace file {str(path)!r}: " in status and fragment in status
    assert lab.trace is shown and lab.history.max == shown.last_step  # still showing the good trace


@pytest.mark.parametrize("error", [RecursionError("deep"), MemoryError(), TypeError("odd"), OSError(5, "I/O error")])
def test_the_lab_survives_any_exception_from_loading(tmp_path, lab_with_trace, monkeypatch, error):
    import html

    lab, shown = lab_with_trace

    def fail(path):
        raise error

    monkeypatch.setattr(Trace, "load", fail)
    assert lab.load_trace(tmp_path / "x.npz") is None
    status = html.unescape(lab.status.value)
    expected = {
        RecursionError: "RecursionError: deep",
        MemoryError: "MemoryError",
        TypeError: "TypeError: odd",
        OSError: "[Errno 5] I/O error",
    }[type(error)]
    assert f"Trace not loaded from {tmp_path / 'x.npz'}: {expected}" in status  # an absolute path, unquoted
    assert lab.trace is shown


CONFIGS = {  # text -> a fragment of the status line
    "{not json": "text that is not valid JSON",
    "[1, 2]": "Received an invalid value for `config`, expected a mapping",
    '{"H": "x"}': "Received an invalid value for `H`",
    '{"epochs": 1.5}': "Received an invalid value for `epochs`",
    '{"epochs": 1e999}': "Received: epochs=inf",
    '{"unknown": 1}': "unknown: ['unknown']",
    "[" * 100_000: "RecursionError",
    '{"seed": ' + "9" * 5000 + "}": "Exceeds the limit (4300 digits)",
}


@pytest.mark.parametrize("text", list(CONFIGS), ids=[t[:20] for t in CONFIGS])
def test_a_bad_config_is_reported_and_the_controls_keep_their_values(lab_with_trace, text):
    import html

    lab, _ = lab_with_trace
    before = lab.config
    assert not lab.import_config(text)
    status = html.unescape(lab.status.value)
    assert "Config not imported: " in status and CONFIGS[text] in status
    assert lab.config == before


def test_a_config_that_is_not_text_is_reported(lab_with_trace):
    import html

    lab, _ = lab_with_trace
    assert not lab.import_config(None)
    assert "Config not imported: TypeError: the JSON object must be str" in html.unescape(lab.status.value)


# ---------------------------------------------------------------------------------------- TensorBoard


def event_points(logdir):
    """tag -> number of points TensorBoard reads from every events file in `logdir`."""
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return {tag: len(accumulator.Tensors(tag)) for tag in accumulator.Tags()["tensors"]}


@pytest.fixture(scope="module")
def small_trace():
    trace = make_trace()
    fill(trace, range(5))
    return trace


def test_exporting_twice_into_one_folder_does_not_duplicate_points(tmp_path, small_trace):
    foreign = ["notes.txt", "events.out.tfevents.1.otherhost"]  # not bclab's: left alone
    for name in foreign:
        (tmp_path / name).write_bytes(b"")
    first = tb.export_scalars(small_trace, tmp_path)
    second = tb.export_scalars(small_trace, tmp_path)
    assert first != second and not os.path.exists(first) and os.path.exists(second)
    assert sorted(os.listdir(tmp_path)) == sorted([*foreign, os.path.basename(second)])
    points = event_points(tmp_path)
    assert points["model/loss"] == 5 and points["binary_dense/grad_norm"] == 5
    assert set(points) == {tag for tag, _, _ in tb.scalar_tags(small_trace)}


def without_tensorboard(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard.summary.v2", None)  # `import` of it now fails


def test_check_available_names_the_fix_when_tensorboard_is_missing(monkeypatch):
    tb.check_available()  # installed here
    without_tensorboard(monkeypatch)
    with pytest.raises(ModuleNotFoundError, match="pip install tensorboard"):
        tb.check_available()


def test_an_export_without_tensorboard_writes_nothing(tmp_path, small_trace, monkeypatch):
    without_tensorboard(monkeypatch)
    with pytest.raises(ModuleNotFoundError, match="pip install tensorboard"):
        tb.export_scalars(small_trace, tmp_path / "board")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_export_leaves_nothing_new(tmp_path, small_trace, monkeypatch, existing):
    import tensorflow as tf

    logdir = tmp_path / "board"
    if existing:
        kept = tb.export_scalars(small_trace, logdir)
    original, calls = tf.summary.scalar, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(tf.summary, "scalar", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        tb.export_scalars(small_trace, logdir)
    if existing:  # the earlier export is still there, alone and whole
        assert os.listdir(logdir) == [os.path.basename(kept)] and event_points(logdir)["model/loss"] == 5
    else:
        assert not logdir.exists()


def test_a_diverged_runs_all_nan_trace_loads_however_well_it_compresses(tmp_path):
    """The budget must admit what bclab writes: 400,000 steps of NaN scalars deflate to almost nothing."""
    trace = make_trace(max_scalar_steps=10**6)
    fill(trace, range(3), loss=math.nan)
    header, arrays = trace.to_state()
    n, columns = 400_000, arrays["scalar_values"].shape[1]
    arrays.update(
        scalar_step=np.arange(n, dtype=np.int64),
        scalar_values=np.full((n, columns), np.nan),
        scalar_mask=np.ones((n, columns), bool),
    )
    header["scalar_thinning"] = {"stride": 1, "offered": n}
    Trace.from_state(header, arrays).save(tmp_path / "nan.npz")
    in_memory = sum(arrays[name].nbytes for name in ("scalar_step", "scalar_values", "scalar_mask"))
    assert in_memory > MIN_BUDGET_BYTES and in_memory > 50 * os.path.getsize(tmp_path / "nan.npz")
    loaded = Trace.load(tmp_path / "nan.npz")
    steps, values = loaded.scalars("loss")
    assert len(steps) == n and np.isnan(values).all()


def test_an_export_onto_a_file_fails_and_leaves_it_alone(tmp_path, small_trace):
    (tmp_path / "board").write_text("a file")
    with pytest.raises(FileExistsError):
        tb.export_scalars(small_trace, tmp_path / "board")
    assert os.listdir(tmp_path) == ["board"] and (tmp_path / "board").read_text() == "a file"


def _paths(obj, prefix=()):
    """Every place in a JSON document (the first two items of each list), as key paths."""
    yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj[:2]) if isinstance(obj, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


def _read_everything(trace):
    """Every reader the lab, the plots and the CLI use, on every layer and step."""
    trace.summary()
    for step in trace.steps().tolist():
        trace.events(step), trace.counters(step)
        for layer in trace.layer_names:
            trace.histogram("real", layer, step), trace.binary_counts(layer, step), trace.sample_at(layer, step)
    for scope in (None, *trace.layer_names, *trace.params):
        for name in trace.scalar_names(scope):
            trace.scalars(name, scope)


WRONG = [None, "x", [], {}, -1, 2**63, True, 1.5, math.nan, [None], {"a": 1}]


def test_any_header_value_of_a_wrong_type_is_refused_or_harmless():
    """The kind, not the case: each header value in turn, replaced by each wrong value, either
    raises the one ValueError of an inconsistent state or gives a trace every reader can read."""
    trace = make_trace()
    fill(trace, range(3))
    header, arrays = trace.to_state()
    escaped, tried = [], 0
    for path in list(_paths(header))[1:]:
        for value in WRONG:
            tried += 1
            changed = json.loads(json.dumps(header))
            parent = changed
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = value
            try:
                _read_everything(Trace.from_state(changed, arrays))
            except ValueError as error:
                if not str(error).startswith("the trace state is inconsistent: "):
                    escaped.append((path, value, error))
            except Exception as error:
                escaped.append((path, value, error))
    assert escaped == [] and tried > 1000


def test_any_array_of_a_wrong_dtype_or_shape_is_refused_or_harmless(tmp_path, good_state):
    escaped = []
    for name, a in good_state[1].items():
        negative = a.astype(np.int64) * -1 - 1
        for variant in (a.astype(np.float32), a.astype(bool), a[:0], a.reshape(-1), a[..., None], negative, a[..., 0]):
            archive(tmp_path / "f.npz", good_state[0], {**good_state[1], name: variant})
            try:
                _read_everything(Trace.load(tmp_path / "f.npz"))
            except TraceFileError:
                pass
            except Exception as error:
                escaped.append((name, variant.dtype, variant.shape, error))
    assert escaped == []
