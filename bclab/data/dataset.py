"""`Dataset` and `Split`, and the checks that turn arrays into them.

A `Dataset` holds uint8 images (N, H, W, C) and integer labels in [0, num_classes), so MNIST
fits in a small (2 GB) Binder session; `bclab.data.batching` converts one batch at a time.
A `Dataset` checks itself when it is made (`validate`), so no run starts on a bad one.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import numpy as np

from bclab.validation import check_int_between, invalid_data, invalid_value

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
MAX_CLASSES = 10_000  # more outputs than this is a label error, not a classification task
# The smallest height and width each architecture takes: the cnn max-pools 2x2 three times
# (`bclab.train.models.build_cnn`), so 8 -> 4 -> 2 -> 1; the mlp flattens any image.
MIN_SIDE = {"mlp": 1, "cnn": 8}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test images (uint8, N x H x W x C) with integer class labels in [0, num_classes).

    Checked on construction (`validate`): a bad array raises `ValueError` naming it.
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    num_classes: int
    source: str

    def __post_init__(self):
        num_classes = check_int_between("num_classes", self.num_classes, 2, MAX_CLASSES)
        object.__setattr__(self, "num_classes", num_classes)  # an int, not a NumPy integer
        validate(self)

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


def as_images(x: np.ndarray, array: str) -> np.ndarray:
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
        raise invalid_data(array, "shape (N, H, W, C), (N, H, W) or (N, D)", f"{array}.shape={x.shape}")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        bad = np.argwhere(~np.isfinite(x))
        if len(bad):
            index = ", ".join(str(int(i)) for i in bad[0])
            raise invalid_data(array, "finite pixels", f"{array}[{index}]={x[tuple(bad[0])]} (example {bad[0][0]})")
    elif not np.issubdtype(x.dtype, np.integer):
        raise invalid_data(array, "uint8, integer or float pixels", f"{array}.dtype={x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise invalid_data(array, "pixels in [0, 1] or [0, 255]", f"{array} in [{x.min()}, {x.max()}]")
    if np.issubdtype(x.dtype, np.floating):
        x = np.rint(x * 255.0 if x.size and x.max() <= 1.0 else x)
    return x.astype(np.uint8)


def as_labels(y: np.ndarray, array: str) -> np.ndarray:
    """Class indices of shape (N,): non-negative integers.

    (N, 1), as keras's CIFAR-10 has them, is flattened. Floats are taken when every label is a
    whole number (1.0 -> 1); one-hot (N, k) arrays, fractions, NaN, negative labels, booleans and
    text are errors naming the array and the first bad label.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        hint = " (one-hot labels: save y.argmax(axis=1))" if y.ndim == 2 else ""
        raise invalid_data(array, f"class indices of shape (N,){hint}", f"{array}.shape={y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if len(bad):
            raise invalid_data(array, "whole-number class labels", f"{array}[{bad[0]}]={y[bad[0]]}")
        y = y.astype(np.int64)
    elif not np.issubdtype(y.dtype, np.integer):
        raise invalid_data(array, "integer class labels", f"{array}.dtype={y.dtype}")
    negative = np.flatnonzero(y < 0)
    if len(negative):
        raise invalid_data(array, "class labels >= 0", f"{array}[{negative[0]}]={y[negative[0]]}")
    return y


def check_labels(y: np.ndarray, array: str, num_classes: int) -> np.ndarray:
    """`as_labels(y)`, each label in [0, num_classes): the first one outside is named."""
    y = as_labels(y, array)
    bad = np.flatnonzero(y >= num_classes)
    if len(bad):
        expected = f"class labels in [0, {num_classes}) (num_classes={num_classes})"
        raise invalid_data(array, expected, f"{array}[{bad[0]}]={y[bad[0]]}")
    return y


def from_arrays(name: str, source: str, arrays: dict[str, np.ndarray], num_classes: int | None = None) -> Dataset:
    """A `Dataset` of the arrays `ARRAY_NAMES`.

    `num_classes` None: the largest label + 1 (over both splits), at most `MAX_CLASSES`.
    """
    x_train, x_test = (as_images(arrays[k], k) for k in ("x_train", "x_test"))
    y_train, y_test = (as_labels(arrays[k], k) for k in ("y_train", "y_test"))
    if num_classes is None:
        num_classes = _infer_num_classes({"y_train": y_train, "y_test": y_test})
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes, source)


def _infer_num_classes(labels: dict[str, np.ndarray]) -> int:
    """The largest label + 1; an error asking for `num_classes` beyond `MAX_CLASSES` or below 2."""
    tops = {k: int(y.max()) for k, y in labels.items() if y.size}
    if not tops:
        return 2  # no labels at all: `validate` names the empty split
    split = max(tops, key=tops.get)
    top = tops[split]
    where = f"{split}[{int(np.argmax(labels[split]))}]={top}"
    if top >= MAX_CLASSES:
        expected = f"labels below MAX_CLASSES={MAX_CLASSES} (or declare num_classes)"
        raise invalid_data(split, expected, f"{where}, which would make {top + 1} classes")
    if top < 1:
        expected = "labels of at least 2 classes (or declare num_classes)"
        raise invalid_data(split, expected, f"{where} is the largest label, which would make 1 class")
    return top + 1


def absent_classes(ds: Dataset) -> list[int]:
    """The classes in [0, num_classes) that no training label uses."""
    counts = np.bincount(ds.y_train.astype(np.intp), minlength=ds.num_classes)  # uint64 cannot cast safely
    return [int(c) for c in np.flatnonzero(counts == 0)]


def validate(ds: Dataset) -> None:
    """Checks shapes, dtypes, lengths and label range of a `Dataset`.

    Raises:
        ValueError: Naming the offending array and value.
    """
    check_int_between("num_classes", ds.num_classes, 2, MAX_CLASSES)
    for part in ("train", "test"):
        x, y = getattr(ds, f"x_{part}"), getattr(ds, f"y_{part}")
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype != np.uint8:
            received = f"x_{part}.shape={np.shape(x)}, dtype={getattr(x, 'dtype', None)}"
            raise invalid_data(f"x_{part}", "a uint8 array of shape (N, H, W, C)", received)
        check_labels(y, f"y_{part}", ds.num_classes)
        if len(x) != len(y):
            received = f"len(x_{part})={len(x)}, len(y_{part})={len(y)}"
            raise invalid_data(f"y_{part}", f"one label per image of x_{part}", received)
        if len(x) == 0:
            raise invalid_data(f"x_{part}", f"a non-empty {part} split", f"len(x_{part})=0")
        if min(x.shape[1:]) < 1:
            raise invalid_data(f"x_{part}", "images of at least 1x1 pixels and 1 channel", f"x_{part}.shape={x.shape}")
    if ds.x_train.shape[1:] != ds.x_test.shape[1:]:
        received = f"x_train.shape={ds.x_train.shape}, x_test.shape={ds.x_test.shape}"
        raise invalid_data("x_test", "images of the shape of x_train's", received)


def check_fits_architecture(data: Dataset | tuple[int, ...], architecture: str) -> tuple[int, int, int]:
    """Checks that `architecture` ("mlp" or "cnn") takes images of the data's shape (H, W, C).

    `data`: a `Dataset` or an image shape. Needs no TensorFlow: call it before building a model.
    The rule: `MIN_SIDE` (cnn: height and width >= 8; mlp: any image), and at least one channel.

    Raises:
        ValueError: Naming the image shape and what the architecture needs.
    """
    if architecture not in MIN_SIDE:
        raise invalid_value("architecture", architecture, f"one of {list(MIN_SIDE)}")
    shape = data.image_shape if isinstance(data, Dataset) else data
    side = MIN_SIDE[architecture]
    expected = f"an image shape (H, W, C) with H, W >= {side} and C >= 1 for the {architecture} architecture" + (
        " (it max-pools 2x2 three times)" if side > 1 else ""
    )
    try:
        height, width, channels = (operator.index(d) for d in shape)
    except (TypeError, ValueError):
        raise invalid_value("image_shape", shape, expected) from None
    if min(height, width) < side or channels < 1:
        raise invalid_value("image_shape", tuple(shape), expected)
    return height, width, channels
