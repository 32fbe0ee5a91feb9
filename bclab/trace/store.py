"""The step-trace store: what happened at every training step, NumPy and the standard library only.

The training loop calls `Trace.append(record)` once per step (from a background thread) while
a UI thread reads; one lock guards all state and every reader gets copies.

Bounded memory: scalars go to a table of at most `max_scalar_steps` rows, one per appended step;
histograms, +H/-H counts, samples and events to a table of at most `max_records` rows, one per
step whose record carries any of them (`bclab.trace.tables`). Both are thinned by the rule in
`bclab.trace.rows`, so each keeps an evenly spaced record of the whole run that always holds the
first step; the newest heavy record is kept aside too, so `latest_heavy_step()` and every
lookup for it work even when thinning dropped it. Memory is therefore bounded by the caps: about
`max_scalar_steps * (8 + 9 * n_scalar_names)` bytes plus `max_records + 1` heavy rows of
`8 * (4 * nbins + 3) + 5 * 4 * sample_size` bytes per layer (and a small estimate for events);
`Trace.memory_bytes()` reports the current total.

State: `to_state()` hands out a `(header: JSON-able dict, arrays)` pair, `from_state` rebuilds a
trace from one, `bclab.trace.fileformat` turns the pair into bytes and back, `save`/`load` join them.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bclab.trace.fileformat import ArraySpec, TraceFileError, read_file, write_file
from bclab.trace.layers import LayerInfo, check_layers_and_params
from bclab.trace.progress import Progress
from bclab.trace.records import RecordChecker, validate_bin_edges
from bclab.trace.schema import KINDS, MODEL_SCOPE, SAMPLE_FIELDS
from bclab.trace.statecheck import InconsistentStateError, check_state, inconsistent
from bclab.trace.summary import format_repr, format_summary
from bclab.trace.tables import HeavyTable, ScalarTable, TraceLookupError, lookup_error
from bclab.validation import check_int, invalid_value

__all__ = ["LayerInfo", "Trace", "TraceFileError", "TraceLookupError"]

# The header keys of `Trace.to_state()`, all required by `Trace.from_state` and `Trace.load`.
_CONFIG_KEYS = ("layers", "params", "sample_size", "max_records", "max_scalar_steps", "meta")
STATE_KEYS = (*_CONFIG_KEYS, *ScalarTable.STATE_KEYS, *HeavyTable.STATE_KEYS, *Progress.STATE_KEYS)


def _json_copy(header: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy in JSON's types (lists, not tuples), as a file would give it back; faster than deepcopy."""
    return json.loads(json.dumps(header))


class Trace:
    """Thread-safe, bounded store of per-step training records.

    Args:
        layers: The binary layers, in model order.
        bin_edges: For each kind in `KINDS`, the fixed, strictly increasing, finite histogram
            edges (`nbins + 1` of them). The "real" edges are in units of H (W/H, so one set
            of bins fits layers with different H); `histogram("real", ...)` returns them
            multiplied by that layer's H.
        params: Names of non-binary parameters that get scalar summaries only.
        sample_size: Number of tracked individual weights per layer (0 for none).
        max_records: Cap on retained heavy steps (histograms, counts, samples, events).
        max_scalar_steps: Cap on retained scalar steps.
        meta: Free JSON-able metadata, stored and saved as-is.
    """

    def __init__(
        self,
        layers: Sequence[LayerInfo],
        bin_edges: Mapping[str, np.ndarray],
        *,
        params: Sequence[str] = (),
        sample_size: int = 0,
        max_records: int = 1000,
        max_scalar_steps: int = 200_000,
        meta: Mapping[str, Any] | None = None,
    ):
        self._layers, self._params = check_layers_and_params(layers, params)
        self._bin_edges = validate_bin_edges(bin_edges)
        self._sample_size = check_int("sample_size", sample_size, 0)
        self._max_records = check_int("max_records", max_records, 2)
        self._max_scalar_steps = check_int("max_scalar_steps", max_scalar_steps, 2)
        self._meta = dict(meta or {})
        try:  # fail now rather than at the first save, hours into a run (NaN and Inf are saved as null)
            json.dumps(self._meta)
        except (TypeError, ValueError, RecursionError) as exc:
            shown = "<nested too deep to show>" if isinstance(exc, RecursionError) else meta  # repr would recurse too
            raise invalid_value("meta", shown, "a JSON-serializable mapping") from exc
        self._checker = RecordChecker(
            [li.name for li in self._layers], self._params, self._bin_edges, self._sample_size
        )
        self._layer_index = self._checker.layer_index
        self._heavy = HeavyTable(self._max_records, self._checker.row_specs)
        self._scalars = ScalarTable(self._max_scalar_steps)
        self._progress = Progress()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ writing

    def append(self, record: Mapping[str, Any]) -> None:
        """Adds one step's record; it is validated in full before anything is stored.

        Every key but "step" may be absent: `{"step": int, "epoch": int, "scalars": {name:
        float}, "layers": {layer: {"hist": {kind: int[nbins]}, "plus": int, "minus": int,
        "scalars": {name: float}, "sample": {field: float32[sample_size]}}}, "params": {param:
        {name: float}}, "events": [{"phase", "start", "duration", "detail"}], "counters":
        {name: int}}`. Counters and the epoch become model-level scalars too.

        Raises:
            ValueError: The record is malformed, or its step is not after the last one.
        """
        rec = self._checker.normalize(record)
        nonfinite = rec.nonfinite()
        with self._lock:
            self._progress.check_step(rec.step)
            self._scalars.add(rec.step, rec.scalars)
            if rec.row is not None:
                self._heavy.add(rec.step, rec.row, rec.obj)
            self._progress.add(rec, nonfinite)

    # ------------------------------------------------------------------ construction, read-only

    @property
    def layers(self) -> tuple[LayerInfo, ...]:
        return self._layers

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self._layer_index)

    @property
    def params(self) -> tuple[str, ...]:
        return self._params

    @property
    def meta(self) -> dict[str, Any]:
        return copy.deepcopy(self._meta)

    @property
    def bin_edges(self) -> dict[str, np.ndarray]:
        return {kind: edges.copy() for kind, edges in self._bin_edges.items()}

    @property
    def sample_size(self) -> int:
        return self._sample_size

    # ------------------------------------------------------------------ reading

    @property
    def last_step(self) -> int | None:
        """The step of the last appended record of any kind, light or heavy (None before the first).

        Not to be confused with `latest_heavy_step()`, the newest step with histograms, counts,
        samples or events, which lags behind on steps that record scalars only.
        """
        with self._lock:
            return self._progress.last_step

    def latest_heavy_step(self) -> int | None:
        """The newest step with heavy data (histograms, counts, samples or events), kept even
        when thinning dropped it; None before the first.

        Not to be confused with `last_step`, the step of the last appended record of any kind.
        """
        with self._lock:
            return self._heavy.latest_step

    def __len__(self) -> int:
        """The number of records appended (thinning does not reduce it)."""
        with self._lock:
            return self._progress.n_appended

    @property
    def counter_names(self) -> tuple[str, ...]:
        """The names of the counters appended so far, in order of first appearance."""
        with self._lock:
            return tuple(self._progress.counter_names)

    @property
    def heavy_stride(self) -> int:
        """The heavy table's thinning stride: it keeps heavy records 0, stride, 2*stride, ..."""
        with self._lock:
            return self._heavy.rows.stride

    @property
    def scalar_stride(self) -> int:
        """The scalar table's thinning stride: it keeps appended records 0, stride, 2*stride, ..."""
        with self._lock:
            return self._scalars.rows.stride

    def steps(self) -> np.ndarray:
        """Sorted steps that have heavy records: the thinned history plus the latest."""
        with self._lock:
            return self._heavy.steps()

    def nearest_step(self, step: int) -> int:
        """The retained heavy step closest to `step` (the earlier one on a tie)."""
        with self._lock:
            nearest = self._heavy.nearest(step)
        if nearest is None:
            raise TraceLookupError("The trace holds no heavy records yet.")
        return nearest

    def scalar_names(self, layer: str | None = None) -> list[str]:
        """Scalar names in a scope: model-level (None, incl. counters), a layer or a param."""
        with self._lock:
            return self._scalars.names(self._scope(layer))

    def scalars(self, name: str, layer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`(steps int64[n], values float64[n])` of one scalar over its retained steps."""
        with self._lock:
            scope = self._scope(layer)
            series = self._scalars.series(scope, name)
            if series is None:
                where = "at model level" if layer is None else f"for {layer!r}"
                raise lookup_error("name", name, f"a scalar the trace has {where}: {self._scalars.names(scope)}")
            return series

    def histogram(self, kind: str, layer: str, step: int) -> tuple[np.ndarray, np.ndarray]:
        """`(bin_edges, counts)` of one histogram kind for a layer at a heavy step."""
        if kind not in KINDS:
            raise lookup_error("kind", kind, f"one of the trace's kinds: {list(KINDS)}")
        with self._lock:
            li = self._layer(layer)
            counts = self._heavy.entry(step, li, f"hist_{kind}", f"hist_mask_{kind}")
        if counts is None:
            raise TraceLookupError(f"Layer {layer!r} has no {kind!r} histogram at step {step}.")
        edges = self._bin_edges[kind].copy()
        if kind == "real":
            edges *= self._layers[li].H
        return edges, counts

    def binary_counts(self, layer: str, step: int) -> tuple[int, int]:
        """`(plus, minus)`: how many binary weights were +H and -H at a heavy step."""
        with self._lock:
            li = self._layer(layer)
            plus, minus = (self._heavy.entry(step, li, name, "binary_mask") for name in ("plus", "minus"))
        if plus is None:
            raise TraceLookupError(f"Layer {layer!r} has no +H/-H counts at step {step}.")
        return int(plus), int(minus)

    def sample(self, layer: str, field: str) -> tuple[np.ndarray, np.ndarray]:
        """`(steps, values[n_steps, sample_size])` of one sampled field over the heavy steps."""
        if field not in SAMPLE_FIELDS or not self._sample_size:
            have = f"one of the trace's sample fields {list(SAMPLE_FIELDS)}"
            raise lookup_error("field", field, have if self._sample_size else "none: the trace has sample_size=0")
        with self._lock:
            li = self._layer(layer)
            at = {s: self._heavy.entry(s, li, f"sample_{field}", f"sample_mask_{field}") for s in self._heavy.steps()}
        steps = [s for s, values in at.items() if values is not None]
        values = np.array([at[s] for s in steps], np.float32).reshape(len(steps), self._sample_size)
        return np.array(steps, np.int64), values

    def sample_at(self, layer: str, step: int) -> dict[str, np.ndarray]:
        """The sampled fields recorded for a layer at a heavy step, field -> float32[k]."""
        with self._lock:
            li = self._layer(layer)
            self._heavy.get(step, "step")  # report an unknown step as such, also when sample_size=0
            fields = SAMPLE_FIELDS if self._sample_size else ()
            at = {field: self._heavy.entry(step, li, f"sample_{field}", f"sample_mask_{field}") for field in fields}
        return {field: values for field, values in at.items() if values is not None}

    def events(self, step: int) -> list[dict[str, Any]]:
        """The call timeline recorded at a heavy step (start and duration in seconds)."""
        with self._lock:
            return copy.deepcopy(self._heavy.object(step)["events"])

    def counters(self, step: int) -> dict[str, int]:
        """The running counters (python traces, compiled runs, ...) as of `step`."""
        with self._lock:
            if self._heavy.holds(step):
                return dict(self._heavy.object(step)["counters"])
            latest = self._progress.latest_counters
            if latest is not None and latest[0] == step:
                return dict(latest[1])
            values = self._scalars.values_at(step, MODEL_SCOPE, self._progress.counter_names)
            if values is None:
                raise self._heavy.step_error(step)
            return {name: int(value) for name, value in values.items()}

    def first_nonfinite(self) -> dict[str, Any] | None:
        """The first step with a NaN/Inf among the scalars `schema.is_watched_for_nonfinite` names,
        e.g. `{"step": 17, "name": "grad_norm", "layer": "dense_1"}` (layer None: model level)."""
        with self._lock:
            bad = self._progress.first_nonfinite
            return None if bad is None else dict(bad)

    def memory_bytes(self) -> int:
        """Bytes held: all array buffers, plus an estimate for the event lists."""
        with self._lock:
            return self._heavy.nbytes() + self._scalars.nbytes()

    def __repr__(self) -> str:
        return format_repr(self)  # one line: steps, layers, last loss, size (`bclab.trace.summary`)

    def summary(self) -> str:
        """A readable multi-line summary (steps, layers, loss, counters, thinning, memory).

        Each part is read under the lock separately, so on a live trace the parts may be a
        few steps apart. See `bclab.trace.summary`.
        """
        return format_summary(self)

    # ------------------------------------------------------------------ state and files

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The whole trace as `(header, arrays)`: a JSON-able dict (keys `STATE_KEYS`) and arrays.

        Safe while another thread appends: it holds every step appended before the call. The
        pair shares nothing with the trace.
        """
        with self._lock:  # copy the arrays under the lock; the stored objects are never changed
            scalar_header, scalar_arrays = self._scalars.to_state()
            heavy_header, heavy_arrays = self._heavy.to_state()
            header = {
                "layers": [li.to_config() for li in self._layers],
                "params": list(self._params),
                "sample_size": self._sample_size,
                "max_records": self._max_records,
                "max_scalar_steps": self._max_scalar_steps,
                "meta": self._meta,
                **scalar_header,
                **heavy_header,
                **self._progress.to_state(),
            }
        arrays = {f"bin_edges_{kind}": edges.copy() for kind, edges in self._bin_edges.items()}
        return _json_copy(header), {**arrays, **scalar_arrays, **heavy_arrays}

    @classmethod
    def from_state(cls, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Trace:
        """Rebuilds a trace, thinning state included, from a `to_state()` pair, so appending can continue.

        The pair is checked in full first (`bclab.trace.statecheck`).

        Raises:
            ValueError: The pair is inconsistent: a key is missing, a value has the wrong type,
                or the arrays and the header do not fit together.
        """
        try:
            header = _json_copy(header)
            check_state(header, {name: ArraySpec(np.shape(a), np.asarray(a).dtype) for name, a in arrays.items()})
            trace = cls(
                [LayerInfo.from_config(config) for config in header["layers"]],
                {kind: arrays[f"bin_edges_{kind}"] for kind in KINDS},
                params=header["params"],
                sample_size=header["sample_size"],
                max_records=header["max_records"],
                max_scalar_steps=header["max_scalar_steps"],
                meta=header["meta"],
            )
            trace._scalars = ScalarTable.from_state(trace._max_scalar_steps, header, arrays)
            trace._heavy = HeavyTable.from_state(trace._max_records, trace._checker.row_specs, header, arrays)
            trace._progress = Progress.from_state(header)
        except InconsistentStateError:
            raise
        except Exception as exc:  # whatever a damaged or hand-edited state breaks, one error type
            raise inconsistent(exc) from exc
        return trace

    def save(self, path: str | os.PathLike) -> None:
        """Writes the trace to one `.npz` file at `path`, atomically (temp file + replace).

        Safe while another thread appends: the file holds every step appended before the call
        (`to_state` copies under the lock; the slow write runs outside it, never stalling training).
        """
        write_file(path, *self.to_state())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trace:
        """Reads a trace saved by `save`, exactly, so appending can continue.

        Nothing is allocated before the header and every array's declared shape are checked
        against each other and against the file's size (`bclab.trace.fileformat.read_file`).

        Raises:
            TraceFileError: The file is missing, truncated, corrupt, of another version, edited
                into inconsistency or claiming more than it holds; the message names the file.
        """
        header, arrays = read_file(path, required=STATE_KEYS, check=check_state)
        try:
            return cls.from_state(header, arrays)
        except Exception as exc:  # a file, however edited, fails as TraceFileError only
            raise TraceFileError(f"Cannot load trace file {os.fspath(path)!r}: {exc}") from exc

    # ------------------------------------------------------------------ helpers (lock held)

    def _scope(self, layer: str | None) -> str:
        if layer is None:
            return MODEL_SCOPE
        if layer in self._layer_index or layer in self._params:
            return layer
        expected = f"one of the trace's layers {list(self._layer_index)} or params {list(self._params)}"
        raise lookup_error("layer", layer, expected)

    def _layer(self, layer: str) -> int:
        if layer not in self._layer_index:
            raise lookup_error("layer", layer, f"one of the trace's layers {list(self._layer_index)}")
        return self._layer_index[layer]
