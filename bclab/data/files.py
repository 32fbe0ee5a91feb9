"""Your own data on disk: a `.npz` file, or a folder of MNIST-format IDX files."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from bclab.data.dataset import ARRAY_NAMES, Dataset, from_arrays
from bclab.validation import invalid_data

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_npz(path: Path) -> Dataset:
    """A `.npz` file holding the arrays `x_train, y_train, x_test, y_test` (named after the file)."""
    if not path.is_file():
        raise FileNotFoundError(f"No such .npz file: {path}")
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in ARRAY_NAMES if k not in f.files]
        if missing:
            raise invalid_data(str(path), f"the arrays {list(ARRAY_NAMES)}", f"{sorted(f.files)}, without {missing}")
        arrays = {k: f[k] for k in ARRAY_NAMES}
    return from_arrays(path.stem, str(path.resolve()), arrays)


def read_idx(file: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (the MNIST format), gzipped or not.

    Format: two zero bytes, a type code (0x08 = uint8, ...), the number of
    dimensions d, d big-endian uint32 sizes, then the data, big-endian.

    Raises:
        ValueError: Bad magic number, or data truncated or too long.
    """
    raw = Path(file).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise invalid_data(str(file), "gzip data", f"corrupt or truncated gzip data ({e})") from e
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        expected = (
            "an IDX file: 0x0000, a type code such as 08 for uint8, and the number "
            "of dimensions (e.g. 0x00000803 for images)"
        )
        raise invalid_data(str(file), expected, f"bad magic number 0x{raw[:4].hex()}")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise invalid_data(str(file), f"a header of {header} bytes", f"{len(raw)} bytes (truncated)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected, found = math.prod(dims) * dtype.itemsize, len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "too long"
        raise invalid_data(str(file), f"{expected} bytes of data for shape {dims}", f"{found} bytes ({what})")
    data = np.frombuffer(raw, dtype, count=math.prod(dims), offset=header)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def load_idx(folder: Path) -> Dataset:
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
    return from_arrays(folder.name, str(folder.resolve()), arrays)
