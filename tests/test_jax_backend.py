"""bclab.core on Keras's JAX backend, checked from the TensorFlow test process.

Keras picks its backend once, at import, so `test_golden_tests_pass_on_jax` starts a second pytest
with `KERAS_BACKEND=jax` over the golden tests of the layers and the optimizer (test_binarize,
test_layers, test_optimizers: the same test bodies, through tests/backend_support.py, plus the
optimizer steps taken as the JAX trainer takes them, `stateless_apply`) and over this file, whose
`jax_only` tests run there: `model.fit` of a small MLP and a small CNN on the embedded digits, a
save/load round trip in the middle of stochastic training, and the TensorFlow-only parts (the
Trainer, the lab, `bclab train`) refusing the JAX backend in words.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import keras
import numpy as np
import pytest
from conftest import TINY

from bclab.core.layers import BinaryConv2D, BinaryDense, binary_layers
from bclab.core.optimizers import BinaryConnectOptimizer

ROOT = Path(__file__).resolve().parent.parent
ON_JAX = ["tests/test_binarize.py", "tests/test_layers.py", "tests/test_optimizers.py", "tests/test_jax_backend.py"]
NEEDS_TENSORFLOW = "needs Keras's TensorFlow backend; this process runs Keras on 'jax'"


@pytest.mark.tensorflow_only
def test_golden_tests_pass_on_jax(tmp_path):
    report = tmp_path / "jax.xml"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *ON_JAX]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    output = (result.stdout + result.stderr)[-8000:]
    assert result.returncode == 0, output
    cases = list(ElementTree.parse(report).getroot().iter("testcase"))
    skipped = [case.get("name") for case in cases if case.find("skipped") is not None]
    # Nothing is skipped there but this launcher: a test that skipped itself on JAX would hide a gap.
    assert skipped == ["test_golden_tests_pass_on_jax"], output
    names = {case.get("name") for case in cases}
    assert {"test_sgd_step_is_scaled[stateless_apply]", "test_fit_learns_digits[cnn-stochastic]"} <= names
    assert len(cases) >= 150, output


# --------------------------------------------------------------------------- in the JAX process


def digits_for_fit(digits, n=500):
    """`n` training and test digits in [-1, 1], targets in {-1, +1} (the reference's squared hinge)."""
    scale = lambda x: x[:n].astype(np.float32) / np.float32(127.5) - 1  # noqa: E731
    y = 2 * keras.utils.to_categorical(digits.y_train[:n], 10).astype(np.float32) - 1
    return scale(digits.x_train), y, scale(digits.x_test), digits.y_test[:n]


def mlp(stochastic):
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            BinaryDense(64, stochastic=stochastic, seed=1, name="b1"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            BinaryDense(10, stochastic=stochastic, seed=2, name="b2"),
            keras.layers.BatchNormalization(),
        ]
    )


def cnn(stochastic):
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.AveragePooling2D(2),  # 14 x 14: a CNN small enough for a test
            BinaryConv2D(8, 3, stochastic=stochastic, seed=1, name="b1"),
            keras.layers.MaxPooling2D(2),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            BinaryDense(10, stochastic=stochastic, seed=2, name="b2"),
            keras.layers.BatchNormalization(),
        ]
    )


def compiled(model, lr=1e-2):
    model.compile(optimizer=BinaryConnectOptimizer(keras.optimizers.Adam(lr)), loss="squared_hinge")
    return model


@pytest.mark.jax_only
@pytest.mark.parametrize("build, stochastic", [(mlp, False), (cnn, True)], ids=["mlp-deterministic", "cnn-stochastic"])
def test_fit_learns_digits(digits, build, stochastic):
    # 500 digits, batches of 50, 2 epochs: 20 steps of the compiled JAX train step.
    x, y, x_test, y_test = digits_for_fit(digits)
    model = compiled(build(stochastic))
    history = model.fit(x, y, batch_size=50, epochs=2, verbose=0, shuffle=False)
    loss = history.history["loss"]
    assert np.all(np.isfinite(loss)) and loss[1] < 0.9 * loss[0], loss
    assert int(model.optimizer.iterations) == 20
    layers = binary_layers(model)
    for layer in layers:  # the clip: every binary kernel within [-H, H]
        assert np.abs(keras.ops.convert_to_numpy(layer.kernel)).max() <= np.float32(layer.H), layer.name
    if stochastic:
        # SeedGenerator state = [seed, draws so far]: the compiled step drew once per step and the
        # trainer handed the new state back (a state left behind would repeat one sample).
        for layer, seed in zip(layers, (1, 2)):
            state = keras.ops.convert_to_numpy(layer.seed_generator.state)
            np.testing.assert_array_equal(state, [1_000_003 + seed, 20])
    # Test-time predictions: well above chance (10 %) after 20 steps (seen: 36 % MLP, 55 % CNN).
    accuracy = np.mean(keras.ops.convert_to_numpy(model(x_test, training=False)).argmax(axis=1) == y_test)
    assert accuracy > 0.25, accuracy


@pytest.mark.jax_only
def test_save_load_mid_stochastic_training_continues_identically(digits, tmp_path):
    # After the round trip, one more epoch on each gives the same weights bit for bit: the kernels,
    # Adam's state and the sampler's position all came back (another position draws other samples).
    x, y, x_test, _ = digits_for_fit(digits, n=200)
    model = compiled(mlp(stochastic=True))
    model.fit(x, y, batch_size=50, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, BinaryConnectOptimizer)
    for name in ("b1", "b2"):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(loaded.get_layer(name).seed_generator.state),
            keras.ops.convert_to_numpy(model.get_layer(name).seed_generator.state),
        )
    predict = lambda m: keras.ops.convert_to_numpy(m(x_test, training=False))  # noqa: E731
    np.testing.assert_array_equal(predict(model), predict(loaded))
    for m in (model, loaded):
        m.fit(x, y, batch_size=50, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)


@pytest.mark.jax_only
def test_trainer_says_it_needs_tensorflow(tiny_config):
    from bclab.train.backend import BackendError
    from bclab.train.trainer import Trainer

    with pytest.raises(BackendError, match=f"^bclab.Trainer {NEEDS_TENSORFLOW}"):
        Trainer(tiny_config)


@pytest.mark.jax_only
def test_lab_says_it_needs_tensorflow_in_its_status_line(tiny_config):
    from bclab.lab.app import Lab

    lab = Lab(tiny_config)
    assert lab.start() is False and lab.step() is False
    assert lab.trainer is None and lab.runner.state == "idle"
    assert "bclab.Lab needs Keras&#x27;s TensorFlow backend" in lab.status.value
    assert "KERAS_BACKEND=tensorflow" in lab.status.value


@pytest.mark.jax_only
def test_cli_train_says_it_needs_tensorflow(tmp_path, capsys):
    from bclab.cli import main

    args = [item for name, value in TINY.items() for item in (f"--{name.replace('_', '-')}", str(value))]
    out = tmp_path / "run"
    assert main(["train", *args, "--quiet", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"bclab: error: bclab train {NEEDS_TENSORFLOW}"), error
    assert not out.exists()
