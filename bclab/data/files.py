"""Your own data on disk: a `.npz` file, or a folder of MNIST-format IDX files.

Declared sizes are never trusted: each reader checks the header's shape against the file's real
(or, inside a zip, uncompressed) size and against `MAX_ARRAY_BYTES` before reading the data, and
reads compressed data as a stream that stops one byte after the declared end, so a small file
cannot cost more memory than the array it declares.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bclab.data.dataset import ARRAY_NAMES, Dataset, from_arrays
from bclab.validation import invalid_data

MAX_ARRAY_BYTES = 2**30  # per array; MNIST's training images take 47 MB, CIFAR-10's 154 MB. Raise it for more.
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHUNK = 2**20
_NPZ = "a .npz file (a zip archive of .npy arrays, as `np.savez` writes)"
# What a corrupt zip or gzip stream raises while it is read.
_STREAM_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


def load_npz(path: Path, num_classes: int | None = None) -> Dataset:
    """A `.npz` file holding the arrays `x_train, y_train, x_test, y_test` (named after the file)."""
    return from_arrays(path.stem, str(path.resolve()), read_npz(path), num_classes)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The four arrays `ARRAY_NAMES` of a `.npz` file, exactly those, each checked before it is read.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a zip of `.npy` arrays, other arrays than `ARRAY_NAMES`, object or
            structured arrays, a shape that disagrees with the stored size or exceeds
            `MAX_ARRAY_BYTES`, corrupt data. The message names the file and the array.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such .npz file: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            members = _npz_members(path, archive)
            return {key: _read_npy(path, archive, info) for key, info in members.items()}
    except _STREAM_ERRORS as e:
        raise invalid_data(str(path), _NPZ, f"{type(e).__name__}: {e}") from e


def _npz_members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """`ARRAY_NAMES` -> their zip members; any other, missing or repeated array is an error."""
    keys = [info.filename.removesuffix(".npy") for info in archive.infolist()]
    missing = [k for k in ARRAY_NAMES if k not in keys]
    unexpected = sorted({k for k in keys if k not in ARRAY_NAMES})
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if missing or unexpected or repeated:
        problems = {"without": missing, "unexpected": unexpected, "repeated": repeated}
        received = ", ".join([str(sorted(set(keys)))] + [f"{p} {names}" for p, names in problems.items() if names])
        raise invalid_data(str(path), f"exactly the arrays {list(ARRAY_NAMES)}", received)
    return {info.filename.removesuffix(".npy"): info for info in archive.infolist()}


def _read_npy(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One `.npy` member: its header checked against its uncompressed size, then its data."""
    where = f"{path}: {info.filename}"
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f"format version {version}")
            shape, fortran_order, dtype = read_header[version](f)
        except ValueError as e:  # bad magic, version or header text
            raise invalid_data(where, "a .npy array of format 1.0 or 2.0", str(e)) from None
        if dtype.hasobject or dtype.kind == "V" or dtype.itemsize == 0:
            expected = "numbers (no object, structured or empty dtype: .npz files are read without pickle)"
            raise invalid_data(where, expected, f"dtype={dtype}")
        count = math.prod(shape)
        _check_size(where, shape, dtype, info.file_size - f.tell())
        data = _read_exactly(f, count * dtype.itemsize)
        if len(data) < count * dtype.itemsize:  # the zip declared more than its stream holds
            raise invalid_data(where, f"{count * dtype.itemsize} bytes of data", f"{len(data)} bytes (truncated)")
        f.read(1)  # reaches the end of the member, where zipfile checks its CRC
    array = np.frombuffer(data, dtype, count) if count else np.empty(0, dtype)
    return array.reshape(shape, order="F" if fortran_order else "C").astype(dtype.newbyteorder("="), copy=False)


def _check_size(where: str, shape: tuple[int, ...], dtype: np.dtype, stored: int) -> None:
    """Declared shape x itemsize against the bytes stored and `MAX_ARRAY_BYTES`, before reading them."""
    if any(d < 0 for d in shape):
        raise invalid_data(where, "a shape of non-negative sizes", f"shape={shape}")
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_ARRAY_BYTES:
        expected = f"at most MAX_ARRAY_BYTES={MAX_ARRAY_BYTES} bytes per array (bclab.data.files.MAX_ARRAY_BYTES)"
        raise invalid_data(where, expected, f"shape={shape} of {dtype}: {size} bytes")
    if stored != size:
        what = "truncated" if stored < size else "too long"
        raise invalid_data(where, f"{size} bytes of data for shape {shape} of {dtype}", f"{stored} bytes ({what})")


def _read_exactly(f: BinaryIO, n: int) -> bytearray:
    """Up to `n` bytes, read in chunks: memory follows the data actually there, not `n`."""
    data = bytearray()
    while len(data) < n:
        chunk = f.read(min(_CHUNK, n - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def read_idx(file: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (the MNIST format), gzipped or not.

    Format: two zero bytes, a type code (0x08 = uint8, ...), the number of
    dimensions d, d big-endian uint32 sizes, then the data, big-endian.
    The declared size is checked against the file's size (plain files) and `MAX_ARRAY_BYTES`
    before the data is read; a gzipped file is decompressed as a stream, never past the
    declared size plus one byte.

    Raises:
        ValueError: Bad magic number, too large, or data truncated or too long (naming the file).
    """
    path = Path(file)
    with open(path, "rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raw.seek(0)
            return _read_idx_stream(raw, str(path), os.fstat(raw.fileno()).st_size)
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw) as f:
                return _read_idx_stream(f, str(path), None)
        except (OSError, EOFError, zlib.error) as e:
            raise invalid_data(str(path), "gzip data", f"corrupt or truncated gzip data ({e})") from e


def _read_idx_stream(f: BinaryIO, name: str, file_size: int | None) -> np.ndarray:
    """The IDX array in `f`; `file_size` is the real size of a plain file (None: a stream)."""
    magic = _read_exactly(f, 4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES:
        expected = (
            "an IDX file: 0x0000, a type code such as 08 for uint8, and the number "
            "of dimensions (e.g. 0x00000803 for images)"
        )
        raise invalid_data(name, expected, f"bad magic number 0x{bytes(magic).hex()}" if magic else "an empty file")
    ndim, header = magic[3], 4 + 4 * magic[3]
    raw_dims = _read_exactly(f, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise invalid_data(name, f"a header of {header} bytes", f"{4 + len(raw_dims)} bytes (truncated)")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    dtype = np.dtype(_IDX_DTYPES[magic[2]])
    count = math.prod(dims)
    expected = count * dtype.itemsize
    if expected > MAX_ARRAY_BYTES:
        limit = f"at most MAX_ARRAY_BYTES={MAX_ARRAY_BYTES} bytes of data (bclab.data.files.MAX_ARRAY_BYTES)"
        raise invalid_data(name, limit, f"a header declaring shape {dims}: {expected} bytes")
    if file_size is not None and file_size - header != expected:  # checked before reading the data
        raise _size_error(name, dims, expected, file_size - header)
    data = _read_exactly(f, expected)
    if len(data) < expected:
        raise _size_error(name, dims, expected, len(data))
    if file_size is None and f.read(1):  # a stream: never decompressed past the declared end + 1 byte
        raise _size_error(name, dims, expected, f"more than {expected}")
    array = np.frombuffer(data, dtype, count) if count else np.empty(0, dtype)
    return array.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _size_error(name: str, dims: tuple[int, ...], expected: int, found: int | str) -> ValueError:
    what = "truncated" if isinstance(found, int) and found < expected else "too long"
    return invalid_data(name, f"{expected} bytes of data for shape {dims}", f"{found} bytes ({what})")


def load_idx(folder: Path, num_classes: int | None = None) -> Dataset:
    """The four files of `IDX_NAMES` in `folder`, each optionally `.gz` (named after the folder)."""
    files = []
    for base in IDX_NAMES:
        found = [folder / n for n in (base, base + ".gz") if (folder / n).is_file()]
        if not found:
            raise FileNotFoundError(
                f"No {base} or {base}.gz in {folder}. An 'idx' folder must hold "
                f"{', '.join(IDX_NAMES)} (each optionally gzipped)."
            )
        files.append(found[0])
    arrays = dict(zip(ARRAY_NAMES, map(read_idx, files), strict=True))
    return from_arrays(folder.name, str(folder.resolve()), arrays, num_classes)
