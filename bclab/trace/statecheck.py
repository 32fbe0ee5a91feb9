"""Checks a trace state, `Trace.to_state()`'s `(header, arrays)` pair, before anything is built from it.

A state read from a file may have been edited by hand or made to hurt, and the store allocates
per the header's claims, so `Trace.load` runs `check_state` on the header and the arrays' declared
shapes and dtypes (from the file's `.npy` headers, before any array is loaded) and
`Trace.from_state` on the arrays it is given. The rules: every header value has its type and
range (integers within int64); the claims (layers, bins, sample size, row counts, caps, the
latest row) give each array's exact shape and dtype; no array is missing and none is unknown.
`check_state` returns the bytes the trace built from the state allocates beyond a few copies of the
arrays (rows reserved but not filled), so the file reader can refuse a state that claims more
memory than its file holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bclab.trace.fileformat import ArraySpec, cut, short_repr
from bclab.trace.layers import LayerInfo, check_layers_and_params, check_name
from bclab.trace.records import check_events, heavy_row_specs
from bclab.trace.rows import MIN_CAPACITY
from bclab.trace.schema import KINDS
from bclab.validation import check_int_between, check_mapping, invalid_value

INT64_MAX = 2**63 - 1  # steps, counts and counters are stored as int64
_OBJECT_KEYS = ("counters", "epoch", "events")  # of each heavy row's object
_NONFINITE_KEYS = ("layer", "name", "step")  # of `first_nonfinite`
_SCALAR_ROW_BYTES = (8, 8 + 1)  # a scalar row: its int64 step; per column a float64 value and a bool mask


class InconsistentStateError(ValueError):
    """A trace state is malformed, or its header and arrays do not fit together."""


def inconsistent(exc: Exception) -> InconsistentStateError:
    """The one error of a state that does not fit, its cause named (cut short: values can be huge)."""
    return InconsistentStateError(f"the trace state is inconsistent: {type(exc).__name__}: {cut(str(exc), 600)}")


def check_state(header: Mapping[str, Any], arrays: Mapping[str, ArraySpec]) -> int:
    """Checks `header` and the arrays' `ArraySpec`s against each other (see the module doc).

    Returns:
        The bytes `Trace.from_state` allocates beyond its copies of the arrays (each table holds
        at least `rows.MIN_CAPACITY` rows, up to its cap; the scalar columns are padded to a
        power of two, at most doubling them): the rows reserved but not filled and the latest
        heavy row.

    Raises:
        InconsistentStateError: The first thing that is malformed or does not fit, named.
    """
    try:
        return _check(header, arrays)
    except Exception as exc:  # a KeyError or TypeError of a hand-edited header too: one error type
        raise inconsistent(exc) from exc


def _check(header: Mapping[str, Any], arrays: Mapping[str, ArraySpec]) -> int:
    check_mapping("header", header)
    layers = _layers(header["layers"], header["params"])
    sample_size = _int("sample_size", header["sample_size"])
    caps = {key: _int(key, header[key], low=2) for key in ("max_records", "max_scalar_steps")}
    check_mapping("meta", header["meta"])
    objects, latest = _heavy_objects(header["heavy_objects"], header["latest"])
    n_columns = _scalar_columns(header["scalar_columns"])
    for key in ("scalar_thinning", "heavy_thinning"):
        _thinning(key, header[key])
    _progress(header)

    nbins = {kind: _edges(kind, arrays.get(f"bin_edges_{kind}")) for kind in KINDS}
    specs = heavy_row_specs(len(layers), nbins, sample_size)
    n_scalar_rows = _scalar_rows(arrays.get("scalar_step"))
    expected = {f"bin_edges_{kind}": arrays[f"bin_edges_{kind}"] for kind in KINDS}
    expected["scalar_step"] = ArraySpec((n_scalar_rows,), np.dtype(np.int64))
    for name, dtype in (("scalar_values", np.float64), ("scalar_mask", np.bool_)):
        expected[name] = ArraySpec((n_scalar_rows, n_columns), np.dtype(dtype))
    for name, (shape, dtype, _) in specs.items():
        expected[f"heavy_{name}"] = ArraySpec((len(objects), *shape), np.dtype(dtype))
        if latest is not None and name != "step":
            expected[f"latest_{name}"] = ArraySpec(shape, np.dtype(dtype))
    _compare(expected, arrays)

    heavy_row = sum(ArraySpec(shape, np.dtype(dtype)).nbytes for shape, dtype, _ in specs.values())
    scalar_row = _SCALAR_ROW_BYTES[0] + _SCALAR_ROW_BYTES[1] * _widened(n_columns)
    # The rows the tables reserve beyond those the arrays fill, and the latest heavy row kept aside.
    heavy_reserve = max(0, min(caps["max_records"], MIN_CAPACITY) - len(objects)) * heavy_row
    scalar_reserve = max(0, min(caps["max_scalar_steps"], MIN_CAPACITY) - n_scalar_rows) * scalar_row
    return heavy_reserve + heavy_row + scalar_reserve


def _int(name: str, value: Any, low: int = 0) -> int:
    return check_int_between(name, value, low, INT64_MAX, f"an integer in [{low}, 2**63 - 1]")


def _optional_int(name: str, value: Any) -> int | None:
    return None if value is None else _int(name, value)


def _list(name: str, value: Any) -> list:
    if not isinstance(value, list):
        raise invalid_value(name, short_repr(value), "a list")
    return value


def _layers(layers: Any, params: Any) -> tuple[LayerInfo, ...]:
    infos = [LayerInfo.from_config(config, f"layers[{i}]") for i, config in enumerate(_list("layers", layers))]
    return check_layers_and_params(infos, _list("params", params))[0]


def _heavy_objects(objects: Any, latest: Any) -> tuple[list, dict | None]:
    for i, obj in enumerate(_list("heavy_objects", objects)):
        _heavy_object(f"heavy_objects[{i}]", obj)
    if latest is not None:
        check_mapping("latest", latest, ("object", "step"))
        if sorted(latest) != ["object", "step"]:
            raise invalid_value("latest", short_repr(latest), "None or a mapping with the keys 'object' and 'step'")
        _int("latest['step']", latest["step"])
        _heavy_object("latest['object']", latest["object"])
    return objects, latest


def _heavy_object(name: str, obj: Any) -> None:
    """`{"counters": {name: int}, "epoch": int | None, "events": [event]}`, as `HeavyTable` keeps."""
    check_mapping(name, obj, _OBJECT_KEYS)
    if sorted(obj) != list(_OBJECT_KEYS):
        raise invalid_value(name, short_repr(obj), f"a mapping with the keys {list(_OBJECT_KEYS)}")
    _optional_int(f"{name}['epoch']", obj["epoch"])
    for key, value in check_mapping(f"{name}['counters']", obj["counters"]).items():
        _int(f"{name}['counters'][{short_repr(key)}]", value)
    try:
        normalized = check_events(obj["events"])
    except ValueError as exc:
        raise ValueError(f"in {name}['events']: {exc}") from exc
    if normalized != obj["events"]:  # e.g. a detail that is not text
        raise invalid_value(f"{name}['events']", short_repr(obj["events"]), "events as `Trace.append` stores them")


def _scalar_columns(columns: Any) -> int:
    keys = set()
    for i, column in enumerate(_list("scalar_columns", columns)):
        if not isinstance(column, list) or len(column) != 2 or not all(isinstance(part, str) for part in column):
            raise invalid_value(f"scalar_columns[{i}]", short_repr(column), "a [scope, name] pair of strings")
        keys.add(tuple(column))
    if len(keys) != len(columns):
        raise invalid_value("scalar_columns", short_repr(columns), "distinct [scope, name] pairs")
    return len(columns)


def _thinning(name: str, thinning: Any) -> None:
    check_mapping(name, thinning, ("offered", "stride"))
    if sorted(thinning) != ["offered", "stride"]:
        raise invalid_value(name, short_repr(thinning), "a mapping with the keys 'offered' and 'stride'")
    _int(f"{name}['stride']", thinning["stride"], low=1)
    _int(f"{name}['offered']", thinning["offered"])


def _progress(header: Mapping[str, Any]) -> None:
    """The `Progress.STATE_KEYS` entries."""
    _int("n_appended", header["n_appended"])
    _optional_int("last_step", header["last_step"])
    _optional_int("last_epoch", header["last_epoch"])
    for i, name in enumerate(_list("counter_names", header["counter_names"])):
        check_name(f"counter_names[{i}]", name)
    latest = header["latest_counters"]
    if latest is not None:
        if not isinstance(latest, list) or len(latest) != 2:
            raise invalid_value("latest_counters", short_repr(latest), "None or a [step, {name: count}] pair")
        _int("latest_counters[0]", latest[0])
        for key, value in check_mapping("latest_counters[1]", latest[1]).items():
            _int(f"latest_counters[1][{short_repr(key)}]", value)
    bad = header["first_nonfinite"]
    if bad is not None:
        check_mapping("first_nonfinite", bad, _NONFINITE_KEYS)
        if sorted(bad) != list(_NONFINITE_KEYS):
            raise invalid_value("first_nonfinite", short_repr(bad), f"None or a mapping with keys {_NONFINITE_KEYS}")
        _int("first_nonfinite['step']", bad["step"])
        check_name("first_nonfinite['name']", bad["name"])
        if bad["layer"] is not None:
            check_name("first_nonfinite['layer']", bad["layer"])


def _edges(kind: str, spec: ArraySpec | None) -> int:
    """The number of bins the edges array of `kind` declares."""
    if spec is None or len(spec.shape) != 1 or spec.shape[0] < 2 or spec.dtype.kind not in "iuf":
        raise invalid_value(f"bin_edges_{kind}", spec, "a 1-D array of at least 2 numbers")
    return spec.shape[0] - 1


def _scalar_rows(spec: ArraySpec | None) -> int:
    if spec is None or len(spec.shape) != 1:
        raise invalid_value("scalar_step", spec, "a 1-D array of steps")
    return spec.shape[0]


def _compare(expected: Mapping[str, ArraySpec], arrays: Mapping[str, ArraySpec]) -> None:
    missing = sorted(set(expected) - set(arrays))
    unknown = sorted(set(arrays) - set(expected))
    if missing or unknown:
        raise ValueError(f"the arrays do not match the header: missing {missing}, unknown {short_repr(unknown)}")
    for name, want in expected.items():
        have = arrays[name]
        if have.shape != want.shape or have.dtype.newbyteorder("=") != want.dtype.newbyteorder("="):
            raise ValueError(
                f"array {name!r} has shape {have.shape} and dtype {have.dtype}; the header "
                f"(layers, bins, sample size, row counts) gives shape {want.shape} and dtype {want.dtype}"
            )


def _widened(n_columns: int) -> int:
    """The scalar table's width for `n_columns` columns: 0, then 8, 16, 32, ... (`ScalarTable._add_column`)."""
    width = 0
    while width < n_columns:
        width = max(8, 2 * width)
    return width
