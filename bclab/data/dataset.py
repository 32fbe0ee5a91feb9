"""`Dataset` and `Split`, and the checks that turn arrays into them.

A `Dataset` holds uint8 images (N, H, W, C) and integer labels in [0, num_classes), so MNIST
fits in a small (2 GB) Binder session; `bclab.data.batching` converts one batch at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bclab.validation import check_positive_int, invalid_data

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")


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
    """Integer class labels of shape (N,); (N, 1), as keras's CIFAR-10 has them, is flattened."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise invalid_data(
            array, "integer class labels of shape (N,)", f"{array}.shape={y.shape}, {array}.dtype={y.dtype}"
        )
    return y


def check_labels(y: np.ndarray, array: str, num_classes: int) -> np.ndarray:
    """`as_labels(y)`, each label in [0, num_classes)."""
    y = as_labels(y, array)
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        raise invalid_data(array, f"class labels in [0, {num_classes})", f"{array}[{bad[0]}]={y[bad[0]]}")
    return y


def from_arrays(name: str, source: str, arrays: dict[str, np.ndarray]) -> Dataset:
    """A `Dataset` of the arrays `ARRAY_NAMES`; its classes run from 0 to the largest label."""
    x_train, x_test = (as_images(arrays[k], k) for k in ("x_train", "x_test"))
    y_train, y_test = (as_labels(arrays[k], k) for k in ("y_train", "y_test"))
    top = max((int(y.max()) for y in (y_train, y_test) if y.size), default=0)
    return Dataset(name, x_train, y_train, x_test, y_test, top + 1, source)


def validate(ds: Dataset) -> None:
    """Checks shapes, dtypes, lengths and label range of a `Dataset`.

    Raises:
        ValueError: Naming the offending array and value.
    """
    check_positive_int("num_classes", ds.num_classes)
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
    if ds.x_train.shape[1:] != ds.x_test.shape[1:]:
        received = f"x_train.shape={ds.x_train.shape}, x_test.shape={ds.x_test.shape}"
        raise invalid_data("x_test", "images of the shape of x_train's", received)
