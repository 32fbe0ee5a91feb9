"""1-bit export (`bclab.export_packed`, `bclab.load_packed`, `bclab export`): exact round trips, the bits
against a NumPy oracle of the reference's rounding, the size, the choices (stochastic layers, no binary
layer), the CLI, and a table of bad files, each with its message."""

import importlib.util
import io
import json
import math
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import bclab
from bclab.cli import main
from bclab.core.layers import BinaryConv2D, BinaryDense
from bclab.export.bits import pack_signs, unpack_signs
from bclab.export.fileformat import FORMAT_VERSION, PackedFileError, read_file

ROOT = Path(__file__).resolve().parent.parent


def reference_signs(W: np.ndarray, H: float) -> np.ndarray:
    """The reference's test-time rounding, in W's dtype: `+H` iff round_half_up(clip((W/H + 1)/2, 0, 1)) is 1,
    i.e. iff `p >= 0.5` (binary_connect.py, `T.round(hard_sigmoid(W / H))`); a NaN gives +H (Theano's switch)."""
    one, two = W.dtype.type(1), W.dtype.type(2)
    with np.errstate(invalid="ignore"):
        p = np.clip((W / W.dtype.type(H) + one) / two, 0, 1)
        return ~(p < W.dtype.type(0.5))  # NaN: no comparison holds, so +H


def awkward_kernel(shape, H, dtype="float32", seed=0):
    """Uniform(-2H, 2H) weights with exact zeros, signed zeros, |W| > H, tiny negatives that round to +H
    (fl(W / H) >= -eps/4) and one just below the threshold, and a NaN."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(-2 * H, 2 * H, size=shape).astype(dtype).ravel()
    eps = np.finfo(dtype).eps
    W[:6] = [0.0, -0.0, 3 * H, -3 * H, -eps / 8 * H, -eps * H]
    W[6] = np.nan
    return W.reshape(shape)


def mlp(H=1.0, stochastic=False, dtype=None, units=(32, 16)):
    layers = [keras.Input((12,), dtype=dtype)]
    for i, n in enumerate(units):
        layers += [
            BinaryDense(n, H=H, stochastic=stochastic, seed=i, name=f"d{i}", dtype=dtype),
            keras.layers.BatchNormalization(name=f"bn{i}", dtype=dtype),
            keras.layers.ReLU(dtype=dtype),
        ]
    layers += [BinaryDense(10, H=H, stochastic=stochastic, seed=9, name="out", dtype=dtype)]
    return keras.Sequential(layers, name="mlp")


def cnn():
    """BinaryConv2D + MaxPool + BatchNorm, a plain float conv (binary=False), a keras Dense head."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            BinaryConv2D(4, 3, padding="same", H="glorot", stochastic=False, seed=1, name="c1"),
            keras.layers.MaxPooling2D(2),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.ReLU(),
            BinaryConv2D(6, 3, binary=False, name="c2_float"),
            keras.layers.Flatten(),
            BinaryDense(8, H="glorot", stochastic=False, seed=2, name="fc"),
            keras.layers.BatchNormalization(name="bn2"),
            keras.layers.Dense(5, name="head"),
        ],
        name="cnn",
    )


def randomize(model, seed=0):
    """Awkward binary kernels, and BatchNorm statistics and biases far from their initial values."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "binary", False):
            dtype = keras.backend.standardize_dtype(layer.kernel.dtype)
            layer.kernel.assign(awkward_kernel(tuple(layer.kernel.shape), layer.H, dtype, seed))
        for variable in layer.weights:
            if variable.name in ("bias", "beta", "gamma", "moving_mean") or variable.name.startswith("kernel"):
                if not (getattr(layer, "binary", False) and variable is layer.kernel):
                    variable.assign(rng.normal(size=variable.shape).astype(variable.dtype))
            elif variable.name == "moving_variance":
                variable.assign(rng.uniform(0.5, 2, size=variable.shape).astype(variable.dtype))
    return model


def predictions(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


def inputs(model, n=16, seed=1):
    x = np.random.default_rng(seed).normal(size=(n, *model.input_shape[1:]))
    x[0] = 0.0
    return x.astype(keras.backend.standardize_dtype(model.inputs[0].dtype))


# ----- round trips -----


@pytest.mark.parametrize("H", [1.0, 0.1, "glorot"], ids=["H=1", "H=0.1", "H=glorot"])
def test_mlp_round_trip_gives_exactly_the_same_predictions(tmp_path, H):
    # 0.1 and glorot's sqrt(1.5 / (fan_in + fan_out)) are not float32 numbers: the kernel holds
    # float32(H), exactly as the layer casts H.
    model = randomize(mlp(H=H))
    summary = bclab.export_packed(model, tmp_path / "m.bclab")
    rebuilt = bclab.load_packed(tmp_path / "m.bclab")
    x = inputs(model)
    assert np.array_equal(predictions(model, x), predictions(rebuilt, x))
    assert not np.isnan(predictions(model, x)).any()  # the NaN weight binarized to +H, as the reference
    assert summary.packed_layers == ("d0", "d1", "out") and summary.as_deterministic == ()
    assert summary.binary_weights == 12 * 32 + 32 * 16 + 16 * 10
    for layer, twin in zip(bclab.binary_layers(model), bclab.binary_layers(rebuilt)):
        expected = np.where(reference_signs(keras.ops.convert_to_numpy(layer.kernel), layer.H), 1, -1)
        assert np.array_equal(keras.ops.convert_to_numpy(twin.kernel), (expected * np.float32(layer.H)))
        assert twin.H == layer.H and not twin.stochastic


def test_cnn_round_trip_gives_exactly_the_same_predictions_and_floats(tmp_path):
    model = randomize(cnn())
    bclab.export_packed(model, tmp_path / "c.bclab")
    rebuilt = bclab.load_packed(tmp_path / "c.bclab")
    x = inputs(model)
    assert np.array_equal(predictions(model, x), predictions(rebuilt, x))
    binary = {id(layer.kernel) for layer in bclab.binary_layers(model)}
    for original, copy in zip(model.weights, rebuilt.weights):
        if id(original) not in binary:  # biases, BatchNorm, the float conv and the Dense head: bit for bit
            assert np.array_equal(keras.ops.convert_to_numpy(original), keras.ops.convert_to_numpy(copy))


def test_float64_model_round_trips_exactly(tmp_path):
    model = randomize(mlp(H=0.1, dtype="float64"))
    bclab.export_packed(model, tmp_path / "m.bclab")
    header, _ = read_file(tmp_path / "m.bclab")
    assert {v["dtype"] for v in header["variables"] if v["kind"] == "bits"} == {"float64"}
    rebuilt = bclab.load_packed(tmp_path / "m.bclab")
    x = inputs(model)
    assert np.array_equal(predictions(model, x), predictions(rebuilt, x))


def test_bits_are_the_reference_signs_packed_big_endian():
    # 10 weights -> 2 bytes; signs + - + + - - - + | + - then 6 padding zeros.
    H = np.float32(0.5)
    Wb = np.array([1, -1, 1, 1, -1, -1, -1, 1, 1, -1], np.float32).reshape(2, 5) * H
    bits = pack_signs(Wb)
    assert bits.tolist() == [0b10110001, 0b10000000]
    assert np.array_equal(unpack_signs(bits, (2, 5), 0.5, "float32"), Wb)
    with pytest.raises(ValueError, match=r"Wb\[0, 2\]=.*0\.25"):
        pack_signs(np.array([[0.5, -0.5, 0.25]], np.float32))
    with pytest.raises(ValueError, match=r"Wb\[0, 0\]="):
        pack_signs(np.zeros((1, 2), np.float32))


# ----- choices: stochastic layers, models without binary layers -----


def test_a_stochastic_model_is_refused_unless_as_deterministic(tmp_path):
    model = randomize(mlp(stochastic=True))
    with pytest.raises(ValueError, match=r"as_deterministic.*\['d0', 'd1', 'out'\].*real-valued W"):
        bclab.export_packed(model, tmp_path / "s.bclab")
    assert not (tmp_path / "s.bclab").exists()
    summary = bclab.export_packed(model, tmp_path / "s.bclab", as_deterministic=True)
    assert summary.as_deterministic == ("d0", "d1", "out")
    rebuilt = bclab.load_packed(tmp_path / "s.bclab")
    assert all(not layer.stochastic for layer in bclab.binary_layers(rebuilt))
    # An independent deterministic twin with the same weights: its test-time kernel is H*sign(W).
    twin = mlp(stochastic=False)
    twin.set_weights(model.get_weights())
    x = inputs(model)
    assert np.array_equal(predictions(rebuilt, x), predictions(twin, x))
    # ... which is why export refuses by default: the stochastic net's own predictions use the real W.
    assert not np.allclose(predictions(rebuilt, x), predictions(model, x))


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]),
        lambda: keras.Sequential([keras.Input((4,)), BinaryDense(3, binary=False)]),
    ],
    ids=["keras Dense", "BinaryDense(binary=False)"],
)
def test_a_model_without_binary_layers_is_refused(tmp_path, make):
    with pytest.raises(ValueError, match="at least one bclab binary layer.*model.save"):
        bclab.export_packed(make(), tmp_path / "f.bclab")
    assert not (tmp_path / "f.bclab").exists()


def test_an_unbuilt_model_or_a_non_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="built model"):
        bclab.export_packed(keras.Sequential([BinaryDense(3, stochastic=False)]), tmp_path / "u.bclab")
    with pytest.raises(ValueError, match="`model`, expected a keras.Model"):
        bclab.export_packed("model.keras", tmp_path / "u.bclab")
    with pytest.raises(ValueError, match="`as_deterministic`"):
        bclab.export_packed(mlp(), tmp_path / "u.bclab", as_deterministic="yes")


def test_a_lambda_layer_in_a_file_is_not_run(tmp_path):
    # safe_mode: a file from elsewhere cannot make load_packed run code.
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Lambda(lambda x: 2 * x), BinaryDense(3, stochastic=False)]
    )
    bclab.export_packed(model, tmp_path / "l.bclab")
    with pytest.raises(PackedFileError, match="l.bclab.*does not rebuild.*(?i:lambda)"):
        bclab.load_packed(tmp_path / "l.bclab")


# ----- size -----


def test_the_file_is_over_20_times_smaller_than_model_keras(tmp_path):
    # 784-512-512-10: 668,672 binary weights, 83,584 bytes as bits against 2.67 MB as float32.
    model = bclab.build_model(bclab.RunConfig(hidden_units=512, hidden_layers=2, mode="deterministic"), (28, 28, 1), 10)
    model.save(tmp_path / "model.keras")  # as `bclab train` writes it: no optimizer state
    summary = bclab.export_packed(model, tmp_path / "model.bclab")
    size = (tmp_path / "model.bclab").stat().st_size
    assert summary.file_bytes == size and summary.binary_weights == 784 * 512 + 512 * 512 + 512 * 10
    assert (tmp_path / "model.keras").stat().st_size / size >= 20
    assert summary.weights_ratio >= 20
    floats = 4 * summary.float_values  # float32 biases and BatchNorm
    assert size - math.ceil(summary.binary_weights / 8) - floats < 32_000  # header and zip records


# ----- the CLI -----


def exit_status(argv):
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    randomize(mlp()).save(folder / "det.keras")
    randomize(mlp(stochastic=True)).save(folder / "sto.keras")
    return folder


def test_cli_export_writes_the_file_and_prints_both_sizes(tmp_path, saved_models, capsys):
    out = tmp_path / "new" / "model.bclab"
    assert exit_status(["export", str(saved_models / "det.keras"), str(out)]) == 0
    printed = capsys.readouterr().out
    keras_bytes, bclab_bytes = (saved_models / "det.keras").stat().st_size, out.stat().st_size
    assert f"{keras_bytes:,} bytes" in printed and f"{bclab_bytes:,} bytes" in printed
    assert f"({keras_bytes / bclab_bytes:.1f}x smaller)" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.bclab"]  # no staging left
    model = keras.models.load_model(saved_models / "det.keras")
    x = inputs(model)
    assert np.array_equal(predictions(model, x), predictions(bclab.load_packed(out), x))


def test_cli_export_bad_input_exits_2_and_writes_nothing(tmp_path, saved_models, capsys):
    existing = tmp_path / "exists.bclab"
    existing.write_bytes(b"mine")
    (tmp_path / "a_file").write_text("x")
    cases = [
        ([str(tmp_path / "missing.keras"), str(tmp_path / "o1.bclab")], "`model`.*found nothing"),
        ([str(tmp_path), str(tmp_path / "o2.bclab")], "`model`.*found a folder"),
        ([str(existing), str(tmp_path / "o3.bclab")], "exists.bclab"),  # not a Keras file: Keras's message
        ([str(saved_models / "det.keras"), str(existing)], "`out`, expected a new file"),
        ([str(saved_models / "det.keras"), str(tmp_path)], "`out`, expected a file path, not a folder"),
        ([str(saved_models / "det.keras"), str(tmp_path / "a_file" / "o.bclab")], "parent is a folder"),
        ([str(saved_models / "sto.keras"), str(tmp_path / "o4.bclab")], r"stochastic.*--as-deterministic"),
    ]
    for args, message in cases:
        assert exit_status(["export", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("bclab: error: ") and len(err.strip().splitlines()) == 1, err
        assert re.search(message, err), (message, err)
    assert existing.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "exists.bclab"]


def test_cli_export_as_deterministic(tmp_path, saved_models, capsys):
    out = tmp_path / "s.bclab"
    assert exit_status(["export", str(saved_models / "sto.keras"), str(out), "--as-deterministic"]) == 0
    assert "packed as deterministic: ['d0', 'd1', 'out']" in capsys.readouterr().out
    assert all(not layer.stochastic for layer in bclab.binary_layers(bclab.load_packed(out)))


# ----- the format: NumPy only, and bad files -----


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "good.bclab"
    bclab.export_packed(randomize(mlp(units=(7,))), path)  # 12*7 = 84 bits: padding in the last byte
    return path


def test_the_format_reads_without_keras_or_tensorflow(good_file):
    code = (
        "import sys\nfrom bclab.export.fileformat import read_file\n"
        f"header, arrays = read_file({str(good_file)!r})\n"
        "print(len(arrays), sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow', 'jax'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "8 []"  # 2 kernels as bits, 2 biases, 4 BatchNorm arrays
    with np.load(good_file, allow_pickle=False) as npz:  # a plain npz, readable without bclab
        assert sorted(npz.files) == ["header", *(f"v{i}" for i in range(8))]


def contents(path):
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(npz["header"].tobytes())
        return header, [npz[f"v{i}"] for i in range(len(header["variables"]))]


def npy(array, **kwargs):
    out = io.BytesIO()
    np.lib.format.write_array(out, array, allow_pickle=True, **kwargs)
    return out.getvalue()


def write(path, header, arrays, raw=None, compression=zipfile.ZIP_STORED):
    """An archive by hand: the header (a dict as JSON, or bytes as they are), arrays v0.., `raw` entries."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    entries = {"header.npy": npy(np.frombuffer(text, np.uint8))}
    entries.update({f"v{i}.npy": npy(a) for i, a in enumerate(arrays)})
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", compression) as z:
        warnings.simplefilter("ignore")  # duplicate names are a case
        for name, data in [*entries.items(), *(raw or {}).items()]:
            z.writestr(name, data)


def edited(change):
    def make(path, good):
        header, arrays = contents(good)
        change(header, arrays)
        write(path, header, arrays)

    return make


def put(key, value):
    return edited(lambda h, a: h.__setitem__(key, value))


def var(index, key, value):
    return edited(lambda h, a: h["variables"][index].__setitem__(key, value))


def array(index, value):
    return edited(lambda h, a: a.__setitem__(index, value))


def raw(data):
    return lambda path, good: path.write_bytes(data)


def good_then(cut):
    return lambda path, good: path.write_bytes(cut(good.read_bytes()))


def zip_of(entries):
    def make(path, good):
        with zipfile.ZipFile(path, "w") as z:
            for name, data in entries.items():
                z.writestr(name, data)

    return make


def with_raw(entries, compression=zipfile.ZIP_STORED):
    return lambda path, good: write(path, *contents(good), raw=entries, compression=compression)


def model_config(change):
    return edited(lambda h, a: change(h["model"]["config"]["layers"]))


def drop_last(header, arrays):
    header["variables"].pop()
    arrays.pop()


def mislabel_bias_as_bits(header, arrays):
    header["variables"][1].update(kind="bits", layer="d0", H=1.0, dtype="float32")  # the bias of d0, 7 values
    arrays[1] = np.zeros(1, np.uint8)


def kernel_as_floats(header, arrays):
    header["variables"][0]["kind"] = "float"
    for key in ("layer", "H"):
        del header["variables"][0][key]
    arrays[0] = np.ones((12, 7), np.float32)


# name -> (make the file, a fragment the message must hold besides the file's name)
BAD_FILES = {
    "no file": (lambda path, good: None, "does not exist"),
    "a folder": (lambda path, good: path.mkdir(), "a folder"),
    "an empty file": (raw(b""), "not a readable zip archive"),
    "random bytes": (raw(np.random.default_rng(0).bytes(2048)), "not a readable zip archive"),
    "the first half of a good file": (good_then(lambda b: b[: len(b) // 2]), "not a readable zip archive"),
    "a good file without its last 10 bytes": (good_then(lambda b: b[:-10]), "not a readable zip archive"),
    "a text file in the zip": (with_raw({"notes.txt": b"hi"}), "'notes.txt' is not a .npy array"),
    "a second entry of one name": (with_raw({"v0.npy": npy(np.zeros(3))}), "a second entry of that name"),
    "deflated entries": (lambda p, g: write(p, *contents(g), compression=zipfile.ZIP_DEFLATED), "compressed"),
    "a pickled object array": (with_raw({"x.npy": npy(np.array([{}], dtype=object))}), "dtype object"),
    "a Fortran-order array": (with_raw({"x.npy": npy(np.ones((2, 3)).T)}), "Fortran order"),
    "an entry claiming more data than it holds": (
        with_raw({"x.npy": npy(np.zeros(4))[:-8]}),
        "declares shape (4,) of float64 (32 bytes) but holds 24",
    ),
    "no header": (zip_of({"v0.npy": npy(np.zeros(3))}), "no `header` entry"),
    "a header of floats": (zip_of({"header.npy": npy(np.zeros(2))}), "no `header` entry"),
    "a header that is not JSON": (lambda p, g: write(p, b"{nope", []), "JSON header does not parse"),
    "a header that is a list": (lambda p, g: write(p, b"[]", []), "format='bclab.packed'"),
    "another format": (put("format", "bclab.trace"), "format='bclab.packed'"),
    "version 2": (put("version", 2), f"format version 2; this bclab reads version {FORMAT_VERSION}"),
    "version true": (put("version", True), "format version True"),
    "a missing header key": (edited(lambda h, a: h.pop("model")), "`header` has keys"),
    "an unknown header key": (put("extra", 1), "`header` has keys"),
    "variables as a mapping": (put("variables", {}), "`variables` is {}, expected a list"),
    "as_deterministic as text": (put("as_deterministic", "d0"), "`as_deterministic`"),
    "a variable of another kind": (
        var(0, "kind", "int4"),
        '`variables[0].kind` is \'int4\', expected "float" or "bits"',
    ),
    "a negative shape": (var(1, "shape", [-7]), "`variables[1].shape`"),
    "a float dtype that is not NumPy's": (var(1, "dtype", "float8"), "`variables[1].dtype`"),
    "bits of an int kernel": (var(0, "dtype", "int32"), "`variables[0].dtype` is 'int32'"),
    "H negative": (var(0, "H", -1.0), "`variables[0].H` is -1.0"),
    "H NaN": (var(0, "H", math.nan), "`variables[0].H` is nan"),
    "H as text": (var(0, "H", "1.0"), "`variables[0].H`"),
    "H too big for float16": (edited(lambda h, a: h["variables"][0].update(dtype="float16", H=1e6)), "float16 holds"),
    "a missing array": (edited(lambda h, a: a.pop()), "lists 8 variables but the archive holds"),
    "an extra array": (with_raw({"v99.npy": npy(np.zeros(1))}), "lists 8 variables"),
    "a float array of another dtype": (array(1, np.zeros(7, np.float64)), "needs an array of dtype float32"),
    "a float array of another shape": (array(1, np.zeros(8, np.float32)), "shape (7,)"),
    "bits of the wrong length": (array(0, np.zeros(10, np.uint8)), "needs an array of dtype uint8 and shape (11,)"),
    "padding bits set": (array(0, np.full(11, 255, np.uint8)), "padding bits set to 0"),
    # Consistent files whose variables do not fit the model their config rebuilds.
    "a config that does not rebuild": (
        model_config(lambda layers: layers[1].update(class_name="NoSuchLayer", registered_name="bclab>NoSuchLayer")),
        "does not rebuild a Keras model",
    ),
    "a variable too few": (edited(drop_last), "its model has 8 variables, the file holds 7"),
    "a variable renamed": (var(1, "name", "beta"), "'beta' (7,) float32, but the rebuilt model's variable 1 is 'bias'"),
    "a bias stored as bits": (edited(mislabel_bias_as_bits), "is stored as bits, but the rebuilt model's variable"),
    "a binary kernel stored as floats": (edited(kernel_as_floats), "is stored as floats for a binary kernel"),
    "another H": (var(0, "H", 0.5), "with H=0.5; the rebuilt layer is 'd0' with H=1.0"),
    "a stochastic layer in the config": (
        model_config(lambda layers: layers[1]["config"].__setitem__("stochastic", True)),
        "'d0' is stochastic in the config",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_a_clear_error_naming_it(tmp_path, good_file, case):
    make, fragment = BAD_FILES[case]
    path = tmp_path / "bad.bclab"
    make(path, good_file)
    with pytest.raises(PackedFileError) as info:
        bclab.load_packed(path)
    message = str(info.value)
    assert message.startswith(f"Cannot load packed model file {str(path)!r}: "), message
    assert fragment in message, message


def test_the_good_file_of_the_table_loads(good_file):
    # The table's files are edits of this one: it must load, or every row would pass for the wrong reason.
    header, arrays = contents(good_file)
    write(good_file.with_name("rewritten.bclab"), header, arrays)
    assert len(bclab.load_packed(good_file.with_name("rewritten.bclab")).weights) == 8


def test_cli_names_a_bad_bclab_file_given_as_model(tmp_path, capsys):
    (tmp_path / "x.keras").write_bytes(b"not a zip")
    assert exit_status(["export", str(tmp_path / "x.keras"), str(tmp_path / "o.bclab")]) == 2
    assert "x.keras" in capsys.readouterr().err


# ----- the bench script -----


def test_bench_export_size_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("export_size", ROOT / "bench" / "export_size.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--smoke", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "export_size.json").read_text())
    printed = capsys.readouterr().out
    assert result["exact_predictions"] is True and result["architecture"] == "784-32-32-32-10"
    assert f"model.keras / model.bclab = {result['model_keras_bytes'] / result['bclab_bytes']:.1f}x" in printed
    assert result["bits_bytes"] == sum(math.ceil(a * b / 8) for a, b in [(784, 32), (32, 32), (32, 32), (32, 10)])


def test_a_nested_functional_model_round_trips(tmp_path):
    # A stochastic layer inside a nested Sequential: found and rebuilt deterministic there.
    def build(stochastic):
        inner = keras.Sequential(
            [
                keras.Input((6,)),
                BinaryDense(5, stochastic=stochastic, name="inner_d"),
                keras.layers.BatchNormalization(),
            ],
            name="inner",
        )
        x = keras.Input((6,))
        return keras.Model(x, BinaryDense(3, stochastic=False, name="top")(inner(x)))

    model = randomize(build(stochastic=True))
    summary = bclab.export_packed(model, tmp_path / "n.bclab", as_deterministic=True)
    assert summary.packed_layers == ("inner_d", "top") and summary.as_deterministic == ("inner_d",)
    twin = build(stochastic=False)
    twin.set_weights(model.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    assert np.array_equal(predictions(twin, x), predictions(bclab.load_packed(tmp_path / "n.bclab"), x))
