"""The trace's two tables, each a `RowStore` thinned by the rule in `bclab.trace.rows`, and lookups.

`ScalarTable` holds model, layer and param scalars and counters, one row per appended step.
`HeavyTable` holds histograms, +H/-H counts, samples and events, one row per step whose record
carries any of them, and keeps the newest such record aside even when thinning drops it. Each
hands its part of the trace's state out (`to_state`) and is rebuilt from it (`from_state`).
A lookup of something a table does not hold raises `TraceLookupError`. Not thread-safe:
`bclab.trace.store.Trace` holds its lock around every call.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from bclab.trace.rows import RowSpecs, RowStore
from bclab.validation import invalid_value

_SCALAR_SPECS: RowSpecs = {
    "step": ((), np.int64, -1),
    "values": ((0,), np.float64, np.nan),  # one column per (scope, name), added as names appear
    "mask": ((0,), np.bool_, False),  # which columns a row's step recorded
}
_OBJECT_KEYS = ["counters", "epoch", "events"]  # of each heavy row's object, sorted
_EVENT_BYTES = 300  # rough cost of one event dict in CPython, for nbytes()


class TraceLookupError(LookupError):
    """A layer, kind, field, scalar name or step asked for is not in the trace."""


def lookup_error(name: str, value: Any, expected: str) -> TraceLookupError:
    """`validation.invalid_value`'s message, as a `TraceLookupError`."""
    return TraceLookupError(*invalid_value(name, value, expected).args)


class ScalarTable:
    """Every scalar series: a thinned row per appended step, a column per `(scope, name)`."""

    STATE_KEYS = ("scalar_columns", "scalar_thinning")  # the header entries of `to_state`

    def __init__(self, max_rows: int):
        self.rows = RowStore(max_rows, _SCALAR_SPECS)
        self.columns: dict[tuple[str, str], int] = {}

    def add(self, step: int, items: Sequence[tuple[tuple[str, str], float]]) -> None:
        """Offers one step's `((scope, name), value)` items; a name's column appears when first kept."""
        i = self.rows.offer()
        if i is None:
            return
        for key, _ in items:
            if key not in self.columns:
                self._add_column(key)
        cols = [self.columns[key] for key, _ in items]
        arrays = self.rows.arrays
        arrays["step"][i] = step
        arrays["values"][i, cols] = [v for _, v in items]
        arrays["mask"][i, cols] = True

    def _add_column(self, key: tuple[str, str]) -> None:
        self.columns[key] = len(self.columns)
        width = self.rows.arrays["values"].shape[1]
        if len(self.columns) > width:  # widen by doubling, like the rows
            self.rows.widen(("values", "mask"), max(8, 2 * width))

    def names(self, scope: str) -> list[str]:
        return [name for (s, name) in self.columns if s == scope]

    def series(self, scope: str, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """`(steps, values)` of the rows that recorded `name` in `scope` (copies); None if never kept."""
        col = self.columns.get((scope, name))
        if col is None:
            return None
        n, arrays = self.rows.n, self.rows.arrays
        mask = arrays["mask"][:n, col]
        return arrays["step"][:n][mask], arrays["values"][:n, col][mask]

    def values_at(self, step: int, scope: str, names: Iterable[str]) -> dict[str, float] | None:
        """Those of `names` that the row of `step` recorded; None if `step` has no row."""
        i = self.rows.find(step)
        if i is None:
            return None
        values, mask = self.rows.arrays["values"][i], self.rows.arrays["mask"][i]
        cols = ((name, self.columns[(scope, name)]) for name in names)
        return {name: float(values[c]) for name, c in cols if mask[c]}

    def nbytes(self) -> int:
        return self.rows.nbytes()

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """`STATE_KEYS` header entries; arrays `scalar_step`, `scalar_values`, `scalar_mask`."""
        arrays = self.rows.snapshot("scalar_")
        for name in ("scalar_values", "scalar_mask"):
            arrays[name] = arrays[name][:, : len(self.columns)]  # drop the spare columns
        header = {"scalar_columns": [list(key) for key in self.columns], "scalar_thinning": self.rows.thinning()}
        return header, arrays

    @classmethod
    def from_state(cls, max_rows: int, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> ScalarTable:
        """Rebuilds a table from `to_state`'s entries. Raises ValueError (and others) if they do not fit."""
        table = cls(max_rows)
        for scope, name in header["scalar_columns"]:
            table._add_column((str(scope), str(name)))
        n_columns, width = len(table.columns), table.rows.arrays["values"].shape[1]
        padded = {"scalar_step": arrays["scalar_step"]}
        for name, fill in (("scalar_values", np.nan), ("scalar_mask", False)):
            loaded = arrays[name]
            if loaded.ndim != 2 or loaded.shape[1] != n_columns:
                raise ValueError(f"array {name!r} has shape {loaded.shape}, expected {n_columns} columns")
            padded[name] = np.full((len(loaded), width), fill, loaded.dtype)
            padded[name][:, :n_columns] = loaded
        n_rows = len(arrays["scalar_step"])
        table.rows.restore(padded, "scalar_", [None] * n_rows, header["scalar_thinning"])
        return table


class HeavyTable:
    """Histograms, counts, samples and events: thinned rows, plus the newest record kept aside.

    A row is the arrays of `specs` (see `bclab.trace.records.heavy_row_specs`) and an object
    `{"epoch", "events", "counters"}`; rows and objects are never changed once stored.
    """

    STATE_KEYS = ("heavy_thinning", "heavy_objects", "latest")  # the header entries of `to_state`

    def __init__(self, max_rows: int, specs: RowSpecs):
        self.specs = specs
        self.rows = RowStore(max_rows, specs)
        self.latest: tuple[int, dict[str, np.ndarray], dict[str, Any]] | None = None

    def add(self, step: int, row: dict[str, np.ndarray], obj: dict[str, Any]) -> None:
        """Offers one heavy record: `row` maps every array name but "step" to this step's value."""
        j = self.rows.offer()
        if j is not None:
            arrays = self.rows.arrays
            arrays["step"][j] = step
            for name, value in row.items():
                arrays[name][j] = value
            self.rows.objects[j] = obj
        self.latest = (step, row, obj)

    @property
    def latest_step(self) -> int | None:
        return None if self.latest is None else self.latest[0]

    def steps(self) -> np.ndarray:
        """Sorted held steps, a new int64 array: the thinned rows plus the latest."""
        steps = self.rows.arrays["step"][: self.rows.n]
        if self.latest is not None and (not len(steps) or steps[-1] != self.latest[0]):
            steps = np.append(steps, self.latest[0])
        return steps.astype(np.int64)  # a copy in both branches

    def get(self, step: int, name: str) -> np.ndarray:
        """The array `name` of the row of `step` (a view: copy it before handing it out).

        Raises:
            TraceLookupError: No row holds `step`; the message says which steps are held.
        """
        i = self.rows.find(step)
        if i is not None:
            return self.rows.arrays[name][i]
        if self.latest is not None and self.latest[0] == step:
            return np.int64(step) if name == "step" else self.latest[1][name]
        raise self.step_error(step)

    def entry(self, step: int, layer: int, name: str, mask: str) -> np.ndarray | None:
        """A copy of layer number `layer`'s part of array `name` at `step`; None where `mask` is False."""
        return self.get(step, name)[layer].copy() if self.get(step, mask)[layer] else None

    def object(self, step: int) -> dict[str, Any]:
        """The `{"epoch", "events", "counters"}` object of the row of `step` (raises like `get`)."""
        i = self.rows.find(step)
        if i is not None:
            return self.rows.objects[i]
        if self.latest is not None and self.latest[0] == step:
            return self.latest[2]
        raise self.step_error(step)

    def nearest(self, step: int) -> int | None:
        """The held step closest to `step` (the earlier one on a tie); None if none is held."""
        steps = self.steps().tolist()
        if not steps:
            return None
        i = bisect.bisect_left(steps, step)
        return min(steps[max(i - 1, 0) : i + 1], key=lambda s: (abs(s - step), s))

    def holds(self, step: int) -> bool:
        return self.rows.find(step) is not None or self.latest_step == step

    def step_error(self, step: int) -> TraceLookupError:
        """The error for a step no row holds: it says which steps are held."""
        steps = self.steps()
        span = f"in [{steps[0]}, {steps[-1]}]" if len(steps) else "(none yet)"
        expected = (
            f"one of the {len(steps)} heavy steps {span} the trace retains (stride {self.rows.stride}); "
            f"`nearest_step({step!r})` finds the closest"
        )
        return lookup_error("step", step, expected)

    def nbytes(self) -> int:
        """Bytes held: the array buffers, the latest row, plus an estimate for the event lists."""
        total = self.rows.nbytes()
        objects = list(self.rows.objects)
        if self.latest is not None:
            total += sum(a.nbytes for a in self.latest[1].values())
            objects.append(self.latest[2])
        return total + _EVENT_BYTES * sum(len(obj["events"]) for obj in objects)

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """`STATE_KEYS` header entries; arrays `heavy_<name>` and, for the latest row, `latest_<name>`.

        The objects are shared, not copied: they are never changed once stored.
        """
        arrays = self.rows.snapshot("heavy_")
        latest = None
        if self.latest is not None:
            step, row, obj = self.latest
            arrays.update({f"latest_{name}": a.copy() for name, a in row.items()})
            latest = {"step": step, "object": obj}
        header = {"heavy_thinning": self.rows.thinning(), "heavy_objects": list(self.rows.objects), "latest": latest}
        return header, arrays

    @classmethod
    def from_state(
        cls, max_rows: int, specs: RowSpecs, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> HeavyTable:
        """Rebuilds a table from `to_state`'s entries. Raises ValueError (and others) if they do not fit."""
        table = cls(max_rows, specs)
        objects, latest = header["heavy_objects"], header["latest"]
        for obj in [*objects, *([latest["object"]] if latest is not None else [])]:
            if sorted(obj) != _OBJECT_KEYS:
                raise ValueError(f"a heavy-row object has keys {sorted(obj)}, expected {_OBJECT_KEYS}")
        table.rows.restore(arrays, "heavy_", objects, header["heavy_thinning"])
        for name in [name for name in specs if name.startswith("hist_") and "mask" not in name] + ["plus", "minus"]:
            if (table.rows.arrays[name] < 0).any() or (latest is not None and (arrays[f"latest_{name}"] < 0).any()):
                raise ValueError(f"array 'heavy_{name}' or 'latest_{name}' holds negative counts")
        held = table.rows.arrays["step"][: table.rows.n]
        if latest is not None and len(held) and int(latest["step"]) < held[-1]:
            raise ValueError(f"the latest heavy step {latest['step']} comes before the last row's, {held[-1]}")
        if latest is not None:
            row = {name: np.array(arrays[f"latest_{name}"]) for name in specs if name != "step"}
            for name, a in row.items():
                shape, dtype, _ = specs[name]
                if a.shape != shape or a.dtype != dtype:
                    raise ValueError(f"array 'latest_{name}' has shape {a.shape} and dtype {a.dtype}")
            table.latest = (int(latest["step"]), row, latest["object"])
        return table
