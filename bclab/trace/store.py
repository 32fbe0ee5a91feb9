"""The step-trace store: what happened at every training step, NumPy and the standard library only.

The training loop calls `Trace.append(record)` once per step (from a background thread) while
a UI thread reads; one lock guards all state and every reader gets copies.

Thinning policy (bounded memory). There are two stores. The scalar store holds model, layer
and param scalars and counters, one row per appended step, at most `max_scalar_steps` rows. The
heavy store holds histograms, +H/-H counts, samples and events, one row per step whose record
carries any of them, at most `max_records` rows. Each store numbers the records offered to it
0, 1, 2, ... and keeps record `i` iff `i % stride == 0`, with `stride` starting at 1. When a
record is to be kept and the store is full, the store halves itself: it keeps its rows 0, 2,
4, ... (the oldest, then every second) and doubles `stride`. So the kept records are always
numbers 0, stride, 2*stride, ...: an evenly spaced record of the whole run that always holds
the first step. When every step is appended from step 0, record number == step, so the kept
steps are the multiples of the stride. Separately, the newest heavy record is always kept
aside, so `latest_heavy_step()` and every lookup for it work even when thinning dropped it.

Memory is therefore bounded by the caps: about `max_scalar_steps * (8 + 9 * n_scalar_names)`
bytes plus `max_records + 1` heavy rows of `8 * (4 * nbins + 3) + 5 * 4 * sample_size` bytes
per layer (and a small estimate for events); `Trace.memory_bytes()` reports the current total.
"""

from __future__ import annotations

import bisect
import copy
import json
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bclab.trace.fileformat import (
    KINDS,
    MODEL_SCOPE,
    SAMPLE_FIELDS,
    TraceFileError,
    format_summary,
    heavy_row_specs,
    integer,
    load_trace,
    normalize_record,
    save_trace,
    validate_bin_edges,
)
from bclab.validation import invalid_value

__all__ = ["KINDS", "SAMPLE_FIELDS", "LayerInfo", "Trace", "TraceFileError", "TraceLookupError"]

_EVENT_BYTES = 300  # rough cost of one event dict in CPython, for memory_bytes()


class TraceLookupError(LookupError):
    """A layer, kind, field, scalar name or step asked for is not in the trace."""


@dataclass(frozen=True)
class LayerInfo:
    """Static description of one binary layer: kernel shape, H, step scale and mode."""

    name: str
    shape: tuple[int, ...]
    H: float
    W_LR_scale: float
    binary: bool
    stochastic: bool


class _RowStore:
    """Rows of fixed-shape arrays (grown by doubling) thinned by halving; see module doc."""

    def __init__(self, max_rows: int, specs: Mapping[str, tuple[tuple[int, ...], Any, Any]]):
        self.max_rows, self.stride, self.offered, self.n = max_rows, 1, 0, 0
        self.fills = {name: fill for name, (_, _, fill) in specs.items()}
        self.arrays = {name: np.full((0, *shape), fill, dtype) for name, (shape, dtype, fill) in specs.items()}
        self.objects: list[Any] = []  # one small Python object per row (events, counters)

    def offer(self) -> int | None:
        """Counts one record; returns the row to write it into, or None if it is thinned out."""
        ordinal = self.offered
        self.offered += 1
        if ordinal % self.stride:
            return None
        if self.n == self.max_rows:
            self.n = (self.n + 1) // 2
            for name, a in self.arrays.items():
                a[: self.n] = a[0 : self.max_rows : 2]
                a[self.n :] = self.fills[name]  # rows past n are always blank, ready for reuse
            self.objects = self.objects[0::2]
            self.stride *= 2
            if ordinal % self.stride:
                return None
        if self.n == len(self.arrays["step"]):
            self.resize(min(self.max_rows, max(16, 2 * self.n)))
        self.n += 1
        self.objects.append(None)
        return self.n - 1

    def resize(self, capacity: int) -> None:
        for name, a in self.arrays.items():
            grown = np.full((capacity, *a.shape[1:]), self.fills[name], a.dtype)
            grown[: self.n] = a[: self.n]
            self.arrays[name] = grown

    def find(self, step: int) -> int | None:
        steps = self.arrays["step"]
        i = int(np.searchsorted(steps[: self.n], step))
        return i if i < self.n and steps[i] == step else None

    def snapshot(self, prefix: str) -> dict[str, np.ndarray]:
        return {prefix + name: a[: self.n].copy() for name, a in self.arrays.items()}

    def restore(self, arrays: Mapping[str, np.ndarray], prefix: str, objects: list, stride: int, offered: int) -> None:
        n = len(arrays[prefix + "step"])
        if n > self.max_rows or len(objects) != n or stride < 1 or offered < n:
            raise ValueError(
                f"thinning state is inconsistent: {n} rows, {len(objects)} "
                f"row objects, stride {stride}, {offered} offered"
            )
        self.n, self.stride, self.offered, self.objects = 0, stride, offered, list(objects)
        self.resize(max(n, min(self.max_rows, 16)))
        for name, a in self.arrays.items():
            loaded = arrays[prefix + name]
            if loaded.shape[1:] != a.shape[1:] or len(loaded) != n:
                raise ValueError(f"array {prefix + name!r} has shape {loaded.shape}, expected {(n, *a.shape[1:])}")
            a[:n] = loaded
        self.n = n

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


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
        self._layers = tuple(layers)
        if not self._layers or not all(isinstance(li, LayerInfo) for li in self._layers):
            raise invalid_value("layers", layers, "a non-empty sequence of LayerInfo")
        names = [li.name for li in self._layers]
        self._params = tuple(params)
        scopes = names + list(self._params)
        if not all(isinstance(s, str) and s for s in scopes) or len(set(scopes)) != len(scopes):
            raise ValueError(
                "Received invalid names: layer and param names must be unique, "
                f"non-empty strings. Received: layers={names}, params={self._params}"
            )
        self._layer_index = {name: i for i, name in enumerate(names)}
        self._bin_edges = validate_bin_edges(bin_edges)
        self._sample_size = integer("sample_size", sample_size, 0)
        self._max_records = integer("max_records", max_records, 2)
        self._max_scalar_steps = integer("max_scalar_steps", max_scalar_steps, 2)
        self._meta = dict(meta or {})
        try:  # fail now rather than at the first save, hours into a run
            json.dumps(self._meta)
        except (TypeError, ValueError) as exc:
            raise invalid_value("meta", meta, "a JSON-serializable mapping") from exc
        self._heavy_specs = heavy_row_specs(len(self._layers), self._bin_edges, self._sample_size)
        self._heavy = _RowStore(self._max_records, self._heavy_specs)
        self._scalars = _RowStore(
            self._max_scalar_steps,
            {"step": ((), np.int64, -1), "values": ((0,), np.float64, np.nan), "mask": ((0,), np.bool_, False)},
        )
        self._columns: dict[tuple[str, str], int] = {}  # (scope, name) -> column
        self._counter_names: list[str] = []
        self._latest: tuple[int, dict[str, np.ndarray], dict] | None = None
        self._latest_counters: tuple[int, dict[str, int]] | None = None
        self._n_appended, self._last_step, self._last_epoch = 0, None, None
        self._first_nonfinite: dict | None = None
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
        step, epoch, scalar_items, counters, row, obj = normalize_record(
            record,
            layer_index=self._layer_index,
            params=self._params,
            bin_edges=self._bin_edges,
            sample_size=self._sample_size,
            row_specs=self._heavy_specs,
        )
        nonfinite = next(
            (
                {"step": step, "name": name, "layer": scope or None}
                for (scope, name), v in scalar_items
                if (name == "loss" or name.endswith("_norm")) and not math.isfinite(v)
            ),
            None,
        )
        with self._lock:
            if self._last_step is not None and step <= self._last_step:
                raise ValueError(
                    f"Received an invalid value for `step`, expected steps to be "
                    f"strictly increasing (last step: {self._last_step}). "
                    f"Received: step={step}"
                )
            i = self._scalars.offer()
            if i is not None:
                for key, _ in scalar_items:
                    if key not in self._columns:
                        self._add_column(key)
                cols = [self._columns[key] for key, _ in scalar_items]
                self._scalars.arrays["step"][i] = step
                self._scalars.arrays["values"][i, cols] = [v for _, v in scalar_items]
                self._scalars.arrays["mask"][i, cols] = True
            self._counter_names += [c for c in counters if c not in self._counter_names]
            if row is not None:
                j = self._heavy.offer()
                if j is not None:
                    arrays = self._heavy.arrays
                    arrays["step"][j] = step
                    for name, value in row.items():
                        arrays[name][j] = value
                    self._heavy.objects[j] = obj
                self._latest = (step, row, obj)
            if counters:
                self._latest_counters = (step, counters)
            if nonfinite is not None and self._first_nonfinite is None:
                self._first_nonfinite = nonfinite
            self._n_appended += 1
            self._last_step = step
            self._last_epoch = self._last_epoch if epoch is None else epoch

    def _add_column(self, key: tuple[str, str]) -> None:
        self._columns[key] = len(self._columns)
        store = self._scalars
        width = store.arrays["values"].shape[1]
        if len(self._columns) > width:  # widen by doubling, like the rows
            for name, fill in (("values", np.nan), ("mask", False)):
                old = store.arrays[name]
                new = np.full((len(old), max(8, 2 * width)), fill, old.dtype)
                new[:, :width] = old
                store.arrays[name] = new

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

    @property
    def last_step(self) -> int | None:
        """The step of the last appended record (None before the first)."""
        with self._lock:
            return self._last_step

    def __len__(self) -> int:
        with self._lock:
            return self._n_appended

    def latest_heavy_step(self) -> int | None:
        """The step of the newest heavy record, kept even when thinning dropped it."""
        with self._lock:
            return None if self._latest is None else self._latest[0]

    def steps(self) -> np.ndarray:
        """Sorted steps that have heavy records: the thinned history plus the latest."""
        with self._lock:
            return self._steps()

    def _steps(self) -> np.ndarray:
        steps = self._heavy.arrays["step"][: self._heavy.n]
        if self._latest is not None and (not len(steps) or steps[-1] != self._latest[0]):
            steps = np.append(steps, self._latest[0])
        return steps.astype(np.int64)  # a copy in both branches

    def nearest_step(self, step: int) -> int:
        """The retained heavy step closest to `step` (the earlier one on a tie)."""
        with self._lock:
            steps = self._steps().tolist()
        if not steps:
            raise TraceLookupError("The trace holds no heavy records yet.")
        i = bisect.bisect_left(steps, step)
        candidates = steps[max(i - 1, 0) : i + 1]
        return min(candidates, key=lambda s: (abs(s - step), s))

    def scalar_names(self, layer: str | None = None) -> list[str]:
        """Scalar names in a scope: model-level (None, incl. counters), a layer or a param."""
        with self._lock:
            scope = self._scope(layer)
            return [name for (s, name) in self._columns if s == scope]

    def scalars(self, name: str, layer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`(steps int64[n], values float64[n])` of one scalar over its retained steps."""
        with self._lock:
            scope = self._scope(layer)
            col = self._columns.get((scope, name))
            if col is None:
                names = [n for (s, n) in self._columns if s == scope]
                where = "at model level" if layer is None else f"for {layer!r}"
                raise TraceLookupError(
                    f"Received an invalid value for `name`: {name!r}. The trace has these scalars {where}: {names}"
                )
            n, arrays = self._scalars.n, self._scalars.arrays
            mask = arrays["mask"][:n, col]
            return arrays["step"][:n][mask], arrays["values"][:n, col][mask]

    def histogram(self, kind: str, layer: str, step: int) -> tuple[np.ndarray, np.ndarray]:
        """`(bin_edges, counts)` of one histogram kind for a layer at a heavy step."""
        if kind not in KINDS:
            raise TraceLookupError(
                f"Received an invalid value for `kind`: {kind!r}. The trace has kinds: {list(KINDS)}"
            )
        with self._lock:
            li = self._layer(layer)
            if not self._heavy_get(step, f"hist_mask_{kind}")[li]:
                raise TraceLookupError(f"Layer {layer!r} has no {kind!r} histogram at step {step}.")
            counts = self._heavy_get(step, f"hist_{kind}")[li].copy()
        edges = self._bin_edges[kind].copy()
        if kind == "real":
            edges *= self._layers[li].H
        return edges, counts

    def binary_counts(self, layer: str, step: int) -> tuple[int, int]:
        """`(plus, minus)`: how many binary weights were +H and -H at a heavy step."""
        with self._lock:
            li = self._layer(layer)
            if not self._heavy_get(step, "binary_mask")[li]:
                raise TraceLookupError(f"Layer {layer!r} has no +H/-H counts at step {step}.")
            return (int(self._heavy_get(step, "plus")[li]), int(self._heavy_get(step, "minus")[li]))

    def sample(self, layer: str, field: str) -> tuple[np.ndarray, np.ndarray]:
        """`(steps, values[n_steps, sample_size])` of one sampled field over the heavy steps."""
        self._check_field(field)
        with self._lock:
            li = self._layer(layer)
            steps, values = [], []
            for step in self._steps().tolist():
                if self._heavy_get(step, f"sample_mask_{field}")[li]:
                    steps.append(step)
                    values.append(self._heavy_get(step, f"sample_{field}")[li])
            k = self._sample_size
            return (np.array(steps, np.int64), np.array(values, np.float32).reshape(len(values), k))

    def sample_at(self, layer: str, step: int) -> dict[str, np.ndarray]:
        """The sampled fields recorded for a layer at a heavy step, field -> float32[k]."""
        with self._lock:
            li = self._layer(layer)
            if not self._sample_size:
                self._heavy_get(step, "step")  # still report an unknown step as such
                return {}
            return {
                field: self._heavy_get(step, f"sample_{field}")[li].copy()
                for field in SAMPLE_FIELDS
                if self._heavy_get(step, f"sample_mask_{field}")[li]
            }

    def events(self, step: int) -> list[dict[str, Any]]:
        """The call timeline recorded at a heavy step (start and duration in seconds)."""
        with self._lock:
            return copy.deepcopy(self._heavy_object(step)["events"])

    def counters(self, step: int) -> dict[str, int]:
        """The running counters (python traces, compiled runs, ...) as of `step`."""
        with self._lock:
            i = self._heavy.find(step)
            if i is not None or (self._latest and self._latest[0] == step):
                return dict(self._heavy_object(step)["counters"])
            if self._latest_counters is not None and self._latest_counters[0] == step:
                return dict(self._latest_counters[1])
            i = self._scalars.find(step)
            if i is None:
                raise self._step_error(step)
            values, mask = self._scalars.arrays["values"][i], self._scalars.arrays["mask"][i]
            cols = ((name, self._columns[(MODEL_SCOPE, name)]) for name in self._counter_names)
            return {name: int(values[c]) for name, c in cols if mask[c]}

    def first_nonfinite(self) -> dict[str, Any] | None:
        """The first step whose loss or a `*_norm` scalar was NaN/Inf, e.g.
        `{"step": 17, "name": "grad_norm", "layer": "dense_1"}` (layer None: model level)."""
        with self._lock:
            return None if self._first_nonfinite is None else dict(self._first_nonfinite)

    def memory_bytes(self) -> int:
        """Bytes held: all array buffers, plus an estimate for the event lists."""
        with self._lock:
            total = self._heavy.nbytes() + self._scalars.nbytes()
            if self._latest is not None:
                total += sum(a.nbytes for a in self._latest[1].values())
            rows = [*self._heavy.objects, self._latest[2] if self._latest else {"events": ()}]
            return total + _EVENT_BYTES * sum(len(obj["events"]) for obj in rows)

    def summary(self) -> str:
        """A readable multi-line summary (steps, layers, loss, counters, thinning, memory).

        Each part is read under the lock separately, so on a live trace the parts may be a
        few steps apart.
        """
        return format_summary(self)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the trace to one `.npz` file at `path`, atomically (temp file + replace).

        Safe while another thread appends: the file holds every step appended before the call.
        """
        save_trace(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trace:
        """Reads a trace saved by `save`, exactly, so appending can continue.

        Raises:
            TraceFileError: The file is missing, truncated, corrupt or of another version.
        """
        return load_trace(cls, path)

    # ------------------------------------------------------------------ helpers (lock held)

    def _scope(self, layer: str | None) -> str:
        if layer is None:
            return MODEL_SCOPE
        if layer in self._layer_index or layer in self._params:
            return layer
        raise TraceLookupError(
            f"Received an invalid value for `layer`: {layer!r}. The trace "
            f"has layers: {list(self._layer_index)} and params: "
            f"{list(self._params)}"
        )

    def _layer(self, layer: str) -> int:
        if layer not in self._layer_index:
            raise TraceLookupError(
                f"Received an invalid value for `layer`: {layer!r}. The trace has layers: {list(self._layer_index)}"
            )
        return self._layer_index[layer]

    def _check_field(self, field: str) -> None:
        if field not in SAMPLE_FIELDS or not self._sample_size:
            have = list(SAMPLE_FIELDS) if self._sample_size else "none (sample_size=0)"
            raise TraceLookupError(
                f"Received an invalid value for `field`: {field!r}. The trace has sample fields: {have}"
            )

    def _step_error(self, step: int) -> TraceLookupError:
        steps = self._steps()
        span = f"in [{steps[0]}, {steps[-1]}]" if len(steps) else "(none yet)"
        return TraceLookupError(
            f"Received an invalid value for `step`: {step!r}. The trace retains {len(steps)} "
            f"heavy steps {span} (stride {self._heavy.stride}); use "
            f"`nearest_step({step!r})` to find the closest retained step."
        )

    def _heavy_get(self, step: int, name: str) -> np.ndarray:
        i = self._heavy.find(step)
        if i is not None:
            return self._heavy.arrays[name][i]
        if self._latest is not None and self._latest[0] == step:
            return np.int64(step) if name == "step" else self._latest[1][name]
        raise self._step_error(step)

    def _heavy_object(self, step: int) -> dict[str, Any]:
        i = self._heavy.find(step)
        if i is not None:
            return self._heavy.objects[i]
        if self._latest is not None and self._latest[0] == step:
            return self._latest[2]
        raise self._step_error(step)
