"""Bounded tables of per-step rows, and the trace's one thinning rule.

Thinning rule. A `RowStore` numbers the records offered to it 0, 1, 2, ... and keeps record `i`
iff `i % stride == 0`, with `stride` starting at 1. When a record is to be kept and the store
holds `max_rows` rows, the store halves itself: it keeps its rows 0, 2, 4, ... (the oldest, then
every second) and doubles `stride`. So the kept records are always numbers 0, stride,
2*stride, ...: an evenly spaced record of the whole run that always holds the first one, in at
most `max_rows` rows and never fewer than half of them once thinning has begun. When every step
is offered from step 0, record number == step, so the kept steps are the multiples of the stride.

Not thread-safe: `bclab.trace.store.Trace` holds its lock around every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

# name -> (shape of one row, dtype, blank value) of each array of a store
RowSpecs = Mapping[str, tuple[tuple[int, ...], Any, Any]]
MIN_CAPACITY = 16  # rows a store allocates at least (up to `max_rows`) once it holds any


class RowStore:
    """Rows of fixed-shape arrays, grown by doubling and thinned by halving (see the module doc).

    Every store has a `"step"` array, sorted; `objects` holds one small Python object per row.
    Rows past `n` are always blank, ready for reuse.
    """

    def __init__(self, max_rows: int, specs: RowSpecs):
        self.max_rows, self.stride, self.offered, self.n = max_rows, 1, 0, 0
        self.fills = {name: fill for name, (_, _, fill) in specs.items()}
        self.arrays = {name: np.full((0, *shape), fill, dtype) for name, (shape, dtype, fill) in specs.items()}
        self.objects: list[Any] = []

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
                a[self.n :] = self.fills[name]
            self.objects = self.objects[0::2]
            self.stride *= 2
            if ordinal % self.stride:
                return None
        if self.n == len(self.arrays["step"]):
            self.resize(min(self.max_rows, max(MIN_CAPACITY, 2 * self.n)))
        self.n += 1
        self.objects.append(None)
        return self.n - 1

    def resize(self, capacity: int) -> None:
        """Grows (or shrinks) every array to `capacity` rows, keeping the first `n`."""
        for name, a in self.arrays.items():
            grown = np.full((capacity, *a.shape[1:]), self.fills[name], a.dtype)
            grown[: self.n] = a[: self.n]
            self.arrays[name] = grown

    def widen(self, names: Iterable[str], width: int) -> None:
        """Grows the last axis of the 2-D arrays `names` to `width` columns, blank-filled."""
        for name in names:
            old = self.arrays[name]
            new = np.full((len(old), width), self.fills[name], old.dtype)
            new[:, : old.shape[1]] = old
            self.arrays[name] = new

    def find(self, step: int) -> int | None:
        """The row holding `step`, or None."""
        steps = self.arrays["step"]
        i = int(np.searchsorted(steps[: self.n], step))
        return i if i < self.n and steps[i] == step else None

    def thinning(self) -> dict[str, int]:
        """The thinning state a `restore` needs besides the rows: `{"stride", "offered"}`."""
        return {"stride": self.stride, "offered": self.offered}

    def snapshot(self, prefix: str) -> dict[str, np.ndarray]:
        """Copies of the `n` filled rows of every array, named `prefix + name`."""
        return {prefix + name: a[: self.n].copy() for name, a in self.arrays.items()}

    def restore(self, arrays: Mapping[str, np.ndarray], prefix: str, objects: list, thinning: Mapping) -> None:
        """Refills this (empty) store from a `snapshot`, its `objects` and its `thinning()`.

        Raises:
            ValueError: The arrays, objects and thinning state do not fit together or this store.
        """
        n, stride, offered = len(arrays[prefix + "step"]), int(thinning["stride"]), int(thinning["offered"])
        if n > self.max_rows or len(objects) != n or stride < 1 or offered < n:
            raise ValueError(
                f"thinning state is inconsistent: {n} rows, {len(objects)} "
                f"row objects, stride {stride}, {offered} offered"
            )
        steps = np.asarray(arrays[prefix + "step"])
        if n and (steps[0] < 0 or (np.diff(steps) <= 0).any()):
            raise ValueError(f"array {prefix + 'step'!r} holds steps that are not non-negative and increasing")
        self.n, self.stride, self.offered, self.objects = 0, stride, offered, list(objects)
        self.resize(max(n, min(self.max_rows, MIN_CAPACITY)))
        for name, a in self.arrays.items():
            loaded = arrays[prefix + name]
            if loaded.shape[1:] != a.shape[1:] or len(loaded) != n:
                raise ValueError(f"array {prefix + name!r} has shape {loaded.shape}, expected {(n, *a.shape[1:])}")
            a[:n] = loaded
        self.n = n

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())
