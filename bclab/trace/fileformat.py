"""The trace file format: a `(header, arrays)` pair to bytes on disk and back. NumPy only.

A file is one `.npz` archive of arrays (loadable with `allow_pickle=False`) whose `"header"`
entry is a JSON document stored as a 1-D `uint8` array. The header holds `format` and `version`
(added here) and whatever the caller passes (for a trace, `Trace.to_state()`'s header: layers,
params, meta, scalar names, thinning state, event lists); histograms, counts, samples and
scalars are arrays, so a round trip is bit-exact. The header is strict JSON (RFC 8259): a NaN
or infinite float in it is written as `null`. This module knows nothing of the trace store: it
checks the format name, the version and the header keys the caller requires, and lets the caller
check the header against the arrays' declared shapes before any array is loaded.

Sizes are never trusted. Before loading anything, `read_file` reads each entry's `.npy` header
(shape and dtype), checks it against the entry's size in the archive and refuses entries that are
not plain numeric arrays. Then three amounts must each stay within `memory_budget(file size)`,
`MAX_EXPANSION` times the file's size but never less than `MIN_BUDGET_BYTES`: the arrays'
bytes (deflate expands at most 1032:1, so a file np.savez_compressed wrote always passes: a
diverged run's all-NaN scalars do come close), the parsed header (`JSON_MEMORY_FACTOR` times its
bytes), and what the header claims beyond its arrays (the caller's `check` says how much: for a
trace, the rows its tables reserve). What the caller builds from the arrays then takes a few
times their bytes at most, so reading a file takes a bounded multiple of its size.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from bclab.atomic import atomic_write, strict_json
from bclab.validation import check_mapping, invalid_value

FORMAT_NAME = "bclab.trace"
FORMAT_VERSION = 1
HEADER_KEY = "header"  # the archive entry that holds the JSON header
_RESERVED = ("format", "version")  # header keys this module writes and checks

MAX_EXPANSION = 1100  # deflate's limit (1032:1) and a margin: a file's arrays take at most this times its size ...
MIN_BUDGET_BYTES = 32 * 2**20  # ... or this many bytes, whichever is more (see the module doc)
JSON_MEMORY_FACTOR = 32  # bytes of Python objects per byte of JSON header, parsed and copied once (`[]` costs 56)
_NPY = ".npy"  # np.savez names each entry `<key>.npy`
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what np.savez writes; deflate expands <= 1032x


class TraceFileError(ValueError):
    """A trace file is missing, truncated, corrupt, too big for its size or not a trace of a known version."""


class ArraySpec(NamedTuple):
    """An array's shape and dtype, as declared by its `.npy` header (or read off an array)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


# A caller's check of the header against the arrays' specs: it raises ValueError naming what does
# not fit, and returns the bytes that building its object from the arrays will allocate.
StateCheck = Callable[[dict[str, Any], dict[str, ArraySpec]], int]


def short_repr(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters: hand-edited files can hold megabytes in one value."""
    try:
        return cut(repr(value), limit)
    except RecursionError:  # a hand-edited header nested deeper than repr goes
        return f"<{type(value).__name__} nested too deep to show>"


def cut(text: str, limit: int) -> str:
    """`text`, its middle replaced by "..." if it is longer than `limit` characters."""
    return text if len(text) <= limit else f"{text[: limit - 8]}...{text[-5:]}"


def write_file(path: str | os.PathLike, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Writes `header` (JSON-able; NaN and Inf become `null`) and `arrays` to `path` atomically.

    The archive goes to a temporary file in the same directory which is then `os.replace`d
    onto `path`, so a crash leaves either the old file or the new one, never half of one.
    The file is written at exactly `path` (no `.npz` suffix is added).

    Raises:
        ValueError: `header` uses a key of this module's (`format`, `version`), `arrays` one
            named `header`, or `header` is not JSON-serializable.
    """
    check_mapping("header", header)
    check_mapping("arrays", arrays)
    if any(key in header for key in _RESERVED):
        raise invalid_value("header", sorted(header), f"no key among {list(_RESERVED)} (this module writes them)")
    if HEADER_KEY in arrays:
        raise invalid_value("arrays", sorted(arrays), f"no array named {HEADER_KEY!r} (it holds the header)")
    payload = strict_json({"format": FORMAT_NAME, "version": FORMAT_VERSION, **header}).encode("utf-8")
    entries = {HEADER_KEY: np.frombuffer(payload, dtype=np.uint8), **arrays}
    with atomic_write(path) as handle:
        np.savez_compressed(handle, **entries)


def memory_budget(file_size: int) -> int:
    """The most memory reading a file of `file_size` bytes may take (see the module doc)."""
    return max(MIN_BUDGET_BYTES, MAX_EXPANSION * file_size)


def read_file(
    path: str | os.PathLike, required: Iterable[str] = (), check: StateCheck | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads a file written by `write_file`, checking every declared size before loading anything.

    Args:
        path: The file to read.
        required: Header keys that must be present.
        check: Called with the header and every array's declared `ArraySpec` before any array is
            loaded; raises ValueError if they do not fit, else returns the bytes the caller
            will allocate to build its object from them (counted against the memory budget).

    Returns:
        `(header, arrays)` as they were written (the header without `format` and `version`),
        with every array fully loaded into memory.

    Raises:
        TraceFileError: The file is missing, unreadable, not an npz archive of plain numeric
            `.npy` arrays, declares sizes its entries do not have or more than its memory budget,
            has no valid JSON header, is of another format or version, lacks a required header
            key, or fails `check`. The message names the file and the problem.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise _error(path, "the file does not exist.")
    if os.path.isdir(path):
        raise _error(path, "it is a folder, not a trace file.")
    if not os.path.isfile(path):  # reading a pipe or a device could block or never end
        raise _error(path, "it is not a regular file (a pipe or a device?).")
    budget = memory_budget(os.path.getsize(path))
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_archive(path, archive, list(required), check, budget)
    except TraceFileError:
        raise
    # A damaged archive surfaces as any of BadZipFile, zlib.error, EOFError, ValueError,
    # OSError, NotImplementedError ...; all mean the same thing here.
    except Exception as exc:
        raise _error(
            path, f"it is not a readable .npz archive (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc


def _error(path: str, problem: str) -> TraceFileError:
    return TraceFileError(f"Cannot load trace file {path!r}: {problem}")


def _read_archive(
    path: str, archive: zipfile.ZipFile, required: list[str], check: StateCheck | None, budget: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    infos = _entries(path, archive)
    specs = {key: _declared_spec(path, archive, info) for key, info in infos.items()}
    header_spec = specs.pop(HEADER_KEY, None)
    if header_spec is None or header_spec.dtype != np.uint8 or len(header_spec.shape) != 1:
        raise _error(
            path,
            f"it has no `{HEADER_KEY}` entry holding a JSON header as a 1-D uint8 array; it was not written by bclab.",
        )
    data = sum(spec.nbytes for spec in specs.values())
    if data > budget:
        largest = max(specs, key=lambda key: specs[key].nbytes)
        _over_budget(path, f"its arrays ({largest!r} the largest, of shape {specs[largest].shape})", data, budget)
    claimed = JSON_MEMORY_FACTOR * header_spec.nbytes
    if claimed > budget:
        _over_budget(path, f"its JSON header of {header_spec.nbytes} bytes, once parsed,", claimed, budget)
    header = _parse_header(path, _load(path, archive, infos[HEADER_KEY]))
    missing = [key for key in required if key not in header]
    if missing:
        raise _error(path, f"its header lacks the keys {missing}.")
    if check is not None:
        try:
            claimed += check(header, dict(specs))
        except ValueError as exc:
            raise _error(path, str(exc)) from exc
        if claimed > budget:
            _over_budget(path, "its header, with what it claims beyond its arrays,", claimed, budget)
    return header, {key: _load(path, archive, infos[key]) for key in specs}


def _entries(path: str, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Entry key (name without `.npy`) -> its zip entry, each checked to be one plain `.npy` file."""
    infos: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename
        if info.is_dir() or not name.endswith(_NPY) or name[: -len(_NPY)] in infos:
            what = "a second entry of that name" if name[: -len(_NPY)] in infos else "not a .npy array"
            raise _error(path, f"its entry {name!r} is {what}; a trace archive holds distinct .npy arrays only.")
        if info.compress_type not in _COMPRESSIONS or info.flag_bits & 0x1:
            raise _error(path, f"its entry {name!r} is encrypted or compressed in a way np.savez never writes.")
        infos[name[: -len(_NPY)]] = info
    return infos


def _declared_spec(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> ArraySpec:
    """The shape and dtype an entry's `.npy` header declares, checked against the entry's real size."""
    name = info.filename
    try:
        with archive.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version}, expected 1.0 or 2.0 as np.savez writes")
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _fortran, dtype = read_header(fp)
            data_offset = fp.tell()
    except Exception as exc:  # a CRC mismatch (small entries are read whole), bad magic, a header that does not parse
        what = "is corrupt" if isinstance(exc, (zipfile.BadZipFile, EOFError)) else "is not a valid .npy array"
        raise _error(path, f"its entry {name!r} {what}: {type(exc).__name__}: {exc}") from exc
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
        raise _error(path, f"its entry {name!r} has dtype {dtype}; a trace holds plain numbers and booleans only.")
    spec = ArraySpec(tuple(shape), dtype)
    if data_offset + spec.nbytes != info.file_size:
        raise _error(
            path,
            f"its entry {name!r} declares shape {spec.shape} of {dtype} ({spec.nbytes} bytes) "
            f"but holds {info.file_size - data_offset} bytes of data.",
        )
    return spec


def _over_budget(path: str, what: str, cost: int, budget: int) -> None:
    raise _error(
        path,
        f"{what} would take {cost} bytes in memory, more than the {budget} bytes allowed for a file of its size "
        f"(max({MIN_BUDGET_BYTES}, {MAX_EXPANSION} x the file size)); it claims sizes it does not hold.",
    )


def _load(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One entry's array; its size was checked by `_declared_spec`."""
    try:
        with archive.open(info) as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)
    except Exception as exc:  # a CRC mismatch, a truncated stream, ...
        raise _error(path, f"its entry {info.filename!r} is corrupt: {type(exc).__name__}: {exc}") from exc


def _parse_header(path: str, raw: np.ndarray) -> dict[str, Any]:
    """The JSON header of the file at `path`, checked for format and version, both removed."""
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    # ValueError: not UTF-8, not JSON, or an integer of more digits than Python converts;
    # RecursionError: nesting deeper than the parser goes.
    except (ValueError, RecursionError) as exc:
        raise _error(path, f"its JSON header does not parse: {type(exc).__name__}: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _error(path, f"expected a header with format={FORMAT_NAME!r}; it is not a bclab trace.")
    version = header.get("version")
    if type(version) is not int or version != FORMAT_VERSION:  # `true == 1` in Python, not here
        raise _error(path, f"it has format version {short_repr(version)}, this bclab reads version {FORMAT_VERSION}.")
    return {key: value for key, value in header.items() if key not in _RESERVED}
