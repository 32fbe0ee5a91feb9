"""One appended record, checked in full and normalized before the store keeps any of it.

The record's layout is documented at `bclab.trace.store.Trace.append`; its names are in
`bclab.trace.schema`. NumPy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from bclab.trace.rows import RowSpecs
from bclab.trace.schema import EPOCH, KINDS, MODEL_SCOPE, SAMPLE_FIELDS, is_watched_for_nonfinite
from bclab.validation import check_int, check_mapping, check_real, invalid_value

RECORD_KEYS = ("step", "epoch", "scalars", "layers", "params", "events", "counters")
LAYER_KEYS = ("hist", "plus", "minus", "scalars", "sample")
EVENT_KEYS = ("phase", "start", "duration", "detail")  # the first three are required

ScalarItems = list[tuple[tuple[str, str], float]]  # ((scope, name), value)


def validate_bin_edges(bin_edges: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Checks the histogram edges of every kind; returns read-only float64 copies."""
    check_mapping("bin_edges", bin_edges)
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


def heavy_row_specs(n_layers: int, nbins: Mapping[str, int], sample_size: int) -> RowSpecs:
    """Name -> (shape, dtype, blank value) of each heavy-table array, per row (`nbins` per kind).

    Every blank value but the step's is 0/False, which `RecordChecker.normalize` relies on.
    """
    specs: dict[str, tuple[tuple[int, ...], Any, Any]] = {"step": ((), np.int64, -1)}
    for kind in KINDS:
        specs[f"hist_{kind}"] = ((n_layers, nbins[kind]), np.int64, 0)
        specs[f"hist_mask_{kind}"] = ((n_layers,), np.bool_, False)
    for name in ("plus", "minus"):
        specs[name] = ((n_layers,), np.int64, 0)
    specs["binary_mask"] = ((n_layers,), np.bool_, False)
    for field in SAMPLE_FIELDS if sample_size else ():
        specs[f"sample_{field}"] = ((n_layers, sample_size), np.float32, 0)
        specs[f"sample_mask_{field}"] = ((n_layers,), np.bool_, False)
    return specs


class Record(NamedTuple):
    """One normalized record: what the store keeps of it."""

    step: int
    epoch: int | None
    scalars: ScalarItems  # model, param and layer scalars; the epoch and counters included
    counters: dict[str, int]
    row: dict[str, np.ndarray] | None  # heavy-table arrays but "step"; None for a light record
    obj: dict[str, Any]  # {"epoch", "events", "counters"}: kept with the heavy row

    def nonfinite(self) -> dict[str, Any] | None:
        """The first watched scalar (`schema.is_watched_for_nonfinite`) that is NaN/Inf, if any."""
        for (scope, name), value in self.scalars:
            if not math.isfinite(value) and is_watched_for_nonfinite(name):
                return {"step": self.step, "name": name, "layer": scope or None}
        return None


class RecordChecker:
    """Checks records against one trace's layers, params, histogram bins and sample size."""

    def __init__(
        self, layer_names: Sequence[str], params: Sequence[str], bin_edges: Mapping[str, np.ndarray], sample_size: int
    ):
        self.layer_index = {name: i for i, name in enumerate(layer_names)}
        self.params = tuple(params)
        self.nbins = {kind: len(edges) - 1 for kind, edges in bin_edges.items()}
        self.sample_size = sample_size
        self.row_specs = heavy_row_specs(len(self.layer_index), self.nbins, sample_size)

    def normalize(self, record: Mapping[str, Any]) -> Record:
        """Validates `record` in full; raises ValueError naming the first bad entry."""
        check_mapping("record", record, RECORD_KEYS)
        if "step" not in record:
            raise invalid_value("record", record, "a mapping with a 'step' key")
        step = check_int("step", record["step"], 0)
        epoch = check_int("epoch", record["epoch"], 0) if "epoch" in record else None
        counters = {
            str(k): check_int(f"counters[{k!r}]", v)
            for k, v in check_mapping("counters", record.get("counters", {})).items()
        }
        items = self._model_and_param_scalars(record, epoch, counters)
        # Every row array's blank value is 0/False (see heavy_row_specs), so zeros is exact.
        row = {name: np.zeros(shape, dtype) for name, (shape, dtype, _) in self.row_specs.items() if name != "step"}
        heavy = False
        for name, entry in check_mapping("layers", record.get("layers", {}), list(self.layer_index)).items():
            heavy = self._layer(name, entry, items, row) or heavy
        if heavy:
            self._check_nonnegative(row)
        events = check_events(record.get("events", ()))
        obj = {"epoch": epoch, "events": events, "counters": counters}
        return Record(step, epoch, items, counters, row if heavy or events else None, obj)

    def _model_and_param_scalars(self, record: Mapping[str, Any], epoch: int | None, counters: dict) -> ScalarItems:
        """Model-level scalars, the epoch (unless a scalar is so named), counters, then params'."""
        items: ScalarItems = []
        _add_scalars(items, MODEL_SCOPE, record.get("scalars", {}), "scalars")
        if epoch is not None and not any(key == (MODEL_SCOPE, EPOCH) for key, _ in items):
            items.append(((MODEL_SCOPE, EPOCH), float(epoch)))
        items += [((MODEL_SCOPE, k), float(v)) for k, v in counters.items()]
        names = [name for (_, name), _ in items]
        if len(set(names)) != len(names):
            twice = sorted({name for name in names if names.count(name) > 1})
            raise invalid_value("counters", counters, f"names that are not also model-level scalars (twice: {twice})")
        for param, scalars in check_mapping("params", record.get("params", {}), self.params).items():
            _add_scalars(items, param, scalars, f"params[{param!r}]")
        return items

    def _layer(self, name: str, entry: Any, items: ScalarItems, row: dict[str, np.ndarray]) -> bool:
        """Adds one layer's scalars to `items` and its heavy data to `row`; True if it had any."""
        li, arg = self.layer_index[name], f"layers[{name!r}]"
        check_mapping(arg, entry, LAYER_KEYS)
        _add_scalars(items, name, entry.get("scalars", {}), f"{arg}['scalars']")
        heavy = False
        for kind, counts in check_mapping(f"{arg}['hist']", entry.get("hist", {}), KINDS).items():
            row[f"hist_{kind}"][li] = _counts(f"{arg}['hist'][{kind!r}]", counts, self.nbins[kind])
            row[f"hist_mask_{kind}"][li] = heavy = True
        if ("plus" in entry) != ("minus" in entry):
            raise invalid_value(arg, entry, "both 'plus' and 'minus' or neither")
        if "plus" in entry:
            row["plus"][li] = check_int(f"{arg}['plus']", entry["plus"], 0)
            row["minus"][li] = check_int(f"{arg}['minus']", entry["minus"], 0)
            row["binary_mask"][li] = heavy = True
        return self._sample(arg, li, entry.get("sample", {}), row) or heavy

    def _sample(self, arg: str, li: int, sample: Any, row: dict[str, np.ndarray]) -> bool:
        k, arg = self.sample_size, f"{arg}['sample']"
        check_mapping(arg, sample, SAMPLE_FIELDS)
        if sample and not k:
            raise invalid_value(arg, sample, "no samples: this trace was built with sample_size=0")
        for field, values in sample.items():
            v = np.asarray(values)
            if v.shape != (k,) or v.dtype.kind not in "biuf":
                raise invalid_value(f"{arg}[{field!r}]", values, f"a 1-D array of {k} numbers (sample_size={k})")
            row[f"sample_{field}"][li] = v
            row[f"sample_mask_{field}"][li] = True
        return bool(sample)

    def _check_nonnegative(self, row: dict[str, np.ndarray]) -> None:
        for kind in KINDS:  # one check per kind, not per layer: append is on the hot path
            negative = (row[f"hist_{kind}"] < 0).any(axis=1)
            if negative.any():
                name = list(self.layer_index)[int(np.argmax(negative))]
                counts = row[f"hist_{kind}"][self.layer_index[name]]
                raise invalid_value(f"layers[{name!r}]['hist'][{kind!r}]", counts, "non-negative counts")


def _add_scalars(items: ScalarItems, scope: str, values: Any, arg: str) -> None:
    for name, v in check_mapping(arg, values).items():
        if type(v) is not float:  # the training loop passes floats; check the rest in full
            v = check_real(f"{arg}[{name!r}]", v)
        items.append(((scope, str(name)), v))


def _counts(arg: str, counts: Any, nbins: int) -> np.ndarray:
    """`nbins` histogram counts: integers, or floats that are whole numbers."""
    c = np.asarray(counts)
    if c.shape != (nbins,) or c.dtype.kind not in "iuf" or (c.dtype.kind == "f" and not (np.floor(c) == c).all()):
        raise invalid_value(arg, counts, f"{nbins} integer counts (shape ({nbins},))")
    return c


def check_events(events: Any) -> list[dict[str, Any]]:
    """The call timeline, normalized: `{"phase", "start", "duration", "detail"}` dicts, detail
    optional, times finite (they are clock readings; a saved file has no NaN to give back)."""
    if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
        raise invalid_value("events", events, "a list of event mappings")
    result = []
    for n, event in enumerate(events):
        check_mapping(f"events[{n}]", event, EVENT_KEYS)
        if not all(key in event for key in EVENT_KEYS[:3]):
            raise invalid_value(f"events[{n}]", event, "keys 'phase', 'start', 'duration'")
        result.append(
            {
                "phase": str(event["phase"]),
                "start": _seconds(f"events[{n}]['start']", event["start"]),
                "duration": _seconds(f"events[{n}]['duration']", event["duration"]),
                "detail": str(event.get("detail", "")),
            }
        )
    return result


def _seconds(name: str, value: Any) -> float:
    seconds = check_real(name, value, "a finite number of seconds")
    if not math.isfinite(seconds):
        raise invalid_value(name, value, "a finite number of seconds")
    return seconds
