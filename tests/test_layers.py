"""Tests for bclab.core.layers: BinaryDense, BinaryConv2D, binary_layers, binary_weights."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from backend_support import Compiled, value_and_gradients

from bclab.core.binarize import glorot_H
from bclab.core.constraints import BinaryKernelClip
from bclab.core.layers import BinaryConv2D, BinaryDense, binary_layers, binary_weights
from bclab.core.optimizers import BinaryConnectOptimizer


def sign_kernel(W, H):
    """The reference's deterministic kernel: H * sign(W) with sign(0) = +1."""
    return np.where(np.asarray(W) >= 0, np.float32(H), np.float32(-H)).astype(np.float32)


def dense(units, in_dim, **kwargs):
    layer = BinaryDense(units, **kwargs)
    layer.build((None, in_dim))
    return layer


# Kernel (4 -> 3) with exact zeros, |W| > H (H = 0.5) and a tiny negative.
W_SMALL = np.array(
    [[0.0, -0.2, 0.7], [-1e-9, 0.3, -0.9], [0.5, -0.5, 0.0], [2.0, -0.1, 0.1]],
    np.float32,
)
X_SMALL = np.array([[1, 2, 0, -1], [3, -2, 1, 0]], np.float32)


# --------------------------------------------------------------------------- forward


@pytest.mark.parametrize("training", [True, False])
def test_deterministic_dense_forward_hand_computed(training):
    layer = dense(3, 4, stochastic=False, H=0.5, seed=0)
    layer.kernel.assign(W_SMALL)
    layer.bias.assign(np.array([0.25, 0.0, -1.0], np.float32))
    # Wb = 0.5 * sign(W), sign(0) = +1 and sign(-1e-9) = +1 (p rounds to 0.5 in float32):
    # [[+,-,+], [+,+,-], [+,-,+], [+,-,+]] * 0.5
    # x0 = [1, 2, 0, -1]: col0 0.5*(1+2+0-1)=1; col1 0.5*(-1+2-0+1)=1; col2 0.5*(1-2+0-1)=-1
    # x1 = [3, -2, 1, 0]: col0 0.5*(3-2+1+0)=1; col1 0.5*(-3-2-1-0)=-3; col2 0.5*(3+2+1+0)=3
    # plus bias [0.25, 0, -1]
    expected = np.array([[1.25, 1.0, -2.0], [1.25, -3.0, 2.0]], np.float32)
    out = keras.ops.convert_to_numpy(layer(X_SMALL, training=training))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("H", [0.3, "glorot"])
def test_deterministic_dense_equals_matmul_with_oracle_kernel(training, H):
    rng = np.random.default_rng(0)
    layer = dense(5, 7, stochastic=False, H=H, seed=1)
    W = rng.uniform(-2 * layer.H, 2 * layer.H, (7, 5)).astype(np.float32)
    W[0, :] = 0.0
    layer.kernel.assign(W)
    x = rng.normal(size=(4, 7)).astype(np.float32)
    out = keras.ops.convert_to_numpy(layer(x, training=training))
    expected = x @ sign_kernel(W, layer.H) + keras.ops.convert_to_numpy(layer.bias)
    # float32 matmul; summation order may differ from NumPy's by a few ulps
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_stochastic_dense_at_test_time_uses_real_W():
    # Reference quirk: test time passes deterministic=True, which with stochastic=True
    # switches binarization off, so the layer is a plain Dense with the real kernel.
    layer = dense(3, 4, stochastic=True, H=0.5, seed=0)
    layer.kernel.assign(W_SMALL)
    out = keras.ops.convert_to_numpy(layer(X_SMALL, training=False))
    # X_SMALL and W_SMALL rows: x0 @ W col0 = 0 + 2*-1e-9 + 0 - 2 = -2.000000002 -> -2 in float32
    np.testing.assert_allclose(out, X_SMALL @ W_SMALL, rtol=1e-6)
    assert not np.allclose(out, X_SMALL @ sign_kernel(W_SMALL, 0.5))


def test_stochastic_dense_training_samples_binary_kernel():
    # With x = identity, y = x @ Wb is the sampled kernel itself: every entry is +-H,
    # entries with |W| >= H are certain (p = 0 or 1), and two calls draw fresh samples.
    H = 0.5
    layer = BinaryDense(64, stochastic=True, H=H, use_bias=False, seed=3)
    layer.build((None, 8))
    W = np.zeros((8, 64), np.float32)
    W[0] = 2.0  # p = 1
    W[1] = -H  # p = 0
    layer.kernel.assign(W)
    eye = np.eye(8, dtype=np.float32)
    assert layer.binary_kernel_in_use is None  # no forward pass yet
    a = keras.ops.convert_to_numpy(layer(eye, training=True))
    b = keras.ops.convert_to_numpy(layer(eye, training=True))
    for s in (a, b):
        assert set(np.unique(s)) == {np.float32(-H), np.float32(H)}
        np.testing.assert_array_equal(s[0], np.full(64, np.float32(H)))
        np.testing.assert_array_equal(s[1], np.full(64, np.float32(-H)))
    assert not np.array_equal(a[2:], b[2:])  # 6*64 weights at p = 0.5
    # The public record of the kernel in use is the last pass's sample (eye @ Wb = Wb).
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.binary_kernel_in_use), b)


def test_binary_kernel_in_use_inside_a_traced_function_is_the_sample_used():
    layer = BinaryDense(16, stochastic=True, H=0.5, use_bias=False, seed=4)
    layer.build((None, 4))
    eye = np.eye(4, dtype=np.float32)

    def forward_and_kernel(x):
        return layer(x, training=True), layer.binary_kernel_in_use  # symbolic, read in the same trace

    compiled = Compiled(forward_and_kernel, state=[layer.seed_generator.state])
    samples = []
    for _ in range(2):  # a fresh sample each call, and the output is made with that sample
        out, Wb = compiled(eye)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(Wb))
        samples.append(keras.ops.convert_to_numpy(Wb))
    assert not np.array_equal(*samples)  # 64 weights at p = hard_sigmoid(W / 0.5)
    assert compiled.traces == 1


def test_binary_kernel_in_use_at_test_time_and_for_a_plain_layer():
    layer = dense(3, 4, stochastic=False, H=0.5, use_bias=False)
    layer.kernel.assign(W_SMALL)
    layer(X_SMALL, training=False)
    # 0.5 * sign(W), sign(0) = +1 and sign(-1e-9) = +1 (p rounds to 0.5 in float32), as in
    # test_deterministic_dense_forward_hand_computed.
    expected = 0.5 * np.array([[1, -1, 1], [1, 1, -1], [1, -1, 1], [1, -1, 1]], np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.binary_kernel_in_use), expected)
    plain = dense(3, 4, binary=False)
    plain(np.ones((1, 4), np.float32))
    assert plain.binary_kernel_in_use is None


# --------------------------------------------------------------------------- gradient


@pytest.mark.parametrize("stochastic", [False, True])
def test_gradient_wrt_real_kernel_is_dC_dWb(stochastic):
    layer = dense(3, 4, stochastic=stochastic, H=0.5, seed=0)
    layer.kernel.assign(W_SMALL)  # W[3, 0] = 2.0 > H: still gets the full gradient
    upstream = np.array([[1.0, -2.0, 0.0], [0.5, 1.0, 3.0]], np.float32)
    _, (grad_W, grad_b) = value_and_gradients(
        lambda: (keras.ops.sum(layer(X_SMALL, training=True) * upstream), None), [layer.kernel, layer.bias]
    )
    # C = sum(upstream * (x @ Wb + b)) -> dC/dWb = x.T @ upstream, dC/db = sum_rows(upstream)
    # e.g. [0, 0] = 1*1 + 3*0.5 = 2.5; [3, 0] = -1*1 + 0*0.5 = -1; [0, 1] = 1*-2 + 3*1 = 1
    expected = X_SMALL.T @ upstream
    np.testing.assert_array_equal(grad_W, expected)
    assert grad_W[3, 0] == -1.0
    np.testing.assert_array_equal(grad_b, upstream.sum(axis=0))


def test_gradient_of_sum_is_x_transpose_ones():
    layer = dense(3, 4, stochastic=False, H=0.5, use_bias=False)
    layer.kernel.assign(W_SMALL)
    _, (grad,) = value_and_gradients(lambda: (keras.ops.sum(layer(X_SMALL, training=True)), None), [layer.kernel])
    # d sum(x @ Wb) / dWb = x.T @ ones = column sums of x broadcast: [4, 0, 1, -1] per unit
    expected = np.repeat(np.array([[4.0], [0.0], [1.0], [-1.0]], np.float32), 3, axis=1)
    np.testing.assert_array_equal(grad, expected)


# --------------------------------------------------------------------------- conv


@pytest.mark.parametrize("training", [True, False])
def test_deterministic_conv_equals_float_conv_with_sign_kernel(training):
    H = 0.3
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    binary = BinaryConv2D(4, 3, stochastic=False, H=H, padding="same", seed=0)
    binary.build(x.shape)
    W = rng.uniform(-2 * H, 2 * H, (3, 3, 3, 4)).astype(np.float32)
    W[1, 1] = 0.0  # exact zeros -> +H
    binary.kernel.assign(W)
    binary.bias.assign(np.array([0.1, -0.2, 0.0, 0.3], np.float32))
    plain = keras.layers.Conv2D(4, 3, padding="same")
    plain.build(x.shape)
    plain.kernel.assign(sign_kernel(W, H))
    plain.bias.assign(binary.bias)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(binary(x, training=training)), keras.ops.convert_to_numpy(plain(x))
    )


# --------------------------------------------------------------------------- H, scale, init


def test_glorot_dense_mnist_first_layer():
    layer = dense(2048, 784, H="glorot", W_LR_scale="glorot", seed=0)
    # sqrt(1.5 / (784 + 2048)) = sqrt(1.5 / 2832) = 0.023014..., inverse 43.4511...
    assert layer.H == pytest.approx(math.sqrt(1.5 / 2832), rel=1e-12)
    assert layer.W_LR_scale == pytest.approx(1 / math.sqrt(1.5 / 2832), rel=1e-12)
    assert layer.W_LR_scale == pytest.approx(43.4511, abs=1e-4)
    W = keras.ops.convert_to_numpy(layer.kernel)
    assert np.abs(W).max() <= np.float32(layer.H)
    assert np.abs(W).max() > 0.9 * layer.H  # Uniform(-H, H), not a narrower init
    assert isinstance(layer.kernel.constraint, BinaryKernelClip)
    assert layer.kernel.constraint.H == layer.H
    assert layer.kernel.constraint.W_LR_scale == layer.W_LR_scale


def test_glorot_conv_uses_receptive_field():
    layer = BinaryConv2D(8, 3, H="glorot", W_LR_scale="glorot", seed=0)
    layer.build((None, 5, 5, 3))
    # fan_in = 3*3*3 = 27, fan_out = 3*3*8 = 72: H = sqrt(1.5 / 99) = 0.12309...
    assert layer.H == pytest.approx(math.sqrt(1.5 / 99), rel=1e-12)
    assert layer.H == pytest.approx(glorot_H(27, 72), rel=1e-15)
    assert layer.W_LR_scale == pytest.approx(math.sqrt(99 / 1.5), rel=1e-12)
    W = keras.ops.convert_to_numpy(layer.kernel)
    assert np.abs(W).max() <= np.float32(layer.H)


def test_default_is_H_1_and_glorot_scale():
    # Lasagne scripts: H = 1, W_LR_scale = "Glorot"
    layer = dense(10, 20)
    assert layer.H == 1.0 and layer.stochastic and layer.binary
    assert layer.W_LR_scale == pytest.approx(1 / math.sqrt(1.5 / 30), rel=1e-12)
    assert np.abs(keras.ops.convert_to_numpy(layer.kernel)).max() <= 1.0


def test_float_H_and_scale_are_kept():
    layer = dense(3, 4, H=0.25, W_LR_scale=2.0)
    assert layer.H == 0.25 and layer.W_LR_scale == 2.0
    assert np.abs(keras.ops.convert_to_numpy(layer.kernel)).max() <= 0.25
    assert dense(3, 4, W_LR_scale=None).W_LR_scale == 1.0


def test_binary_false_is_a_plain_dense():
    layer = dense(3, 4, binary=False, kernel_constraint=keras.constraints.NonNeg())
    layer.kernel.assign(W_SMALL)
    out = keras.ops.convert_to_numpy(layer(X_SMALL, training=True))
    np.testing.assert_allclose(out, X_SMALL @ W_SMALL, rtol=1e-6)
    assert not isinstance(layer.kernel.constraint, BinaryKernelClip)


# --------------------------------------------------------------------------- in models


class KernelBoundCheck(keras.callbacks.Callback):
    """Records max |W| / H of every binary kernel after every training batch."""

    def __init__(self):
        super().__init__()
        self.ratios = []

    def on_train_batch_end(self, batch, logs=None):
        self.ratios.append(
            max(
                float(np.abs(keras.ops.convert_to_numpy(layer.kernel)).max() / layer.H)
                for layer in binary_layers(self.model)
            )
        )


def toy_data(n=64, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = 2 * keras.utils.to_categorical(rng.integers(0, classes, n), classes).astype(np.float32) - 1
    return x, y


def sequential_model():
    return keras.Sequential(
        [
            keras.Input((6,)),
            BinaryDense(8, stochastic=True, H=0.05, W_LR_scale=1.0, seed=1, name="bd1"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            BinaryDense(3, stochastic=False, H=0.05, W_LR_scale=1.0, seed=2, name="bd2"),
        ]
    )


def functional_model():
    inp = keras.Input((6,))
    x = keras.layers.Reshape((2, 3, 1))(inp)
    x = BinaryConv2D(4, 2, padding="same", stochastic=True, H=0.05, W_LR_scale=1.0, seed=1, name="bc1")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    out = BinaryDense(3, stochastic=False, H=0.05, W_LR_scale=1.0, seed=2, name="bd2")(x)
    return keras.Model(inp, out)


@pytest.mark.parametrize("build, names", [(sequential_model, ["bd1", "bd2"]), (functional_model, ["bc1", "bd2"])])
def test_fit_evaluate_with_callback_keeps_W_clipped(build, names):
    model = build()
    # lr 0.1 >> H = 0.05: Adam's first step (~lr) pushes kernels past H, so the clip must act
    model.compile(optimizer=BinaryConnectOptimizer(keras.optimizers.Adam(0.1)), loss="squared_hinge")
    x, y = toy_data()
    check = KernelBoundCheck()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[check])
    assert len(check.ratios) == 8  # 64 / 16 batches x 2 epochs
    assert max(check.ratios) <= 1.0
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(model.evaluate(x, y, verbose=0))
    layers = binary_layers(model)
    assert [layer.name for layer in layers] == names
    # the clip was active: some weights sit exactly at +-H
    W = np.concatenate([keras.ops.convert_to_numpy(layer.kernel).ravel() for layer in layers])
    assert np.any(np.abs(W) == np.float32(0.05))
    assert np.all(np.abs(W) <= np.float32(0.05))


def test_binary_weights_returns_W_and_Wb():
    model = sequential_model()
    got = binary_weights(model)
    assert list(got) == ["bd1", "bd2"]
    for name, (W, Wb) in got.items():
        layer = model.get_layer(name)
        np.testing.assert_array_equal(W, keras.ops.convert_to_numpy(layer.kernel))
        if layer.stochastic:  # test time: the real W (reference quirk)
            np.testing.assert_array_equal(Wb, W)
        else:
            np.testing.assert_array_equal(Wb, sign_kernel(W, layer.H))
    for _, Wb in binary_weights(model, training=True).values():
        assert set(np.unique(Wb)) <= {np.float32(0.05), np.float32(-0.05)}


# --------------------------------------------------------------------------- saving


def test_save_load_round_trip_bit_exact(tmp_path):
    model = functional_model()
    model.compile(optimizer=BinaryConnectOptimizer(keras.optimizers.Adam(0.01)), loss="squared_hinge")
    x, y = toy_data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode default

    assert isinstance(loaded.optimizer, BinaryConnectOptimizer)
    assert isinstance(loaded.optimizer.inner_optimizer, keras.optimizers.Adam)
    assert loaded.optimizer.inner_optimizer.get_config() == model.optimizer.inner_optimizer.get_config()
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 4
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)
    for name in ("bc1", "bd2"):
        a, b = model.get_layer(name), loaded.get_layer(name)
        assert (b.H, b.W_LR_scale, b.stochastic, b.binary) == (a.H, a.W_LR_scale, a.stochastic, a.binary)
        assert isinstance(b.kernel.constraint, BinaryKernelClip)
        assert b.kernel.constraint.get_config() == a.kernel.constraint.get_config()
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    # binary weights (test time) agree too
    for (W1, Wb1), (W2, Wb2) in zip(binary_weights(model).values(), binary_weights(loaded).values()):
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(Wb1, Wb2)


def test_save_load_then_training_continues_identically(tmp_path):
    # Deterministic model: after the round trip one more epoch must give the same weights,
    # which needs the optimizer state (Adam moments, iterations) restored exactly.
    model = keras.Sequential(
        [
            keras.Input((6,)),
            BinaryDense(8, stochastic=False, H=0.05, seed=1),
            keras.layers.BatchNormalization(),
            BinaryDense(3, stochastic=False, H="glorot", seed=2),
        ]
    )
    model.compile(optimizer=BinaryConnectOptimizer(keras.optimizers.Adam(0.01)), loss="squared_hinge")
    x, y = toy_data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)


def test_save_load_restores_stochastic_seed_state(tmp_path):
    model = keras.Sequential([keras.Input((4,)), BinaryDense(8, stochastic=True, seed=7, name="bd")])
    layer = model.get_layer("bd")
    for _ in range(3):  # advance the seed generator past its initial state
        layer.binary_kernel(training=True)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras").get_layer("bd")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.seed_generator.state),
        keras.ops.convert_to_numpy(layer.seed_generator.state),
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.binary_kernel(training=True)),
        keras.ops.convert_to_numpy(layer.binary_kernel(training=True)),
    )


def test_first_sample_is_not_the_init():
    # 4096 weights: the fraction of +H in one sample must be mean(p) within 5 binomial
    # standard deviations, 5 * sqrt(0.25 / 4096) = 0.039.
    layer = dense(64, 64, stochastic=True, H=1.0, seed=3)
    W = keras.ops.convert_to_numpy(layer.kernel)
    p = np.clip((W + 1) / 2, 0, 1)
    first = keras.ops.convert_to_numpy(layer.binary_kernel(training=True))
    assert abs((first > 0).mean() - p.mean()) < 0.039


def test_config_round_trip():
    layer = BinaryConv2D(4, 3, stochastic=False, H="glorot", W_LR_scale=3.0, seed=5, padding="same")
    config = layer.get_config()
    assert "kernel_constraint" not in config and "kernel_initializer" not in config
    assert (config["H"], config["W_LR_scale"], config["stochastic"], config["seed"]) == ("glorot", 3.0, False, 5)
    clone = BinaryConv2D.from_config(config)
    assert clone.get_config() == config


# --------------------------------------------------------------------------- bad arguments


def test_H_and_scale_accept_numeric_text_and_any_case_glorot():
    # The one rule of bclab.validation.check_glorot_or_positive, shared with RunConfig and the CLI.
    layer = BinaryDense(3, H="0.5", W_LR_scale=" Glorot ")
    assert (layer.H_spec, layer.W_LR_scale_spec) == (0.5, "glorot")
    assert BinaryDense(3, W_LR_scale=None).W_LR_scale_spec is None


def test_numpy_scalars_are_taken_as_the_python_numbers_they_hold():
    # np.int64 units/seed and np.float32/np.float64 H and W_LR_scale give the same layer as
    # the Python values (the same initial kernel, the same sample), with plain numbers in the config.
    a = dense(np.int64(3), 4, H=np.float64(0.5), W_LR_scale=np.float32(2.0), seed=np.int64(7))
    b = dense(3, 4, H=0.5, W_LR_scale=2.0, seed=7)
    numpy = keras.ops.convert_to_numpy
    np.testing.assert_array_equal(numpy(a.kernel), numpy(b.kernel))
    np.testing.assert_array_equal(numpy(a.binary_kernel(True)), numpy(b.binary_kernel(True)))
    config = a.get_config()
    assert (config["units"], config["H"], config["W_LR_scale"], config["seed"]) == (3, 0.5, 2.0, 7)
    assert [type(config[k]) for k in ("units", "H", "W_LR_scale", "seed")] == [int, float, float, int]
    conv = BinaryConv2D(np.int64(2), np.int32(3))
    assert (conv.filters, conv.kernel_size) == (2, (3, 3)) and type(conv.kernel_size[0]) is int
    assert BinaryConv2D(2, [np.int64(3), 1]).kernel_size == (3, 1)


@pytest.mark.parametrize("H, W_LR_scale, bad", [(1e39, 1.0, "H=1e+39"), (1.0, 1e-40, "W_LR_scale=1e-40")])
def test_H_and_scale_must_be_float32_numbers_when_the_kernel_is_made(H, W_LR_scale, bad):
    # 1e39 is Inf in float32 (max 3.4028e38); 1e-40 is below the smallest normal (1.1755e-38).
    layer = BinaryDense(3, H=H, W_LR_scale=W_LR_scale)
    with pytest.raises(ValueError) as info:
        layer.build((None, 4))
    message = str(info.value)
    assert "that float32 holds (1.18e-38 to 3.403e+38)" in message and message.endswith(f"Received: {bad}")


def test_binary_weights_of_a_model_without_binary_layers_is_empty():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2), BinaryDense(2, binary=False)])
    assert binary_weights(model) == {} and binary_layers(model) == []


BAD_ARGUMENTS = [
    ({"H": 0}, "H", "H=0"),
    ({"H": -1}, "H", "H=-1"),
    ({"H": "foo"}, "H", "H='foo'"),
    ({"H": float("nan")}, "H", "H=nan"),
    ({"H": float("inf")}, "H", "H=inf"),
    ({"H": True}, "H", "H=True"),
    ({"W_LR_scale": 0}, "W_LR_scale", "W_LR_scale=0"),
    ({"W_LR_scale": -2.0}, "W_LR_scale", "W_LR_scale=-2.0"),
    ({"W_LR_scale": "foo"}, "W_LR_scale", "W_LR_scale='foo'"),
    ({"binary": "yes"}, "binary", "binary='yes'"),
    ({"stochastic": 1}, "stochastic", "stochastic=1"),
    ({"kernel_constraint": keras.constraints.NonNeg()}, "kernel_constraint", "NonNeg"),
    ({"kernel_initializer": "zeros"}, "kernel_initializer", "'zeros'"),
]


@pytest.mark.parametrize("kwargs, arg, received", BAD_ARGUMENTS, ids=[str(b[0]) for b in BAD_ARGUMENTS])
@pytest.mark.parametrize("cls", ["dense", "conv"])
def test_bad_arguments_raise_value_error_naming_them(cls, kwargs, arg, received):
    with pytest.raises(ValueError) as info:
        if cls == "dense":
            BinaryDense(3, **kwargs)
        else:
            BinaryConv2D(3, 3, **kwargs)
    message = str(info.value)
    assert f"`{arg}`" in message
    assert received in message
