"""The `.bclab` packed-model file: a header and a list of arrays to bytes on disk and back. NumPy only.

A file is a zip archive that `np.load(path, allow_pickle=False)` also reads: uncompressed
(`ZIP_STORED`, as `np.savez` writes) `.npy` entries, `header` (a JSON document as a 1-D `uint8`
array) and `v0`, `v1`, ... one per variable of the model, in the order of `model.weights`.
Header (version 1):

    format "bclab.packed", version 1, keras_version, bclab_version
    model            the Keras model config (`json.loads(model.to_json())`)
    variables        one entry per array: {path, name, kind, shape, dtype}; kind "float" (the
                     array holds the values, of that shape and dtype) or "bits" (the array holds
                     `bclab.export.bits` of a binary kernel of that shape and dtype), which adds
                     {layer, H}
    as_deterministic the names of the stochastic layers packed as deterministic ones

Reading trusts nothing: the file must be a regular file; every entry a distinct, unencrypted,
uncompressed `.npy` whose declared shape and dtype (plain numbers, C order) match its size, so
no entry can claim more memory than the file holds; the header must parse, name this format and
version, and hold exactly the keys above with values of the right kinds; the arrays must be
exactly `v0..v{n-1}` and each must match its entry (bits: the right length, padding bits 0).
Every problem raises `PackedFileError` naming the file and the problem. Whether the variables fit
the model is the rebuilder's check (`bclab.export.keras_model`).
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bclab.atomic import atomic_write, strict_json
from bclab.export.bits import KERNEL_DTYPES, check_bits, packed_length

FORMAT_NAME = "bclab.packed"
FORMAT_VERSION = 1
HEADER_KEY = "header"
HEADER_KEYS = ("format", "version", "keras_version", "bclab_version", "model", "variables", "as_deterministic")
FLOAT_KEYS = ("path", "name", "kind", "shape", "dtype")
BITS_KEYS = (*FLOAT_KEYS, "layer", "H")
_NPY = ".npy"


class PackedFileError(ValueError):
    """A `.bclab` file is missing, truncated, corrupt, of another format or version, or inconsistent."""


def array_key(index: int) -> str:
    return f"v{index}"


def write_file(path: str | os.PathLike, header: Mapping[str, Any], arrays: Sequence[np.ndarray]) -> None:
    """Writes `header` (with `format` and `version` added) and `arrays` (`v0`, `v1`, ...) to `path` atomically.

    The file is written at exactly `path` (no suffix added) through `bclab.atomic.atomic_write`:
    a crash leaves the old file or the new one, never a part.
    """
    payload = strict_json({"format": FORMAT_NAME, "version": FORMAT_VERSION, **header}).encode("utf-8")
    entries = {HEADER_KEY: np.frombuffer(payload, dtype=np.uint8)}
    entries.update({array_key(i): np.ascontiguousarray(a) for i, a in enumerate(arrays)})
    with atomic_write(path) as handle:
        np.savez(handle, **entries)


def read_file(path: str | os.PathLike) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The header and the arrays of a file `write_file` wrote, each checked (module docstring).

    Raises:
        PackedFileError: any problem with the file, naming the file and the problem.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise file_error(path, "the file does not exist.")
    if os.path.isdir(path):
        raise file_error(path, "it is a folder, not a .bclab file.")
    if not os.path.isfile(path):  # reading a pipe or a device could block or never end
        raise file_error(path, "it is not a regular file (a pipe or a device?).")
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_archive(path, archive, os.path.getsize(path))
    except PackedFileError:
        raise
    # A damaged archive surfaces as BadZipFile, EOFError, OSError, ValueError ...: one meaning here.
    except Exception as exc:
        raise file_error(
            path, f"it is not a readable zip archive (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from None


def file_error(path: str, problem: str) -> PackedFileError:
    """The error for a bad file: "Cannot load packed model file '<path>': <problem>"."""
    return PackedFileError(f"Cannot load packed model file {path!r}: {problem}")


def _read_archive(path: str, archive: zipfile.ZipFile, file_size: int) -> tuple[dict[str, Any], list[np.ndarray]]:
    infos = _entries(path, archive, file_size)
    specs = {key: _declared_spec(path, archive, info) for key, info in infos.items()}
    header_spec = specs.pop(HEADER_KEY, None)
    if header_spec is None or header_spec[0] != np.uint8 or len(header_spec[1]) != 1:
        raise file_error(path, f"it has no `{HEADER_KEY}` entry holding a JSON header as a 1-D uint8 array.")
    header = _parse_header(path, _load(path, archive, infos[HEADER_KEY]))
    expected_keys = [array_key(i) for i in range(len(header["variables"]))]
    if sorted(specs) != sorted(expected_keys):
        raise file_error(
            path,
            f"its header lists {len(expected_keys)} variables but the archive holds arrays {_short(sorted(specs))}.",
        )
    arrays = []
    for index, entry in enumerate(header["variables"]):
        key = array_key(index)
        dtype, shape = _expected_array(entry)
        declared = specs[key]
        if declared != (dtype, shape):
            raise file_error(
                path,
                f"variable {index} ({entry['path']!r}, {entry['kind']}) needs an array of dtype {dtype} and "
                f"shape {shape}; {key!r} holds dtype {declared[0]} and shape {declared[1]}.",
            )
        array = _load(path, archive, infos[key])
        if entry["kind"] == "bits":
            try:
                check_bits(array, math.prod(entry["shape"]))
            except ValueError as exc:
                raise file_error(path, f"variable {index} ({entry['path']!r}): {exc}") from None
        arrays.append(array)
    return header, arrays


def _entries(path: str, archive: zipfile.ZipFile, file_size: int) -> dict[str, zipfile.ZipInfo]:
    """Entry key (name without `.npy`) -> its zip entry, each a distinct stored `.npy` the file can hold."""
    infos: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        key = info.filename.removesuffix(_NPY)
        if info.is_dir() or not info.filename.endswith(_NPY) or key in infos:
            what = "a second entry of that name" if key in infos else "not a .npy array"
            raise file_error(
                path, f"its entry {info.filename!r} is {what}; a .bclab file holds distinct .npy arrays only."
            )
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 or info.compress_size != info.file_size:
            raise file_error(
                path, f"its entry {info.filename!r} is compressed or encrypted; bclab writes stored entries."
            )
        infos[key] = info
    if sum(info.file_size for info in infos.values()) > file_size:
        raise file_error(path, f"its entries claim more bytes than the file's {file_size}; it is corrupt.")
    return infos


def _declared_spec(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[np.dtype, Any]:
    """(dtype, shape) an entry's `.npy` header declares, checked against the entry's size."""
    name = info.filename
    try:
        with archive.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version}, expected 1.0 or 2.0 as np.savez writes")
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fp)
            offset = fp.tell()
    except Exception as exc:  # bad magic, a header that does not parse, a CRC mismatch on a small entry
        raise file_error(path, f"its entry {name!r} is not a valid .npy array: {type(exc).__name__}: {exc}") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
        raise file_error(path, f"its entry {name!r} has dtype {dtype}; a .bclab file holds plain numbers only.")
    if fortran:
        raise file_error(path, f"its entry {name!r} is in Fortran order; bclab writes C order.")
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes != info.file_size:
        raise file_error(
            path,
            f"its entry {name!r} declares shape {shape} of {dtype} ({nbytes} bytes) but holds {info.file_size - offset}.",
        )
    return dtype, tuple(shape)


def _load(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    try:
        with archive.open(info) as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)
    except Exception as exc:  # a CRC mismatch, a truncated entry
        raise file_error(path, f"its entry {info.filename!r} is corrupt: {type(exc).__name__}: {exc}") from None


def _parse_header(path: str, raw: np.ndarray) -> dict[str, Any]:
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested deeper than the parser goes
        raise file_error(path, f"its JSON header does not parse: {type(exc).__name__}: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise file_error(path, f"expected a header with format={FORMAT_NAME!r}; it is not a bclab packed model.")
    version = header.get("version")
    if type(version) is not int or version != FORMAT_VERSION:  # `true == 1` in Python, not here
        raise file_error(path, f"it has format version {_short(version)}; this bclab reads version {FORMAT_VERSION}.")
    try:
        check_header(header)
    except ValueError as exc:
        raise file_error(path, f"its header is invalid: {exc}") from None
    return header


def check_header(header: dict[str, Any]) -> None:
    """The header's keys and the kinds of their values (module docstring), else ValueError naming the key."""
    _check_keys("header", header, HEADER_KEYS)
    for key in ("keras_version", "bclab_version"):
        _check(isinstance(header[key], str), key, header[key], "a string")
    _check(isinstance(header["model"], dict), "model", header["model"], "a Keras model config (an object)")
    names = header["as_deterministic"]
    _check(
        isinstance(names, list) and all(isinstance(n, str) for n in names), "as_deterministic", names, "a list of names"
    )
    _check(isinstance(header["variables"], list), "variables", header["variables"], "a list")
    for index, entry in enumerate(header["variables"]):
        _check_variable(f"variables[{index}]", entry)


def _check_variable(where: str, entry: Any) -> None:
    _check(isinstance(entry, dict), where, entry, "an object")
    _check(entry.get("kind") in ("float", "bits"), f"{where}.kind", entry.get("kind"), '"float" or "bits"')
    _check_keys(where, entry, BITS_KEYS if entry["kind"] == "bits" else FLOAT_KEYS)
    for key in ("path", "name"):
        _check(isinstance(entry[key], str), f"{where}.{key}", entry[key], "a string")
    shape = entry["shape"]
    valid = isinstance(shape, list) and len(shape) <= 32 and all(type(n) is int and n >= 0 for n in shape)
    _check(valid, f"{where}.shape", shape, "a list of at most 32 non-negative integers")
    if entry["kind"] == "float":
        _check(
            _numeric_dtype(entry["dtype"]) is not None, f"{where}.dtype", entry["dtype"], "a NumPy numeric dtype name"
        )
        return
    _check(entry["dtype"] in KERNEL_DTYPES, f"{where}.dtype", entry["dtype"], f"one of {list(KERNEL_DTYPES)}")
    _check(isinstance(entry["layer"], str), f"{where}.layer", entry["layer"], "a layer name")
    H = entry["H"]
    valid = type(H) is float and math.isfinite(H) and H > 0
    if valid:
        with np.errstate(all="ignore"):
            magnitude = np.dtype(entry["dtype"]).type(H)
        valid = bool(np.isfinite(magnitude) and magnitude > 0)
    _check(valid, f"{where}.H", H, f"a positive number that {entry['dtype']} holds")


def _expected_array(entry: dict[str, Any]) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) of the array an entry needs."""
    if entry["kind"] == "bits":
        return np.dtype(np.uint8), (packed_length(math.prod(entry["shape"])),)
    return _numeric_dtype(entry["dtype"]), tuple(entry["shape"])


def _numeric_dtype(name: Any) -> np.dtype | None:
    if not isinstance(name, str):
        return None
    try:
        dtype = np.dtype(name)
    except TypeError:
        return None
    return dtype if dtype.name == name and dtype.kind in "biuf" else None


def _check_keys(where: str, value: dict[str, Any], keys: Sequence[str]) -> None:
    if sorted(value) != sorted(keys):
        raise ValueError(f"`{where}` has keys {_short(sorted(value))}, expected {sorted(keys)}")


def _check(ok: bool, where: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"`{where}` is {_short(value)}, expected {expected}")


def _short(value: Any, limit: int = 80) -> str:
    """`repr(value)`, its middle cut to keep one line short (a hand-edited file can hold megabytes)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deep to show>"
    return text if len(text) <= limit else f"{text[: limit - 8]}...{text[-5:]}"
