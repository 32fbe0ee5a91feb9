"""The trace file format: a `(header, arrays)` pair to bytes on disk and back. NumPy only.

A file is one `.npz` archive of arrays (loadable with `allow_pickle=False`) whose `"header"`
entry is a JSON document stored as a 1-D `uint8` array. The header holds `format` and `version`
(added here) and whatever the caller passes (for a trace, `Trace.to_state()`'s header: layers,
params, meta, scalar names, thinning state, event lists); histograms, counts, samples and
scalars are arrays, so a round trip is bit-exact. This module knows nothing of the trace store:
it checks the format name, the version and the header keys the caller requires.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from bclab.atomic import atomic_write
from bclab.validation import check_mapping, invalid_value

FORMAT_NAME = "bclab.trace"
FORMAT_VERSION = 1
HEADER_KEY = "header"  # the archive entry that holds the JSON header
_RESERVED = ("format", "version")  # header keys this module writes and checks


class TraceFileError(ValueError):
    """A trace file is missing, truncated, corrupt or not a trace of a known version."""


def write_file(path: str | os.PathLike, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Writes `header` (JSON-able) and `arrays` to `path` atomically.

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
    payload = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, **header}).encode("utf-8")
    entries = {HEADER_KEY: np.frombuffer(payload, dtype=np.uint8), **arrays}
    with atomic_write(path) as handle:
        np.savez_compressed(handle, **entries)


def read_file(path: str | os.PathLike, required: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads a file written by `write_file`.

    Args:
        path: The file to read.
        required: Header keys that must be present.

    Returns:
        `(header, arrays)` as they were written (the header without `format` and `version`),
        with every array fully loaded into memory.

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
    header = _parse_header(path, arrays.pop(HEADER_KEY, None))
    missing = [key for key in required if key not in header]
    if missing:
        raise TraceFileError(f"Cannot load trace file {path!r}: its header lacks the keys {missing}.")
    return header, arrays


def _parse_header(path: str, raw: np.ndarray | None) -> dict[str, Any]:
    """The JSON header of the file at `path`, checked for format and version, both removed."""
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
    return {key: value for key, value in header.items() if key not in _RESERVED}
