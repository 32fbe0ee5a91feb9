"""What goes in and out of a `bclab.trace.Trace`: record validation, files and summary text.

`bclab.trace` holds the in-memory store and its read API; this module holds its boundaries:
`normalize_record` checks one appended record against the trace's construction, `save_trace` /
`load_trace` write and read the file format, and `format_summary` renders the CLI summary.

File format: one `.npz` archive of arrays (loadable with `allow_pickle=False`) whose `"header"`
entry is a JSON document stored as a 1-D `uint8` array. It holds the format version, layers,
params, meta, scalar names, thinning state and the event lists; histograms, counts, samples and
scalars are arrays, so a round trip is bit-exact. NumPy and the standard library only.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from bclab.atomic import atomic_write
from bclab.trace.schema import KINDS, SAMPLE_FIELDS
from bclab.validation import invalid_value

FORMAT_NAME = "bclab.trace"
FORMAT_VERSION = 1
HEADER_KEY = "header"
MODEL_SCOPE = ""  # scope of model-level scalars and counters; layer/param names are non-empty
_RECORD_KEYS = ("step", "epoch", "scalars", "layers", "params", "events", "counters")
_LAYER_KEYS = ("hist", "plus", "minus", "scalars", "sample")
_EVENT_KEYS = ("phase", "start", "duration", "detail")


class TraceFileError(ValueError):
    """A trace file is missing, truncated, corrupt or not a trace of a known version."""


def real(arg: str, value: Any) -> float:
    if isinstance(value, (str, bytes)) or np.ndim(value) != 0:
        raise invalid_value(arg, value, "a real number")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise invalid_value(arg, value, "a real number") from exc


def integer(arg: str, value: Any, minimum: int | None = None) -> int:
    try:
        result = operator.index(value)
    except TypeError as exc:
        raise invalid_value(arg, value, "an integer") from exc
    if minimum is not None and result < minimum:
        raise invalid_value(arg, value, f"an integer >= {minimum}")
    return result


def mapping(arg: str, value: Any, allowed: Sequence[str] | None = None) -> Mapping:
    if type(value) is not dict and not isinstance(value, Mapping):  # ABC checks are slow
        raise invalid_value(arg, value, "a mapping")
    if allowed is not None:
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise ValueError(
                f"Received an invalid value for `{arg}`: unknown keys {unknown}; expected keys among {list(allowed)}."
            )
    return value


def validate_bin_edges(bin_edges: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Checks the histogram edges of every kind; returns read-only float64 copies."""
    mapping("bin_edges", bin_edges)
    if sorted(bin_edges) != sorted(KINDS):
        raise invalid_value("bin_edges", list(bin_edges), f"exactly the kinds {list(KINDS)}")
    result = {}
    for kind in KINDS:
        edges = np.array(bin_edges[kind], dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or not np.all(np.isfinite(edges)) or not np.all(np.diff(edges) > 0):
            raise invalid_value(
                f"bin_edges[{kind!r}]", bin_edges[kind], "a 1-D array of at least 2 finite, strictly increasing edges"
            )
        edges.flags.writeable = False
        result[kind] = edges
    return result


def heavy_row_specs(
    n_layers: int, bin_edges: Mapping[str, np.ndarray], sample_size: int
) -> dict[str, tuple[tuple[int, ...], Any, Any]]:
    """Name -> (shape, dtype, blank value) of each heavy-store array, per row.

    Every blank value but the step's is 0/False, which `normalize_record` relies on.
    """
    specs: dict[str, tuple[tuple[int, ...], Any, Any]] = {"step": ((), np.int64, -1)}
    for kind in KINDS:
        specs[f"hist_{kind}"] = ((n_layers, len(bin_edges[kind]) - 1), np.int64, 0)
        specs[f"hist_mask_{kind}"] = ((n_layers,), np.bool_, False)
    for name in ("plus", "minus"):
        specs[name] = ((n_layers,), np.int64, 0)
    specs["binary_mask"] = ((n_layers,), np.bool_, False)
    for field in SAMPLE_FIELDS if sample_size else ():
        specs[f"sample_{field}"] = ((n_layers, sample_size), np.float32, 0)
        specs[f"sample_mask_{field}"] = ((n_layers,), np.bool_, False)
    return specs


def _add_scalars(items: list, scope: str, values: Any, arg: str) -> None:
    for name, v in mapping(arg, values).items():
        if type(v) is not float:  # the training loop passes floats; check the rest in full
            v = real(f"{arg}[{name!r}]", v)
        items.append(((scope, str(name)), v))


def normalize_record(
    record: Mapping[str, Any],
    *,
    layer_index: Mapping[str, int],
    params: Sequence[str],
    bin_edges: Mapping[str, np.ndarray],
    sample_size: int,
    row_specs: Mapping[str, tuple],
) -> tuple:
    """Validates one record against a trace's construction, before anything is stored.

    Returns:
        `(step, epoch, scalar_items, counters, row, obj)`: `scalar_items` is a list of
        `((scope, name), value)`; `row` maps heavy-store array names to this step's arrays
        (None for a light record); `obj` holds the epoch, events and counters.
    """
    mapping("record", record, _RECORD_KEYS)
    if "step" not in record:
        raise ValueError(f"Received an invalid record, expected a 'step' key. Received keys: {list(record)}")
    step = integer("step", record["step"], 0)
    epoch = integer("epoch", record["epoch"], 0) if "epoch" in record else None
    items: list[tuple[tuple[str, str], float]] = []
    _add_scalars(items, MODEL_SCOPE, record.get("scalars", {}), "scalars")
    if epoch is not None and not any(key == (MODEL_SCOPE, "epoch") for key, _ in items):
        items.append(((MODEL_SCOPE, "epoch"), float(epoch)))
    counters = {
        str(k): integer(f"counters[{k!r}]", v) for k, v in mapping("counters", record.get("counters", {})).items()
    }
    items += [((MODEL_SCOPE, k), float(v)) for k, v in counters.items()]
    for pname, pscalars in mapping("params", record.get("params", {}), params).items():
        _add_scalars(items, pname, pscalars, f"params[{pname!r}]")
    if len({key for key, _ in items}) != len(items):
        raise ValueError(
            "Received an invalid record: a model-level name is used twice "
            "in both `scalars` and `counters`. Received: "
            f"{sorted(k[1] for k, _ in items if k[0] == MODEL_SCOPE)}"
        )
    # Every row array's blank value is 0/False (see heavy_row_specs), so zeros is exact.
    row = {name: np.zeros(shape, dtype) for name, (shape, dtype, _) in row_specs.items() if name != "step"}
    heavy = False
    k = sample_size
    for lname, entry in mapping("layers", record.get("layers", {}), list(layer_index)).items():
        li = layer_index[lname]
        arg = f"layers[{lname!r}]"
        mapping(arg, entry, _LAYER_KEYS)
        _add_scalars(items, lname, entry.get("scalars", {}), f"{arg}['scalars']")
        for kind, counts in mapping(f"{arg}['hist']", entry.get("hist", {}), KINDS).items():
            nbins = len(bin_edges[kind]) - 1
            c = np.asarray(counts)
            if (
                c.shape != (nbins,)
                or c.dtype.kind not in "iuf"
                or (c.dtype.kind == "f" and not (np.floor(c) == c).all())
            ):
                raise invalid_value(f"{arg}['hist'][{kind!r}]", counts, f"{nbins} integer counts (shape ({nbins},))")
            row[f"hist_{kind}"][li] = c
            row[f"hist_mask_{kind}"][li] = heavy = True
        if ("plus" in entry) != ("minus" in entry):
            raise ValueError(
                f"Received an invalid value for `{arg}`, expected both 'plus' "
                f"and 'minus' or neither. Received keys: {list(entry)}"
            )
        if "plus" in entry:
            row["plus"][li] = integer(f"{arg}['plus']", entry["plus"], 0)
            row["minus"][li] = integer(f"{arg}['minus']", entry["minus"], 0)
            row["binary_mask"][li] = heavy = True
        sample = mapping(f"{arg}['sample']", entry.get("sample", {}), SAMPLE_FIELDS)
        if sample and not k:
            raise ValueError(
                f"Received an invalid value for `{arg}['sample']`: this trace "
                "was built with sample_size=0, so it holds no samples."
            )
        for field, values in sample.items():
            v = np.asarray(values)
            if v.shape != (k,) or v.dtype.kind not in "biuf":
                raise invalid_value(
                    f"{arg}['sample'][{field!r}]", values, f"a 1-D array of {k} numbers (sample_size={k})"
                )
            row[f"sample_{field}"][li] = v
            row[f"sample_mask_{field}"][li] = heavy = True
    for kind in KINDS:  # one check per kind, not per layer: append is on the hot path
        negative = (row[f"hist_{kind}"] < 0).any(axis=1)
        if negative.any():
            lname = list(layer_index)[int(np.argmax(negative))]
            raise invalid_value(
                f"layers[{lname!r}]['hist'][{kind!r}]", row[f"hist_{kind}"][layer_index[lname]], "non-negative counts"
            )
    events = []
    for n, event in enumerate(record.get("events", ())):
        mapping(f"events[{n}]", event, _EVENT_KEYS)
        if not all(key in event for key in _EVENT_KEYS[:3]):
            raise invalid_value(f"events[{n}]", event, "keys 'phase', 'start', 'duration'")
        events.append(
            {
                "phase": str(event["phase"]),
                "start": real(f"events[{n}]['start']", event["start"]),
                "duration": real(f"events[{n}]['duration']", event["duration"]),
                "detail": str(event.get("detail", "")),
            }
        )
    heavy = heavy or bool(events)
    obj = {"epoch": epoch, "events": events, "counters": counters}
    return step, epoch, items, counters, (row if heavy else None), obj


def write_npz(path: str | os.PathLike, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Writes `header` and `arrays` to `path` atomically.

    The archive goes to a temporary file in the same directory which is then `os.replace`d
    onto `path`, so a crash leaves either the old file or the new one, never half of one.
    The file is written at exactly `path` (no `.npz` suffix is added).
    """
    path = os.fspath(path)
    full = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **header}
    payload = json.dumps(full).encode("utf-8")
    entries = {HEADER_KEY: np.frombuffer(payload, dtype=np.uint8), **arrays}
    with atomic_write(path) as handle:
        np.savez_compressed(handle, **entries)


def read_npz(path: str | os.PathLike, required: Iterable[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads a file written by `write_npz`.

    Args:
        path: The file to read.
        required: Header keys that must be present.

    Returns:
        `(header, arrays)`, with every array fully loaded into memory.

    Raises:
        TraceFileError: The file is missing, unreadable, not an npz archive, has no valid
            JSON header, is of another format or version, or lacks a required header key.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TraceFileError(f"Cannot load trace file {path!r}: the file does not exist.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    # A damaged archive surfaces as any of BadZipFile, zlib.error, EOFError, ValueError,
    # OSError, AttributeError (a plain .npy has no .files) ...; all mean the same thing here.
    except Exception as exc:
        raise TraceFileError(
            f"Cannot load trace file {path!r}: it is not a readable .npz archive "
            f"(truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc
    raw = arrays.pop(HEADER_KEY, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise TraceFileError(
            f"Cannot load trace file {path!r}: it has no `{HEADER_KEY}` entry holding a "
            f"JSON header as a 1-D uint8 array; it was not written by bclab."
        )
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TraceFileError(f"Cannot load trace file {path!r}: its JSON header does not parse: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise TraceFileError(
            f"Cannot load trace file {path!r}: expected a header with format={FORMAT_NAME!r}; it is not a bclab trace."
        )
    if header.get("version") != FORMAT_VERSION:
        raise TraceFileError(
            f"Cannot load trace file {path!r}: it has format version "
            f"{header.get('version')!r}, this bclab reads version {FORMAT_VERSION}."
        )
    missing = [key for key in required if key not in header]
    if missing:
        raise TraceFileError(f"Cannot load trace file {path!r}: its header lacks the keys {missing}.")
    return header, arrays


_REQUIRED = (
    "layers",
    "params",
    "sample_size",
    "max_records",
    "max_scalar_steps",
    "meta",
    "scalar_columns",
    "counter_names",
    "scalar_thinning",
    "heavy_thinning",
    "heavy_objects",
    "latest",
    "latest_counters",
    "n_appended",
    "last_step",
    "last_epoch",
    "first_nonfinite",
)


def save_trace(trace: Any, path: str | os.PathLike) -> None:
    """Writes `trace` to `path`; safe while another thread appends to it."""
    # Snapshot under the lock, write outside it, so a slow disk never stalls training. The
    # row objects (events, counters) are never mutated once stored, so sharing them is safe.
    with trace._lock:
        scalars, heavy, latest = trace._scalars, trace._heavy, trace._latest
        n_columns = len(trace._columns)
        arrays = {f"bin_edges_{kind}": edges.copy() for kind, edges in trace._bin_edges.items()}
        arrays.update(scalars.snapshot("scalar_"))
        for name in ("scalar_values", "scalar_mask"):
            arrays[name] = arrays[name][:, :n_columns]
        arrays.update(heavy.snapshot("heavy_"))
        if latest is not None:
            arrays.update({f"latest_{name}": a.copy() for name, a in latest[1].items()})
        header = {
            "layers": [{**vars(li), "shape": list(li.shape)} for li in trace._layers],
            "params": list(trace._params),
            "sample_size": trace._sample_size,
            "max_records": trace._max_records,
            "max_scalar_steps": trace._max_scalar_steps,
            "meta": trace._meta,
            "scalar_columns": [list(key) for key in trace._columns],
            "counter_names": list(trace._counter_names),
            "scalar_thinning": {"stride": scalars.stride, "offered": scalars.offered},
            "heavy_thinning": {"stride": heavy.stride, "offered": heavy.offered},
            "heavy_objects": list(heavy.objects),
            "latest": None if latest is None else {"step": latest[0], "object": latest[2]},
            "latest_counters": trace._latest_counters,
            "n_appended": trace._n_appended,
            "last_step": trace._last_step,
            "last_epoch": trace._last_epoch,
            "first_nonfinite": trace._first_nonfinite,
        }
    write_npz(path, header, arrays)


def load_trace(cls: type, path: str | os.PathLike) -> Any:
    """Reads a file written by `save_trace` into a new `cls` (a `Trace`), thinning state included.

    Raises:
        TraceFileError: The file is missing, corrupt, of another version or inconsistent.
    """
    from bclab.trace.store import LayerInfo  # here, not at the top: bclab.trace.store imports this module

    header, arrays = read_npz(path, _REQUIRED)
    try:
        layers = [
            LayerInfo(
                name=d["name"],
                shape=tuple(d["shape"]),
                H=d["H"],
                W_LR_scale=d["W_LR_scale"] if "W_LR_scale" in d else d["lr_scale"],  # 0.1 files: lr_scale
                binary=d["binary"],
                stochastic=d["stochastic"],
            )
            for d in header["layers"]
        ]
        trace = cls(
            layers,
            {kind: arrays[f"bin_edges_{kind}"] for kind in KINDS},
            params=header["params"],
            sample_size=header["sample_size"],
            max_records=header["max_records"],
            max_scalar_steps=header["max_scalar_steps"],
            meta=header["meta"],
        )
        for scope, name in header["scalar_columns"]:
            trace._add_column((scope, name))
        width = trace._scalars.arrays["values"].shape[1]
        n_columns = len(trace._columns)
        scalar_arrays = {"scalar_step": arrays["scalar_step"]}
        for name, fill in (("scalar_values", np.nan), ("scalar_mask", False)):
            loaded = arrays[name]
            if loaded.ndim != 2 or loaded.shape[1] != n_columns:
                raise ValueError(f"array {name!r} has shape {loaded.shape}, expected {n_columns} columns")
            padded = np.full((len(loaded), width), fill, loaded.dtype)
            padded[:, :n_columns] = loaded
            scalar_arrays[name] = padded
        n_rows = len(arrays["scalar_step"])
        thin = header["scalar_thinning"]
        trace._scalars.restore(scalar_arrays, "scalar_", [None] * n_rows, thin["stride"], thin["offered"])
        objects = header["heavy_objects"]
        for obj in [*objects, *([header["latest"]["object"]] if header["latest"] else [])]:
            if sorted(obj) != ["counters", "epoch", "events"]:
                raise ValueError(f"a heavy-row object has keys {sorted(obj)}")
        thin = header["heavy_thinning"]
        trace._heavy.restore(arrays, "heavy_", objects, thin["stride"], thin["offered"])
        if header["latest"] is not None:
            row = {}
            for name, (shape, dtype, _) in trace._heavy_specs.items():
                if name != "step":
                    row[name] = arrays[f"latest_{name}"]
                    if row[name].shape != shape or row[name].dtype != dtype:
                        raise ValueError(f"array 'latest_{name}' has shape {row[name].shape}")
            trace._latest = (int(header["latest"]["step"]), row, header["latest"]["object"])
        counters = header["latest_counters"]
        trace._latest_counters = None if counters is None else (int(counters[0]), counters[1])
        trace._counter_names = list(header["counter_names"])
        trace._n_appended = int(header["n_appended"])
        trace._last_step, trace._last_epoch = header["last_step"], header["last_epoch"]
        trace._first_nonfinite = header["first_nonfinite"]
    # Whatever a damaged or hand-edited header breaks, the caller should see one error type.
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise TraceFileError(
            f"Cannot load trace file {os.fspath(path)!r}: its contents are inconsistent: {type(exc).__name__}: {exc}"
        ) from exc
    return trace


def format_summary(trace: Any) -> str:
    """The multi-line text behind `bclab trace summary PATH`; see `Trace.summary`."""

    def last(name: str, layer: str | None = None, index: int = -1) -> str:
        if name not in trace.scalar_names(layer):
            return "-"
        values = trace.scalars(name, layer)[1]
        return f"{values[index]:.6g}" if len(values) else "-"

    latest = trace.latest_heavy_step()
    lines = [
        f"steps: {len(trace)} appended (last step {trace.last_step}), last epoch: {last('epoch')}",
        f"loss: first {last('loss', index=0)}, last {last('loss')}; "
        f"accuracy: first {last('accuracy', index=0)}, last {last('accuracy')}",
        "layers:",
    ]
    for li in trace.layers:
        mode = ("stochastic binary" if li.stochastic else "deterministic binary") if li.binary else "float"
        counts = "-"
        if latest is not None:
            try:
                plus, minus = trace.binary_counts(li.name, latest)
                counts = f"+H {plus} / -H {minus}"
            except LookupError:
                pass  # this layer recorded no counts at the latest heavy step
        lines += [
            f"  {li.name}: shape {tuple(li.shape)}, H {li.H:g}, W_LR_scale {li.W_LR_scale:g}, {mode}",
            f"    last flip_ratio {last('flip_ratio', li.name)}, clipped_fraction "
            f"{last('clipped_fraction', li.name)}, {counts} at step {latest}",
        ]
    if trace.params:
        lines.append(f"params: {', '.join(trace.params)}")
    counters = ", ".join(f"{name}={last(name)}" for name in trace._counter_names)
    lines.append(f"counters: {counters or '-'}")
    bad = trace.first_nonfinite()
    lines.append(
        "first non-finite: "
        + ("none" if bad is None else f"step {bad['step']}, {bad['name']} ({bad['layer'] or 'model'})")
    )
    lines.append(
        f"thinning: {len(trace.steps())} heavy steps retained (stride "
        f"{trace._heavy.stride}), scalar stride {trace._scalars.stride}; "
        f"memory {trace.memory_bytes() / 2**20:.1f} MiB"
    )
    return "\n".join(lines)
