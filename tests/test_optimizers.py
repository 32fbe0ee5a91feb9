"""Tests for bclab.core.optimizers.BinaryConnectOptimizer (and BinaryKernelClip under a plain optimizer).

Reference rule (docs/binaryconnect-reference.md section 2): for a binary kernel
`W <- clip(W + W_LR_scale * (W_after - W), -H, H)` where `W_after` is the inner
optimizer's update; every other variable gets the plain, unscaled, unclipped step.
"""

from __future__ import annotations

import json
import logging

import keras
import numpy as np
import pytest
from backend_support import BACKEND, stateless_step, value_and_gradients

from bclab.core.constraints import BinaryKernelClip
from bclab.core.layers import BinaryDense, binary_layers
from bclab.core.optimizers import BinaryConnectOptimizer
from bclab.core.patching import replaced_attribute

f32 = np.float32


def kernel_var(values, H, scale):
    """A variable that BinaryConnectOptimizer treats as a binary kernel."""
    v = keras.Variable(np.asarray(values, f32), name="kernel")
    v.constraint = BinaryKernelClip(H, scale, "test_layer")
    return v


def step(opt, pairs):
    opt.apply_gradients([(keras.ops.convert_to_tensor(np.asarray(g, f32)), v) for g, v in pairs])


# An optimizer step as `model.fit` takes it on TensorFlow (`apply_gradients`) and, on JAX, also as
# `stateless_apply` on the variables' values, compiled (Keras refuses that on TensorFlow).
STEPS = pytest.mark.parametrize(
    "step",
    [step, stateless_step] if BACKEND == "jax" else [step],
    ids=lambda f: "apply_gradients" if f is step else "stateless_apply",
)


def value(v):
    return keras.ops.convert_to_numpy(v)


# --------------------------------------------------------------------------- hand-computed steps


@STEPS
def test_sgd_step_is_scaled(step):
    # SGD lr 0.1, W_LR_scale 2, H 1: inner step = -0.1 * g, scaled step = -0.2 * g
    # W = [0.5, -0.2, 0, 0.3, -1e-9], g = [1, -0.5, 2, 0, 1]
    # -> [0.5 - 0.2, -0.2 + 0.1, 0 - 0.4, 0.3 - 0, -1e-9 - 0.2] = [0.3, -0.1, -0.4, 0.3, -0.2]
    W = kernel_var([0.5, -0.2, 0.0, 0.3, -1e-9], H=1.0, scale=2.0)
    step(BinaryConnectOptimizer(keras.optimizers.SGD(0.1)), [([1.0, -0.5, 2.0, 0.0, 1.0], W)])
    # float32 rounding of 0.1 * g and of (W_after - W): a few ulps of 0.5 (6e-8 each)
    np.testing.assert_allclose(value(W), [0.3, -0.1, -0.4, 0.3, -0.2], rtol=0, atol=2e-7)
    assert value(W)[3] == f32(0.3)  # zero gradient, zero step: bit-exact


@STEPS
def test_scale_one_is_the_plain_step(step):
    # W_LR_scale = 1: W - 0.1 * g exactly as the inner SGD computes it
    W = kernel_var([0.5, -0.25, 0.0], H=1.0, scale=1.0)
    step(BinaryConnectOptimizer(keras.optimizers.SGD(0.1)), [([1.0, -0.5, 2.0], W)])
    np.testing.assert_array_equal(value(W), np.array([0.5, -0.25, 0.0], f32) - f32(0.1) * np.array([1, -0.5, 2], f32))


@STEPS
def test_scaled_step_crossing_H_is_clipped(step):
    # SGD lr 0.1, scale 2, H 1: 0.9 - 0.2 * (-1) = 1.1 -> 1; -0.95 - 0.2 * 1 = -1.15 -> -1;
    # 0.5 - 0.2 * 1 = 0.3 stays. Clipped values are exactly +-H.
    W = kernel_var([0.9, -0.95, 0.5], H=1.0, scale=2.0)
    step(BinaryConnectOptimizer(keras.optimizers.SGD(0.1)), [([-1.0, 1.0, 1.0], W)])
    assert value(W)[0] == f32(1.0) and value(W)[1] == f32(-1.0)
    assert value(W)[2] == pytest.approx(0.3, abs=1e-7)


@STEPS
def test_scale_below_one_scales_then_clips(step):
    # SGD lr 0.1, scale 0.25, H 1, W 0.9, g -2: the unscaled W_after = 0.9 + 0.2 = 1.1 > H.
    #   scale then clip (reference): clip(0.9 + 0.25 * 0.2) = 0.95
    #   clip then scale (wrong):     0.9 + 0.25 * (clip(1.1) - 0.9) = 0.925
    W = kernel_var([0.9, -0.9], H=1.0, scale=0.25)
    step(BinaryConnectOptimizer(keras.optimizers.SGD(0.1)), [([-2.0, 2.0], W)])
    # float32: 0.9 and 0.1 are inexact; error a few ulps of 1 (1.2e-7 each)
    np.testing.assert_allclose(value(W), [0.95, -0.95], rtol=0, atol=3e-7)


def adam_first_step_numpy(W, g, lr, beta_1=0.9, beta_2=0.999, eps=1e-7):
    """Keras Adam.update_step at iteration 1, transcribed in float32."""
    W, g = np.asarray(W, f32), np.asarray(g, f32)
    m = (g - 0) * f32(1 - beta_1)
    v = (np.square(g) - 0) * f32(1 - beta_2)
    alpha = f32(lr) * np.sqrt(f32(1) - f32(beta_2)) / (f32(1) - f32(beta_1))
    return W - (m * alpha) / (np.sqrt(v) + f32(eps))


@STEPS
def test_adam_first_step_is_scaled_then_clipped(step):
    # Keras Adam, step 1: m = 0.1 g, v = 0.001 g^2, alpha = lr * sqrt(0.001) / 0.1, so the
    # step is -lr * g / (|g| + 1e-7 / sqrt(0.001)) ~ -lr * sign(g) unless |g| is tiny.
    # With lr 0.01, scale 3, H 0.05: big-|g| entries move by ~0.03, and 0.03 past +-0.05 clips.
    lr, scale, H = 0.01, 3.0, 0.05
    W0 = np.array([0.0, 0.04, -0.04, 0.01, -0.03, 0.02, 0.049, -0.06], f32)
    g = np.array([1.0, -2.0, 1e-8, 0.0, 5.0, -1e-3, 1e3, -1.0], f32)
    W = kernel_var(W0, H=H, scale=scale)
    step(BinaryConnectOptimizer(keras.optimizers.Adam(lr)), [(g, W)])
    after = adam_first_step_numpy(W0, g, lr)
    expected = np.clip(W0 + f32(scale) * (after - W0), -f32(H), f32(H))
    # float32 pow/sqrt in TF and NumPy may differ by an ulp; steps are ~1e-2, so 1e-8 is tight
    np.testing.assert_allclose(value(W), expected, rtol=0, atol=1e-8)
    # hand values: g = 1 -> 0 - 3 * 0.01 = -0.03; g = -2 -> 0.04 + 0.03 -> clipped to 0.05;
    # g = 0 -> unchanged; g = 1e3 -> 0.049 - 0.03 = 0.019; W = -0.06 (|W| > H), g = -1 ->
    # -0.06 + 0.03 = -0.03 (no clip before the step)
    np.testing.assert_allclose(value(W)[[0, 1, 3, 6, 7]], [-0.03, 0.05, 0.01, 0.019, -0.03], rtol=0, atol=1e-6)
    # g = 1e-8: the step is lr * 1e-8 / (1e-8 + 3.16e-6) * 3 ~ 9.5e-5, far from 3 * lr * sign(g)
    assert 0 < W0[2] - value(W)[2] < 1e-4


@STEPS
def test_scale_multiplies_the_step_not_the_gradient(step):
    # Adam's first step is ~lr * sign(g): scaling the gradient by 3 would change nothing,
    # scaling the step moves W three times as far.
    W = kernel_var([0.0], H=1.0, scale=3.0)
    step(BinaryConnectOptimizer(keras.optimizers.Adam(0.01)), [([0.5], W)])
    assert value(W)[0] == pytest.approx(-0.03, abs=1e-6)


# --------------------------------------------------------------------------- other variables


def test_bias_and_batchnorm_get_the_plain_step():
    # SGD lr 1, large gradients: every parameter moves far. Kernels: clip(W - 5 * g, -H, H);
    # bias, BN gamma/beta: W - g exactly, unscaled and unclipped (they may leave [-H, H]).
    H, scale = 0.1, 5.0
    model = keras.Sequential(
        [
            keras.Input((3,)),
            BinaryDense(4, stochastic=False, H=H, W_LR_scale=scale, seed=0),
            keras.layers.BatchNormalization(),
            BinaryDense(2, stochastic=False, H=H, W_LR_scale=scale, seed=1),
        ]
    )
    x = np.array([[1, -2, 0.5], [0, 3, -1], [2, 2, 2], [-1, 0, 1]], f32)
    y = np.array([[1, -1], [-1, 1], [1, 1], [-1, -1]], f32)
    for layer in binary_layers(model):
        layer.bias.assign(np.full(layer.bias.shape, 0.09, f32))  # near H: any step may leave [-H, H]
    before = [value(v) for v in model.trainable_variables]
    _, grads = value_and_gradients(
        lambda: (100.0 * keras.ops.mean(keras.losses.squared_hinge(y, model(x, training=True))), None),
        model.trainable_variables,
    )
    BinaryConnectOptimizer(keras.optimizers.SGD(1.0)).apply_gradients(zip(grads, model.trainable_variables))
    kernels = {id(layer.kernel) for layer in binary_layers(model)}
    left_range = False
    for v, old, g in zip(model.trainable_variables, before, grads, strict=True):
        assert np.any(g != 0), v.path
        if id(v) in kernels:
            np.testing.assert_allclose(
                value(v), np.clip(old + f32(scale) * ((old - g) - old), -H, H), rtol=0, atol=1e-6, err_msg=v.path
            )  # float32 (old - g) - old
        else:
            np.testing.assert_array_equal(value(v), old - g, err_msg=v.path)
            left_range |= bool(np.any(np.abs(value(v)) > H))
    assert left_range  # the test would notice a clip applied to non-kernels


@STEPS
def test_foreign_constraint_still_applies(step):
    # A variable with another constraint keeps it: NonNeg clips -0.1 - 0.1 * 1 = -0.2 to 0.
    v = keras.Variable(np.array([-0.1, 0.5], f32))
    v.constraint = keras.constraints.NonNeg()
    step(BinaryConnectOptimizer(keras.optimizers.SGD(0.1)), [([1.0, 1.0], v)])
    np.testing.assert_allclose(value(v), [0.0, 0.4], rtol=0, atol=1e-7)


# --------------------------------------------------------------------------- other optimizers


@STEPS
def test_adamax_two_steps(step):
    # Adamax (reference section 6): m += (g - m)(1 - b1); u = max(b2 u, |g|);
    # W_after = W - lr m / ((1 - b1^t)(u + eps)); then W = clip(W + s (W_after - W), -H, H).
    lr, b1, b2, eps, s, H = 0.02, 0.9, 0.999, 1e-7, 2.5, 0.1
    W0 = np.array([0.0, 0.09, -0.05, 0.2], f32)
    gs = [np.array([1.0, -1.0, 0.0, 3.0], f32), np.array([-2.0, -1.0, 0.5, 0.0], f32)]
    W = kernel_var(W0, H=H, scale=s)
    opt = BinaryConnectOptimizer(keras.optimizers.Adamax(lr, beta_1=b1, beta_2=b2, epsilon=eps))
    w, m, u = W0.astype(np.float64), np.zeros(4), np.zeros(4)
    for t, g in enumerate(gs, start=1):
        step(opt, [(g, W)])
        m += (g - m) * (1 - b1)
        u = np.maximum(b2 * u, np.abs(g))
        after = w - lr * m / ((1 - b1**t) * (u + eps))
        w = np.clip(w + s * (after - w), -H, H)
        np.testing.assert_allclose(value(W), w, rtol=0, atol=1e-7)  # float32 vs float64 oracle
    assert int(opt.iterations) == 2


@STEPS
def test_sgd_momentum_two_steps(step):
    # SGD momentum 0.9: mom = 0.9 mom - lr g; W_after = W + mom; W = clip(W + s (W_after - W)).
    # Step 1: mom = -0.1 g1 = [-0.1, 0.1, 0]; W = [0, 0.5, -0.3] + 3 * mom = [-0.3, 0.8, -0.3]
    # Step 2: g2 = [1, 1, 1]: mom = [-0.09 - 0.1, 0.09 - 0.1, -0.1] = [-0.19, -0.01, -0.1]
    #         W = [-0.3 - 0.57, 0.8 - 0.03, -0.3 - 0.3] = [-0.87, 0.77, -0.6]
    W = kernel_var([0.0, 0.5, -0.3], H=1.0, scale=3.0)
    opt = BinaryConnectOptimizer(keras.optimizers.SGD(0.1, momentum=0.9))
    step(opt, [([1.0, -1.0, 0.0], W)])
    np.testing.assert_allclose(value(W), [-0.3, 0.8, -0.3], rtol=0, atol=2e-7)
    step(opt, [([1.0, 1.0, 1.0], W)])
    np.testing.assert_allclose(value(W), [-0.87, 0.77, -0.6], rtol=0, atol=3e-7)  # float32, two steps


# --------------------------------------------------------------------------- inside model.fit


def small_model(stochastic, seeds=(3, 4)):
    return keras.Sequential(
        [
            keras.Input((5,)),
            # no bias before BatchNorm: its true gradient is 0, and Adam turns the float noise
            # (+-1e-9, different in graph and eager) into +-lr steps
            BinaryDense(
                6, stochastic=stochastic, H=0.05, W_LR_scale="glorot", use_bias=False, seed=seeds[0], name="b1"
            ),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            BinaryDense(2, stochastic=stochastic, H="glorot", W_LR_scale="glorot", seed=seeds[1], name="b2"),
        ]
    )


def data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype(f32)
    y = np.where(rng.random((n, 2)) < 0.5, -1.0, 1.0).astype(f32)
    return x, y


@pytest.mark.parametrize("stochastic", [False, True])
def test_fit_compiled_and_eager_agree(stochastic):
    x, y = data()
    results = []
    for run_eagerly in (False, True):
        model = small_model(stochastic)
        # Kernels from NumPy: with the layer's own init the first Bernoulli draw reuses the
        # initializer's uniforms (u == p up to rounding), so it is decided by float rounding,
        # which differs between graph and eager; see test_layers.py::test_first_sample_is_not_the_init
        rng = np.random.default_rng(7)
        for layer in binary_layers(model):
            layer.kernel.assign(rng.uniform(-layer.H, layer.H, layer.kernel.shape).astype(f32))
        model.compile(
            optimizer=BinaryConnectOptimizer(keras.optimizers.Adam(0.01)), loss="squared_hinge", run_eagerly=run_eagerly
        )
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        assert int(model.optimizer.iterations) == 8
        results.append([value(v) for v in model.weights])
        for layer in binary_layers(model):
            assert np.abs(value(layer.kernel)).max() <= f32(layer.H)
    # graph and eager float32 kernels differ by a few ulps (seen: 2e-8 after 8 steps)
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_fit_applies_the_scaled_step():
    # One full-batch step of compiled fit equals the hand rule on gradients taken eagerly.
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5,)), BinaryDense(2, stochastic=False, H=1.0, W_LR_scale=4.0, seed=0)])
    layer = model.layers[0]
    x, y = data(16)
    old_W, old_b = value(layer.kernel), value(layer.bias)
    _, (gW, gb) = value_and_gradients(
        lambda: (keras.ops.mean(keras.losses.squared_hinge(y, model(x, training=True))), None),
        [layer.kernel, layer.bias],
    )
    model.compile(optimizer=BinaryConnectOptimizer(keras.optimizers.SGD(0.05)), loss="squared_hinge")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    # kernel: 4x the SGD step; bias: the plain step. Graph vs eager float32 sums: ~1e-7.
    np.testing.assert_allclose(value(layer.kernel), np.clip(old_W - 4 * 0.05 * gW, -1, 1), rtol=0, atol=1e-6)
    np.testing.assert_allclose(value(layer.bias), old_b - 0.05 * gb, rtol=0, atol=1e-6)


def test_learning_rate_is_delegated_and_scheduler_callback_works():
    inner = keras.optimizers.Adam(0.01)
    opt = BinaryConnectOptimizer(inner)
    assert float(opt.learning_rate) == pytest.approx(0.01)
    model = small_model(False)
    model.compile(optimizer=opt, loss="squared_hinge")
    x, y = data()
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.005 / (epoch + 1))],
    )
    # epoch 0 -> 0.005, epoch 1 -> 0.0025; the inner optimizer is the one that steps
    assert float(inner.learning_rate) == pytest.approx(0.0025)
    assert int(inner.iterations) == int(opt.iterations) == 8


# --------------------------------------------------------------------------- unwrapped optimizer


def test_plain_optimizer_clips_and_warns_scale_not_applied(caplog):
    caplog.set_level(logging.WARNING, logger="bclab")
    model = small_model(True)
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="squared_hinge")
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for layer in binary_layers(model):
        W = value(layer.kernel)
        assert np.abs(W).max() <= f32(layer.H)
    assert np.any(np.abs(value(model.get_layer("b1").kernel)) == f32(0.05))  # the clip acted
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("W_LR_scale" in m and "not applied" in m and "b1" in m for m in messages), messages


@STEPS
def test_plain_optimizer_step_is_unscaled(step):
    # Plain SGD lr 0.01, W_LR_scale 10 (ignored), H 1: 0 - 0.01 * 1 = -0.01, not -0.1;
    # 0.995 + 0.01 * 1 -> clipped to 1.
    W = kernel_var([0.0, 0.995], H=1.0, scale=10.0)
    step(keras.optimizers.SGD(0.01), [([1.0, -1.0], W)])
    np.testing.assert_allclose(value(W), [-0.01, 1.0], rtol=0, atol=1e-8)
    assert value(W)[1] == f32(1.0)


def test_wrapped_optimizer_does_not_warn(caplog):
    caplog.set_level(logging.WARNING, logger="bclab")
    W = kernel_var([0.0, 0.5], H=1.0, scale=10.0)
    step(BinaryConnectOptimizer(keras.optimizers.SGD(0.01)), [([1.0, -1.0], W)])
    assert not [r for r in caplog.records if "W_LR_scale" in r.getMessage()]
    # and the constraint was put back after the step
    assert isinstance(W.constraint, BinaryKernelClip)


# --------------------------------------------------------------------------- construction, config


@pytest.mark.parametrize("bad", ["adam", None, 0.01, keras.layers.Dense(1)], ids=["str", "None", "float", "layer"])
def test_rejects_non_optimizer(bad):
    with pytest.raises(ValueError) as info:
        BinaryConnectOptimizer(bad)
    message = str(info.value)
    assert "`inner_optimizer`" in message
    assert f"inner_optimizer={bad!r}" in message
    assert "keras.optimizers.Optimizer" in message


def test_rejects_extra_optimizer_arguments():
    with pytest.raises(ValueError) as info:
        BinaryConnectOptimizer(keras.optimizers.Adam(), learning_rate=0.1, clipnorm=1.0)
    message = str(info.value)  # the first, alphabetically; the fix: set it on the inner optimizer
    assert message.startswith("Received an invalid value for `clipnorm`, expected no such argument here")
    assert "set it on the inner optimizer" in message and message.endswith("Received: clipnorm=1.0")


def test_get_config_from_config_round_trip():
    opt = BinaryConnectOptimizer(keras.optimizers.Adamax(0.003, beta_1=0.8, epsilon=1e-6), name="bc_opt")
    config = opt.get_config()
    json.dumps(config)  # plain data, storable in a .keras file
    clone = BinaryConnectOptimizer.from_config(config)
    assert isinstance(clone, BinaryConnectOptimizer) and clone.name == "bc_opt"
    assert isinstance(clone.inner_optimizer, keras.optimizers.Adamax)
    assert clone.inner_optimizer.get_config() == opt.inner_optimizer.get_config()
    assert clone.get_config() == config
    # through Keras's generic (de)serialization too
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(again, BinaryConnectOptimizer)
    assert again.inner_optimizer.get_config() == opt.inner_optimizer.get_config()


# --------------------------------------------------------------------------- the two code paths


class LiteralSGD(keras.optimizers.SGD):
    """An SGD that BinaryConnectOptimizer does not recognise, so it takes the literal rule."""


@STEPS
@pytest.mark.parametrize(("fast", "literal"), [(keras.optimizers.SGD, LiteralSGD)])
def test_scaled_learning_rate_path_equals_the_literal_rule(fast, literal, step):
    # Fast path: the kernel's lr is multiplied by W_LR_scale. Literal path: the step is
    # multiplied after the update. Same value up to float32 rounding, also with momentum.
    rng = np.random.default_rng(0)
    W0 = rng.uniform(-1, 1, 50).astype(f32)
    grads = [rng.normal(size=50).astype(f32) for _ in range(4)]
    results = []
    for cls in (fast, literal):
        opt = BinaryConnectOptimizer(cls(0.05, momentum=0.9))
        assert opt.step_proportional_to_lr is (cls is fast)
        W = kernel_var(W0, H=1.0, scale=3.0)
        for g in grads:
            step(opt, [(g, W)])
        results.append(value(W))
    np.testing.assert_allclose(results[0], results[1], rtol=0, atol=1e-6)  # float32, four steps
    assert np.abs(results[0]).max() <= 1.0


def test_weight_decay_takes_the_literal_rule():
    assert not BinaryConnectOptimizer(keras.optimizers.AdamW(1e-3, weight_decay=0.01)).step_proportional_to_lr
    assert not BinaryConnectOptimizer(keras.optimizers.Adam(1e-3, use_ema=True)).step_proportional_to_lr
    assert BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)).step_proportional_to_lr
    assert not BinaryConnectOptimizer(keras.optimizers.Ftrl(1e-3)).step_proportional_to_lr


def test_learning_rate_scaling_patches_update_step_only_inside_apply():
    inner = keras.optimizers.SGD(0.1)
    opt = BinaryConnectOptimizer(inner)
    W = kernel_var([0.5, -0.5], H=1.0, scale=2.0)
    bias = keras.Variable(np.zeros(2, f32), name="bias")
    rates = []
    update_step = inner.update_step

    def probe(gradient, variable, learning_rate):
        rates.append(float(learning_rate))
        update_step(gradient, variable, learning_rate)

    # An outer probe, as bclab.train.instrument installs: the scaling wraps it, so the probe sees
    # each real call once, with the kernel's rate scaled (0.1 * 2) and the bias's plain (0.1).
    with replaced_attribute(inner, "update_step", probe):
        step(opt, [([1.0, 1.0], W), ([1.0, 1.0], bias)])
        assert vars(inner)["update_step"] is probe  # the scaling put the probe back
    assert rates == pytest.approx([0.2, 0.1])
    assert "update_step" not in vars(inner)  # the class's own again

    def fail(_value):
        raise ArithmeticError("injected")

    bias.constraint = fail  # constraints run inside the inner apply, after every update_step
    with pytest.raises(ArithmeticError, match="injected"):
        step(opt, [([1.0, 1.0], W), ([1.0, 1.0], bias)])
    assert "update_step" not in vars(inner) and inner.update_step.__func__ is keras.optimizers.SGD.update_step
    assert isinstance(W.constraint, BinaryKernelClip)  # set aside during the apply, restored
