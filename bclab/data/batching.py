"""A `Dataset` -> the arrays one training step takes.

Splits and subsets are views of the uint8 images; `batches` converts one batch at a time,
as the BinaryConnect scripts do: centred inputs `2 * X - 1` (`to_float`), squared-hinge
targets `2 * onehot - 1` (`one_hot_pm1`), and only full batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bclab.data.dataset import Dataset, Split, check_labels, validate
from bclab.validation import check_int_between, check_positive_int, invalid_data


def split_validation(ds: Dataset, n_validation: int) -> Split:
    """Holds out the LAST `n_validation` training examples for validation.

    As the reference scripts do (MNIST: train 0:50000, validation 50000:60000).
    `n_validation=0` gives empty validation arrays. All arrays are views. `ds` is checked
    again (`validate`: its arrays may have been changed in place since it was made).
    """
    validate(ds)
    n = len(ds.x_train)
    cut = n - check_int_between("n_validation", n_validation, 0, n - 1, f"an integer in [0, {n}) (n={n})")
    return Split(ds.x_train[:cut], ds.y_train[:cut], ds.x_train[cut:], ds.y_train[cut:], ds.x_test, ds.y_test)


def subset(ds: Dataset, n_train: int | None, n_test: int | None) -> Dataset:
    """The first `n_train` / `n_test` examples (None keeps all), as views; checked as any `Dataset` is."""
    validate(ds)
    n_train = _count("n_train", n_train, len(ds.x_train))
    n_test = _count("n_test", n_test, len(ds.x_test))
    x_train, y_train = ds.x_train[:n_train], ds.y_train[:n_train]
    x_test, y_test = ds.x_test[:n_test], ds.y_test[:n_test]
    return Dataset(ds.name, x_train, y_train, x_test, y_test, ds.num_classes, ds.source)


def _count(name: str, value: int | None, n: int) -> int:
    return n if value is None else check_int_between(name, value, 1, n, f"None or an integer in [1, {n}] (n={n})")


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1]: `2 * x / 255 - 1`.

    The reference centres MNIST the same way (`2 * X - 1`, X in [0, 1]). The
    paper's GCN + ZCA whitening for CIFAR-10 is deliberately NOT applied: every
    data set gets this simple centring.
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise invalid_data("x", "uint8 pixels", f"x.dtype={x.dtype}")
    # (2x - 255) / 255 is exact at both ends: 0 -> -1.0, 255 -> 1.0.
    return (x.astype(np.float32) * 2.0 - 255.0) / np.float32(255.0)


def one_hot_pm1(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Squared-hinge targets `2 * onehot - 1`: float32 (N, num_classes) of +-1."""
    check_positive_int("num_classes", num_classes)
    y = check_labels(y, "y", num_classes)
    out = np.full((len(y), num_classes), -1.0, dtype=np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def num_batches(n: int, batch_size: int) -> int:
    """The number of full batches in `n` examples (a partial one is dropped)."""
    check_positive_int("n", n)
    expected = f"a positive integer no larger than the number of examples (n={n})"
    return n // check_int_between("batch_size", batch_size, 1, n, expected)


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
        raise invalid_data("y", "one label per image of x", f"len(x)={len(x)}, len(y)={len(y)}")
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
