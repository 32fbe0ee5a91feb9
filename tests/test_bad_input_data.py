"""Bad data files and arrays: one row per case, each with its exact outcome.

Every row builds its input in `tmp_path` (synthetic, a few KB) and asserts the error type and
the fragments its message must hold: the file or array, the offending value or index, and what
was expected. Sizes: declared shapes are checked before data is read, so the "bomb" rows also
assert that the peak memory of the read stays small (`tracemalloc`).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from bclab.data import MAX_CLASSES, Dataset, check_fits_architecture, file_source, load_dataset, read_idx, subset
from bclab.data import files as data_files

RNG = np.random.default_rng(9)
BOMB_BYTES = 50 * 2**20  # zeros that deflate to about 50 KB


def _arrays(**overrides):
    arrays = {
        "x_train": RNG.integers(0, 256, (8, 4, 4), dtype=np.uint8),
        "y_train": np.arange(8) % 3,
        "x_test": RNG.integers(0, 256, (4, 4, 4), dtype=np.uint8),
        "y_test": np.arange(4) % 3,
    }
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


def _npy(array=None, *, shape=None, dtype=None, version=(1, 0), data=b""):
    """A `.npy` member: `array` as np.save writes it, or a hand-made header followed by `data`."""
    f = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(f, np.asarray(array), allow_pickle=True)
        return f.getvalue()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    (np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0)(f, header)
    raw = f.getvalue()  # the magic string, the version (patched in), the header
    return raw[:6] + bytes(version) + raw[8:] + data


def _zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return path


def _npz(tmp_path, name="d.npz", raw=None, **overrides):
    """A .npz of the good arrays with `overrides`; `raw` maps member names to bytes stored as is."""
    members = {f"{k}.npy": _npy(v) for k, v in _arrays(**overrides).items()}
    members.update(raw or {})
    return _zip(tmp_path / name, members)


def _idx(array, code=0x08):
    array = np.asarray(array)
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    return (
        bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(dtype).tobytes()
    )


def _idx_folder(tmp_path, **raw):
    """The four IDX files of a good data set; `raw` replaces a file's bytes ("train_labels", ...)."""
    arrays = _arrays()
    files = {
        "train-images-idx3-ubyte": _idx(arrays["x_train"]),
        "train-labels-idx1-ubyte": _idx(arrays["y_train"]),
        "t10k-images-idx3-ubyte": _idx(arrays["x_test"]),
        "t10k-labels-idx1-ubyte": _idx(arrays["y_test"]),
    }
    for key, data in raw.items():
        files[{"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte"}[key]] = data
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


def _zeros_gz(header, n):
    """`header` + `n` zero bytes, gzipped in pieces (never `n` bytes in memory at once)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    piece = bytes(2**20)
    out = [z.compress(header)] + [z.compress(piece[: min(len(piece), n - i)]) for i in range(0, n, len(piece))]
    return b"".join(out) + z.flush()


def _file(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


def _good_npz_bytes(tmp_path):
    return _npz(tmp_path, "good.npz").read_bytes()


# Each builder takes tmp_path and returns (call, path or None); {path} in a fragment is the path.
NPZ = "a .npz file (a zip archive of .npy arrays"
CASES = [
    # ---- .npz containers
    ("npz-empty-file", lambda t: _file(t, "e.npz", b""), ValueError, ["{path}", NPZ, "BadZipFile"]),
    ("npz-text-file", lambda t: _file(t, "t.npz", b"x_train,y_train\n1,2\n"), ValueError, ["{path}", NPZ]),
    ("npz-truncated", lambda t: _file(t, "tr.npz", _good_npz_bytes(t)[:300]), ValueError, ["{path}", "BadZipFile"]),
    ("npz-is-npy", lambda t: _file(t, "a.npz", _npy(np.zeros(3))), ValueError, ["{path}", NPZ]),
    (
        "npz-missing-key",
        lambda t: _npz(t, x_test=None),
        ValueError,
        ["{path}", "exactly the arrays ['x_train', 'y_train', 'x_test', 'y_test']", "without ['x_test']"],
    ),
    (
        "npz-extra-key",
        lambda t: _npz(t, raw={"x_val.npy": _npy(np.zeros(2))}),
        ValueError,
        ["{path}", "exactly the arrays", "unexpected ['x_val']"],
    ),
    (
        "npz-misnamed-key",
        lambda t: _npz(t, x_train=None, raw={"X_train.npy": _npy(np.zeros(2))}),
        ValueError,
        ["{path}", "without ['x_train']", "unexpected ['X_train']"],
    ),
    (
        "npz-repeated-key",
        lambda t: _npz(t, raw={"x_train": _npy(np.zeros(2))}),
        ValueError,
        ["{path}", "repeated ['x_train']"],
    ),
    # ---- .npy members: headers against sizes, dtypes
    (
        "npy-object-array",
        lambda t: _npz(t, y_train=np.array([0, 1, None] * 3, dtype=object)),
        ValueError,
        ["{path}: y_train.npy", "no object", "dtype=object"],
    ),
    (
        "npy-structured",
        lambda t: _npz(t, y_test=np.zeros(4, dtype=[("a", "i4"), ("b", "f4")])),
        ValueError,
        ["{path}: y_test.npy", "structured", "dtype=[('a', '<i4'), ('b', '<f4')]"],
    ),
    (
        "npy-huge-shape",
        lambda t: _npz(t, raw={"x_train.npy": _npy(shape=(10**9, 28, 28), dtype="u1")}),
        ValueError,
        ["{path}: x_train.npy", f"at most MAX_ARRAY_BYTES={2**30} bytes", "shape=(1000000000, 28, 28) of uint8"],
    ),
    (
        "npy-shape-beyond-data",
        lambda t: _npz(t, raw={"x_train.npy": _npy(shape=(1000, 28, 28), dtype="u1")}),
        ValueError,
        ["{path}: x_train.npy", "784000 bytes of data for shape (1000, 28, 28) of uint8", "0 bytes (truncated)"],
    ),
    (
        "npy-data-beyond-shape",
        lambda t: _npz(t, raw={"y_train.npy": _npy(shape=(2,), dtype="<i8", data=bytes(24))}),
        ValueError,
        ["{path}: y_train.npy", "16 bytes of data for shape (2,) of int64", "24 bytes (too long)"],
    ),
    (
        "npy-negative-dim",
        lambda t: _npz(t, raw={"y_test.npy": _npy(shape=(-4,), dtype="<i8")}),
        ValueError,
        ["{path}: y_test.npy", "non-negative sizes", "shape=(-4,)"],
    ),
    (
        "npy-bad-magic",
        lambda t: _npz(t, raw={"x_test.npy": b"\x93NUMPX\x01\x00" + bytes(64)}),
        ValueError,
        ["{path}: x_test.npy", "a .npy array of format 1.0 or 2.0", "magic"],
    ),
    (
        "npy-version-3",
        lambda t: _npz(t, raw={"x_test.npy": _npy(shape=(4, 4, 4), dtype="u1", version=(3, 0))}),
        ValueError,
        ["{path}: x_test.npy", "format 1.0 or 2.0", "format version (3, 0)"],
    ),
    (
        "npy-bad-header-text",
        lambda t: _npz(t, raw={"x_test.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}   \n"}),
        ValueError,
        ["{path}: x_test.npy", "format 1.0 or 2.0", "Header does not contain the correct keys"],
    ),
    # ---- labels in a file
    (
        "labels-text",
        lambda t: _npz(t, y_train=np.array(list("01201201"))),
        ValueError,
        ["`y_train`", "integer class labels", "y_train.dtype=<U1"],
    ),
    (
        "labels-fraction",
        lambda t: _npz(t, y_train=np.array([0, 1, 2, 0.5, 1, 2, 0, 1])),
        ValueError,
        ["`y_train`", "whole-number class labels", "y_train[3]=0.5"],
    ),
    (
        "labels-nan",
        lambda t: _npz(t, y_test=np.array([0, np.nan, 1, 2])),
        ValueError,
        ["`y_test`", "whole-number", "y_test[1]=nan"],
    ),
    (
        "labels-negative",
        lambda t: _npz(t, y_test=np.array([0, 1, -1, 2])),
        ValueError,
        ["`y_test`", "class labels >= 0", "y_test[2]=-1"],
    ),
    (
        "labels-one-hot",
        lambda t: _npz(t, y_train=np.eye(3, dtype=np.uint8)[np.arange(8) % 3]),
        ValueError,
        ["`y_train`", "class indices of shape (N,)", "y.argmax(axis=1)", "y_train.shape=(8, 3)"],
    ),
    (
        "labels-bool",
        lambda t: _npz(t, y_train=np.arange(8) % 2 == 0),
        ValueError,
        ["`y_train`", "integer class labels", "y_train.dtype=bool"],
    ),
    (
        "labels-3d",
        lambda t: _npz(t, y_test=np.zeros((4, 1, 1), dtype=np.uint8)),
        ValueError,
        ["`y_test`", "shape (N,)", "y_test.shape=(4, 1, 1)"],
    ),
    (
        "labels-beyond-max-classes",
        lambda t: _npz(t, y_train=np.array([0, 1, 2, 0, 100000, 2, 0, 1])),
        ValueError,
        [
            "`y_train`",
            f"labels below MAX_CLASSES={MAX_CLASSES} (or declare num_classes)",
            "y_train[4]=100000",
            "100001 classes",
        ],
    ),
    (
        "labels-one-class",
        lambda t: _npz(t, y_train=np.zeros(8, int), y_test=np.zeros(4, int)),
        ValueError,
        ["at least 2 classes (or declare num_classes)", "=0 is the largest label"],
    ),
    (
        "labels-count-mismatch",
        lambda t: _npz(t, y_train=np.arange(7) % 3),
        ValueError,
        ["`y_train`", "one label per image of x_train", "len(x_train)=8, len(y_train)=7"],
    ),
    # ---- images in a file
    (
        "images-empty-split",
        lambda t: _npz(t, x_train=np.zeros((0, 4, 4), np.uint8), y_train=np.zeros(0, int)),
        ValueError,
        ["`x_train`", "a non-empty train split", "len(x_train)=0"],
    ),
    (
        "images-zero-channels",
        lambda t: _npz(t, x_train=np.zeros((8, 28, 28, 0), np.uint8), x_test=np.zeros((4, 28, 28, 0), np.uint8)),
        ValueError,
        ["`x_train`", "at least 1x1 pixels and 1 channel", "x_train.shape=(8, 28, 28, 0)"],
    ),
    (
        "images-zero-height",
        lambda t: _npz(t, x_test=np.zeros((4, 0, 4), np.uint8)),
        ValueError,
        ["`x_test`", "at least 1x1 pixels", "x_test.shape=(4, 0, 4, 1)"],
    ),
    (
        "images-5d",
        lambda t: _npz(t, x_train=np.zeros((8, 2, 2, 2, 1), np.uint8)),
        ValueError,
        ["`x_train`", "shape (N, H, W, C), (N, H, W) or (N, D)", "x_train.shape=(8, 2, 2, 2, 1)"],
    ),
    (
        "images-complex",
        lambda t: _npz(t, x_test=np.zeros((4, 4, 4), np.complex64)),
        ValueError,
        ["`x_test`", "uint8, integer or float pixels", "x_test.dtype=complex64"],
    ),
    (
        "images-bool",
        lambda t: _npz(t, x_test=np.zeros((4, 4, 4), bool)),
        ValueError,
        ["`x_test`", "uint8, integer or float pixels", "x_test.dtype=bool"],
    ),
    (
        "images-inf",
        lambda t: _npz(t, x_train=np.where(np.arange(128).reshape(8, 4, 4) == 37, np.inf, 0.5)),
        ValueError,
        ["`x_train`", "finite pixels", "x_train[2, 1, 1, 0]=inf"],
    ),
    (
        "images-int-300",
        lambda t: _npz(t, x_train=np.full((8, 4, 4), 300, np.int16)),
        ValueError,
        ["`x_train`", "pixels in [0, 1] or [0, 255]", "x_train in [300, 300]"],
    ),
    (
        "images-shape-mismatch",
        lambda t: _npz(t, x_test=np.zeros((4, 5, 4), np.uint8)),
        ValueError,
        ["`x_test`", "images of the shape of x_train's", "x_test.shape=(4, 5, 4, 1)"],
    ),
    # ---- IDX folders and files
    (
        "idx-empty-file",
        lambda t: _idx_folder(t, train_labels=b""),
        ValueError,
        ["train-labels-idx1-ubyte`", "an IDX file", "an empty file"],
    ),
    (
        "idx-bad-magic",
        lambda t: _idx_folder(t, train_images=b"PK\x03\x04" + bytes(40)),
        ValueError,
        ["train-images-idx3-ubyte`", "an IDX file", "bad magic number 0x504b0304"],
    ),
    (
        "idx-unknown-type",
        lambda t: _idx_folder(t, train_labels=b"\0\0\x07\x01" + struct.pack(">I", 8) + bytes(8)),
        ValueError,
        ["train-labels-idx1-ubyte`", "bad magic number 0x00000701"],
    ),
    (
        "idx-header-truncated",
        lambda t: _idx_folder(t, train_images=b"\0\0\x08\x03" + struct.pack(">I", 8)),
        ValueError,
        ["train-images-idx3-ubyte`", "a header of 16 bytes", "8 bytes (truncated)"],
    ),
    (
        "idx-dims-beyond-size",
        lambda t: _idx_folder(t, train_labels=_idx(np.arange(8) % 3)[:-3]),
        ValueError,
        ["train-labels-idx1-ubyte`", "8 bytes of data for shape (8,)", "5 bytes (truncated)"],
    ),
    (
        "idx-size-beyond-dims",
        lambda t: _idx_folder(t, train_labels=_idx(np.arange(8) % 3) + b"\1\2"),
        ValueError,
        ["train-labels-idx1-ubyte`", "8 bytes of data for shape (8,)", "10 bytes (too long)"],
    ),
    (
        "idx-huge-dims",
        lambda t: _idx_folder(t, train_images=b"\0\0\x08\x03" + struct.pack(">3I", *[2**32 - 1] * 3)),
        ValueError,
        ["train-images-idx3-ubyte`", "at most MAX_ARRAY_BYTES", "shape (4294967295, 4294967295"],
    ),
    (
        "idx-float-labels",
        lambda t: _idx_folder(t, train_labels=_idx(np.arange(8) / 2, 0x0D)),
        ValueError,
        ["`y_train`", "whole-number class labels", "y_train[1]=0.5"],
    ),
    (
        "idx-count-mismatch",
        lambda t: _idx_folder(t, train_labels=_idx(np.arange(5) % 3)),
        ValueError,
        ["`y_train`", "one label per image of x_train", "len(x_train)=8, len(y_train)=5"],
    ),
    (
        "idx-labels-are-images",
        lambda t: _idx_folder(t, train_labels=_idx(np.zeros((8, 4, 4), np.uint8))),
        ValueError,
        ["`y_train`", "class indices of shape (N,)", "y_train.shape=(8, 4, 4)"],
    ),
    # ---- paths
    ("path-missing", lambda t: t / "nowhere", FileNotFoundError, ["No such file or folder", "{path}"]),
    (
        "path-other-suffix",
        lambda t: _file(t, "data.csv", b"1,2\n"),
        ValueError,
        ["`path`", "a .npz file or a folder of IDX files", "data.csv"],
    ),
]


@pytest.mark.parametrize("build, error, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_data_file(tmp_path, build, error, fragments):
    path = build(tmp_path)
    with pytest.raises(error) as err:
        load_dataset(path=path)
    for fragment in fragments:
        assert fragment.format(path=path) in str(err.value)


@pytest.mark.parametrize(
    "name, target, error, fragments",
    [
        ("npz", "folder", ValueError, ["`path`", "a .npz file when name='npz' (this is a folder: name='idx')"]),
        ("idx", "file", ValueError, ["`path`", "a folder of IDX files when name='idx' (this is a file)"]),
        ("npz", "", ValueError, ["`path`", "a non-empty path", "path=''"]),
        ("npz", 5, ValueError, ["`path`", "a non-empty path", "path=5"]),
        ("idx", "missing", FileNotFoundError, ["No such folder", "missing"]),
        ("mnist-5k", None, ValueError, ["`num_classes`", "an integer in [2, 10000]", "num_classes=1"]),
        ("npz", "/dev/zero", ValueError, ["`path`", "a regular .npz file", "path='/dev/zero'"]),
        ("mnist", "file", ValueError, ["`path`", "None when name='mnist'"]),
    ],
    ids=[
        "npz-given-folder",
        "idx-given-file",
        "empty-path",
        "int-path",
        "idx-missing-folder",
        "num-classes-1",
        "npz-given-device",
        "path-with-built-in-name",
    ],
)
def test_bad_path_or_name(tmp_path, name, target, error, fragments):
    file = _npz(tmp_path)
    target = {"folder": tmp_path, "file": file, "missing": tmp_path / "missing"}.get(target, target)
    with pytest.raises(error) as err:
        load_dataset(name, path=target, num_classes=1 if target is None else None)
    for fragment in fragments:
        assert fragment in str(err.value)


@pytest.mark.parametrize("suffix", [".NPZ", ".Npz", ".npz"])
def test_npz_suffix_in_any_case_is_npz(tmp_path, suffix):
    arrays = _arrays()
    path = _npz(tmp_path, f"mine{suffix}")
    assert file_source(path) == "npz"
    ds = load_dataset(path=path)
    np.testing.assert_array_equal(ds.y_train, arrays["y_train"])
    assert ds.name == "mine" and ds.num_classes == 3


# ---------------------------------------------------------------- labels against num_classes


@pytest.mark.parametrize(
    "y_train, y_test, num_classes, fragments",
    [
        ([0, 1, 2, 0, 1, 12, 0, 1], [0, 1, 2, 0], 10, ["`y_train`", "[0, 10) (num_classes=10)", "y_train[5]=12"]),
        ([0, 1, 2, 0, 1, 2, 0, 1], [0, 1, 3, 0], 3, ["`y_test`", "[0, 3) (num_classes=3)", "y_test[2]=3"]),
    ],
    ids=["train-label-beyond-declared", "test-label-beyond-declared"],
)
def test_declared_num_classes_names_split_index_value(tmp_path, y_train, y_test, num_classes, fragments):
    path = _npz(tmp_path, y_train=np.array(y_train), y_test=np.array(y_test))
    with pytest.raises(ValueError) as err:
        load_dataset(path=path, num_classes=num_classes)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_stray_label_warns_about_absent_classes(tmp_path, caplog):
    # Labels 0..9 and one 12: 13 classes inferred, 10 and 11 have no training example.
    y_train = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 0])
    path = _npz(tmp_path, x_train=np.zeros((12, 4, 4), np.uint8), y_train=y_train)
    with caplog.at_level(logging.WARNING, logger="bclab.data"):
        ds = load_dataset(path=path)
    assert ds.num_classes == 13
    assert "2 of its 13 classes have no training example (classes 10, 11)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bclab.data"):
        declared = load_dataset(path=path, num_classes=40)  # 10 absent classes listed, then a count
    assert declared.num_classes == 40
    # Present: 0..9 and 12 (11 classes), so 29 of 40 are absent.
    assert "29 of its 40 classes" in caplog.text
    assert "(classes 10, 11, 13, 14, 15, 16, 17, 18, 19, 20 and 19 more)" in caplog.text


def test_built_in_data_with_declared_classes(caplog):
    with pytest.raises(ValueError) as err:
        load_dataset("mnist-5k", num_classes=5)
    # mnist-5k's training labels run 0, 1, ..., 9, 0, ...: the first label >= 5 is at index 5.
    assert "`y_train`" in str(err.value) and "y_train[5]=5" in str(err.value)
    with caplog.at_level(logging.WARNING, logger="bclab.data"):
        assert load_dataset("mnist-5k", num_classes=12).num_classes == 12
    assert "classes 10, 11" in caplog.text


def test_whole_number_float_labels_are_taken(tmp_path):
    path = _npz(tmp_path, y_train=np.array([0.0, 1.0, 2.0] * 2 + [0.0, 1.0], np.float32))
    ds = load_dataset(path=path)
    np.testing.assert_array_equal(ds.y_train, np.arange(8) % 3)
    assert np.issubdtype(ds.y_train.dtype, np.integer)


@pytest.mark.parametrize(
    "change, fragments",
    [
        (lambda ds: ds.y_train.__setitem__(3, 9), ["`y_train`", "[0, 3)", "y_train[3]=9"]),
        (lambda ds: ds.y_test.__setitem__(1, -1), ["`y_test`", "class labels >= 0", "y_test[1]=-1"]),
    ],
    ids=["train-label-changed-in-place", "test-label-changed-in-place"],
)
def test_subset_checks_a_dataset_changed_in_place(change, fragments):
    arrays = _arrays(y_train=np.arange(8) % 3, y_test=np.arange(4) % 3)
    ds = Dataset("t", arrays["x_train"][..., None], arrays["y_train"], arrays["x_test"][..., None],
                 arrays["y_test"], 3, "t")  # fmt: skip
    change(ds)
    with pytest.raises(ValueError) as err:
        subset(ds, None, None)
    for fragment in fragments:
        assert fragment in str(err.value)


@pytest.mark.parametrize("num_classes", [1, 10_001, 2.5, "3", True])
def test_dataset_num_classes(num_classes):
    arrays = _arrays()
    with pytest.raises(ValueError, match=r"`num_classes`.*an integer in \[2, 10000\]") as err:
        Dataset("t", arrays["x_train"][..., None], arrays["y_train"], arrays["x_test"][..., None],
                arrays["y_test"], num_classes, "t")  # fmt: skip
    assert f"num_classes={num_classes!r}" in str(err.value)


# ---------------------------------------------------------------- shapes the models cannot take


@pytest.mark.parametrize(
    "shape, architecture, fragment",
    [
        ((4, 4, 3), "cnn", "H, W >= 8"),
        ((7, 28, 1), "cnn", "H, W >= 8"),
        ((28, 7, 1), "cnn", "H, W >= 8"),
        ((28, 28, 0), "cnn", "C >= 1"),
        ((28, 28, 0), "mlp", "C >= 1"),
        ((0, 28, 1), "mlp", "H, W >= 1"),
        ((28, 28), "mlp", "an image shape (H, W, C)"),
        ((28, 28.5, 1), "cnn", "an image shape (H, W, C)"),
    ],
)
def test_shapes_the_models_cannot_take(shape, architecture, fragment):
    with pytest.raises(ValueError) as err:
        check_fits_architecture(shape, architecture)
    assert "`image_shape`" in str(err.value) and f"image_shape={shape}" in str(err.value)
    assert fragment in str(err.value) and f"the {architecture} architecture" in str(err.value)


@pytest.mark.parametrize("shape, architecture", [((8, 8, 1), "cnn"), ((32, 32, 3), "cnn"), ((1, 1, 1), "mlp")])
def test_shapes_the_models_take(shape, architecture):
    assert check_fits_architecture(shape, architecture) == shape


def test_unknown_architecture():
    with pytest.raises(ValueError, match=r"`architecture`.*\['mlp', 'cnn'\].*architecture='resnet'"):
        check_fits_architecture((28, 28, 1), "resnet")


def test_zero_size_images_fail_before_tensorflow_runs(tmp_path):
    # bclab 0.1 aborted inside oneDNN (exit 134) on images of shape (28, 28, 0); run in a child
    # process so that a regression cannot take the test run down with it.
    path = _npz(tmp_path, x_train=np.zeros((8, 28, 28, 0), np.uint8), x_test=np.zeros((4, 28, 28, 0), np.uint8))
    code = (
        "import json, sys\n"
        "from bclab.config import RunConfig\n"
        "from bclab.train.models import build_model\n"
        "from bclab.data import load_dataset\n"
        "out = {}\n"
        "for what, call in (('load', lambda: load_dataset(path=sys.argv[1])),\n"
        "                   ('build', lambda: build_model(RunConfig(), (28, 28, 0), 10))):\n"
        "    try:\n        call()\n    except ValueError as e:\n        out[what] = str(e)\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert "x_train.shape=(8, 28, 28, 0)" in out["load"]
    assert "image_shape=(28, 28, 0)" in out["build"] and "C >= 1" in out["build"]


# ---------------------------------------------------------------- memory: declared sizes are not trusted


def _peak(call):
    """(the error `call` raised, the peak bytes it allocated)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as err:
            call()
        return err.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gz_bomb_idx_is_read_no_further_than_declared(tmp_path):
    # The header declares 10 images of 28x28 (7,840 bytes); the stream holds 50 MB of zeros.
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 10, 28, 28)
    path = _file(tmp_path, "bomb.gz", _zeros_gz(header, BOMB_BYTES))
    assert path.stat().st_size < 100_000
    error, peak = _peak(lambda: read_idx(path))
    assert str(path) in str(error) and "7840 bytes of data for shape (10, 28, 28)" in str(error)
    assert "more than 7840 bytes (too long)" in str(error)
    assert peak < 4 * 2**20  # bclab 0.1 decompressed it all: 50 MB


def test_gz_idx_declaring_more_than_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(data_files, "MAX_ARRAY_BYTES", 2**20)
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 2000, 28, 28)  # 1,568,000 bytes > 1 MiB
    path = _file(tmp_path, "big.gz", _zeros_gz(header, 2000 * 784))
    error, peak = _peak(lambda: read_idx(path))
    assert str(path) in str(error) and "at most MAX_ARRAY_BYTES=1048576 bytes" in str(error)
    assert "shape (2000, 28, 28): 1568000 bytes" in str(error)
    assert peak < 2**20


def test_gz_idx_shorter_than_declared(tmp_path):
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 100, 28, 28)
    path = _file(tmp_path, "short.gz", gzip.compress(header + bytes(1000)))
    with pytest.raises(ValueError) as err:
        read_idx(path)
    assert str(path) in str(err.value) and "78400 bytes of data for shape (100, 28, 28)" in str(err.value)
    assert "Received: 1000 bytes (truncated)" in str(err.value)


def test_corrupt_gzip_idx(tmp_path):
    path = _file(tmp_path, "c.gz", b"\x1f\x8b\x08\x00" + bytes(range(40)))
    with pytest.raises(ValueError, match="corrupt or truncated gzip data") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_npz_bomb_is_rejected_from_its_header(tmp_path):
    # x_train.npy declares 8 images of 4x4 but holds 50 MB of zeros (about 50 KB deflated).
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key, value in _arrays(x_train=None).items():
            z.writestr(f"{key}.npy", _npy(value))
        with z.open("x_train.npy", "w", force_zip64=True) as member:  # streamed: never 50 MB in memory
            member.write(_npy(shape=(8, 4, 4), dtype="u1"))
            for _ in range(BOMB_BYTES // 2**20):
                member.write(bytes(2**20))
    assert path.stat().st_size < 200_000
    error, peak = _peak(lambda: load_dataset(path=path))
    assert f"{path}: x_train.npy" in str(error) and "128 bytes of data for shape (8, 4, 4) of uint8" in str(error)
    assert f"{BOMB_BYTES} bytes (too long)" in str(error)
    assert peak < 2**20


def test_npz_array_beyond_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(data_files, "MAX_ARRAY_BYTES", 2**20)
    path = _npz(tmp_path, x_train=np.zeros((20_000, 8, 8), np.uint8), y_train=np.arange(20_000) % 3)
    error, peak = _peak(lambda: load_dataset(path=path))
    assert f"{path}: x_train.npy" in str(error) and "shape=(20000, 8, 8) of uint8: 1280000 bytes" in str(error)
    assert peak < 2**20


def test_npz_corrupt_member_crc(tmp_path):
    path = _npz(tmp_path, "crc.npz")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # stored: the data bytes are in the file as is
        for key, value in _arrays().items():
            z.writestr(f"{key}.npy", _npy(value))
    raw = bytearray(path.read_bytes())
    at = raw.index(_npy(_arrays()["y_train"])) + 130  # a byte of y_train's data
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as err:
        load_dataset(path=path)
    assert str(path) in str(err.value) and "Bad CRC-32" in str(err.value) and "y_train.npy" in str(err.value)
