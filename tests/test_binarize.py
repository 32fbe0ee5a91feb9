"""Tests for bclab.core.binarize against a NumPy oracle transcribed from the reference.

Reference: docs/binaryconnect-reference.md section 1 (`hard_sigmoid` and
`binarization` of MatthieuCourbariaux/BinaryConnect `binary_connect.py`).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from backend_support import Compiled, value_and_gradients

from bclab.core.binarize import binarization, glorot_H, hard_sigmoid, straight_through

# --------------------------------------------------------------------------- oracle


def oracle_hard_sigmoid(x):
    """`clip((x + 1) / 2, 0, 1)` in float32, as Theano with floatX=float32."""
    x = np.asarray(x, np.float32)
    return np.clip((x + np.float32(1)) / np.float32(2), np.float32(0), np.float32(1))


def oracle_binarization(W, H, binary=True, deterministic=False, stochastic=False, u=None):
    """The reference `binarization`, line by line, in float32.

    `u` are the uniforms behind the Bernoulli draw: Theano's
    `srng.binomial(n=1, p=p)` is 1 where `u < p`.
    """
    W = np.asarray(W, np.float32)
    H = np.float32(H)
    if not binary or (deterministic and stochastic):
        return W
    p = oracle_hard_sigmoid(W / H)
    if stochastic:
        b = (np.asarray(u) < p).astype(np.float32)
    else:
        # T.round: half away from zero, so p == 0.5 -> 1. floor(p + 0.5) done in float64,
        # where p + 0.5 is exact for a float32 p (in float32 it would round 0.49999997 up).
        b = np.floor(p.astype(np.float64) + 0.5)
    # T.switch(b, H, -H): any non-zero b selects H, NaN included (NaN != 0).
    return np.where(b != 0, H, -H).astype(np.float32)


def oracle_sample(W, H, r):
    """bclab's draw transcribed in float32: `u = r * (H - -H) + -H` (TensorFlow's uniform on [-H, H) from
    the raw uniforms `r` in [0, 1)), then `+H` where `u < W`.

    That this is the reference's Bernoulli(hard_sigmoid(W / H)): test_sample_is_the_reference_draw.
    """
    W, H, r = np.asarray(W, np.float32), np.float32(H), np.asarray(r, np.float32)
    u = (r * (H - -H)) + -H
    return np.where(u < W, H, -H).astype(np.float32)


def raw_uniforms(shape, seed):
    """The uniforms in [0, 1) behind an int-seeded draw (the same Philox bits as bclab's U[-H, H))."""
    return keras.ops.convert_to_numpy(keras.random.uniform(shape, dtype="float32", seed=seed))


# A "Glorot" H of MNIST's first layer (784 -> 2048) and of a 3x3 conv 3 -> 8 channels.
H_VALUES = [1.0, 0.3, glorot_H(784, 2048), glorot_H(9 * 3, 9 * 8)]


def awkward_weights(H, n_random=200, seed=0):
    """Random weights plus every edge case: exact zeros, +-1e-9, +-H, |W| > H, p near 0.5."""
    rng = np.random.default_rng(seed)
    H32 = np.float32(H)
    below_half = -np.float32(2.0**-24) * H32  # p = 0.5 - 2**-25 in float32 for H = 1
    special = np.array(
        [
            0.0,
            -0.0,
            0.0,
            -1e-9,
            1e-9,
            -1e-30,
            H32,
            -H32,
            3 * H32,
            -3 * H32,
            1e3,
            -1e3,
            H32 / 2,
            -H32 / 2,
            below_half,
            -below_half,
            np.nextafter(H32, np.float32(0)),
            -np.nextafter(H32, np.float32(0)),
        ],
        np.float32,
    )
    random = rng.uniform(-2 * H, 2 * H, n_random).astype(np.float32)
    return np.concatenate([special, random]).reshape(-1, 2)


# --------------------------------------------------------------------------- hard_sigmoid


def test_hard_sigmoid_hand_values():
    # (x + 1) / 2 clipped to [0, 1]: -3 -> -1 -> 0; -1 -> 0; -0.5 -> 0.25; 0 -> 0.5;
    # 0.5 -> 0.75; 1 -> 1; 3 -> 2 -> 1.
    x = np.array([-3, -1, -0.5, 0, 0.5, 1, 3], np.float32)
    expected = np.array([0, 0, 0.25, 0.5, 0.75, 1, 1], np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(hard_sigmoid(x)), expected)


@pytest.mark.parametrize("H", H_VALUES)
def test_hard_sigmoid_matches_oracle(H):
    x = awkward_weights(H) / np.float32(H)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(hard_sigmoid(x)), oracle_hard_sigmoid(x))


# --------------------------------------------------------------------------- deterministic


def test_deterministic_hand_values():
    # H = 0.5: W/H = [-4, -1, -0.5, 0, -2e-9, 0.5, 1, 4]
    # p = hard_sigmoid = [0, 0, 0.25, 0.5, 0.5 (1 - 2e-9 rounds to 1 in float32), 0.75, 1, 1]
    # round half up -> b = [0, 0, 0, 1, 1, 1, 1, 1] -> Wb = -H, -H, -H, +H, +H, +H, +H, +H
    W = np.array([-2, -0.5, -0.25, 0, -1e-9, 0.25, 0.5, 2], np.float32)
    H = 0.5
    expected = np.array([-0.5, -0.5, -0.5, 0.5, 0.5, 0.5, 0.5, 0.5], np.float32)
    Wb = keras.ops.convert_to_numpy(binarization(W, H, deterministic=True))
    np.testing.assert_array_equal(Wb, expected)
    assert Wb.dtype == np.float32


def test_zero_maps_to_plus_H():
    # p = hard_sigmoid(0) = 0.5 rounds UP (keras.ops.round would give 0 -> -H).
    W = np.zeros((3, 4), np.float32)
    Wb = keras.ops.convert_to_numpy(binarization(W, 0.3, deterministic=True))
    np.testing.assert_array_equal(Wb, np.full((3, 4), np.float32(0.3)))


@pytest.mark.parametrize("H", H_VALUES)
@pytest.mark.parametrize("deterministic", [True, False])
def test_rounding_branch_matches_oracle(H, deterministic):
    # stochastic=False takes the rounding branch whatever `deterministic` says (quirk).
    W = awkward_weights(H)
    got = keras.ops.convert_to_numpy(binarization(W, H, deterministic=deterministic, stochastic=False))
    want = oracle_binarization(W, H, deterministic=deterministic, stochastic=False)
    np.testing.assert_array_equal(got, want)
    assert set(np.unique(got)) <= {np.float32(H), np.float32(-H)}
    # and it is H * sign(W) with sign(0) = +1 (checked on the non-boundary entries only:
    # W = -2**-24 * H is a float32 rounding case of p, handled by the oracle above)
    mask = np.abs(W) >= 1e-6 * H
    mask |= W == 0
    np.testing.assert_array_equal(got[mask], np.where(W >= 0, np.float32(H), np.float32(-H))[mask])


@pytest.mark.parametrize("H", H_VALUES)
def test_deterministic_and_stochastic_turns_binarization_off(H):
    # Reference quirk: deterministic=True and stochastic=True -> Wb = W.
    W = awkward_weights(H)
    got = keras.ops.convert_to_numpy(binarization(W, H, deterministic=True, stochastic=True, srng=1))
    np.testing.assert_array_equal(got, W)


@pytest.mark.parametrize("deterministic", [True, False])
@pytest.mark.parametrize("stochastic", [True, False])
def test_binary_false_returns_W(deterministic, stochastic):
    W = awkward_weights(1.0)
    got = binarization(W, 1.0, binary=False, deterministic=deterministic, stochastic=stochastic, srng=3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), W)


def test_nonfinite_weights_follow_the_reference():
    # Rounding: clip keeps NaN, round(NaN) = NaN, switch(NaN) -> +H; +-Inf -> p = 1 / 0 -> +-H.
    # Sampling: u < NaN is false -> -H; u < 1 always, u < 0 never. The oracle is line by line.
    W = np.array([[np.nan, np.inf, -np.inf, 0.25], [-np.nan, 0.0, -1.0, np.nan]], np.float32)
    H = 0.5
    rounded = keras.ops.convert_to_numpy(binarization(W, H))
    np.testing.assert_array_equal(rounded, oracle_binarization(W, H))
    np.testing.assert_array_equal(rounded[:, 0], [H, H])  # the reference's switch(NaN, H, -H)
    # bclab's draw compares u ~ U[-H, H) with W: u < NaN is false as well, u < +Inf true, u < -Inf false.
    sampled = keras.ops.convert_to_numpy(binarization(W, H, stochastic=True, srng=7))
    r = raw_uniforms(W.shape, 7)
    np.testing.assert_array_equal(sampled, oracle_sample(W, H, r))
    np.testing.assert_array_equal(sampled[np.isnan(W)], [-H, -H, -H])
    np.testing.assert_array_equal(sampled[~np.isnan(W)], oracle_binarization(W, H, stochastic=True, u=r)[~np.isnan(W)])


def test_a_tensor_H_is_checked_when_it_has_a_value_and_used_as_given_when_symbolic():
    W = np.array([-0.2, 0.0, 0.3], np.float32)
    expected = np.array([-0.5, 0.5, 0.5], np.float32)
    tensor = keras.ops.convert_to_tensor
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(binarization(W, tensor(0.5))), expected)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(binarization(W, keras.Variable(0.5))), expected)
    with pytest.raises(ValueError, match=r"`H`, expected a positive finite number\. Received: H=0\.0"):
        binarization(W, tensor(0.0))
    # Inside a compiled function the value is unknown until it runs: only the shape is checked.
    compiled = Compiled(lambda H: binarization(W, H))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(compiled(tensor(0.5))), expected)
    with pytest.raises(ValueError, match=r"a positive finite number \(a scalar\)"):
        compiled(tensor([0.5, 0.5]))


def test_integer_weights_are_binarized_as_floats():
    # [3, 0, -2] / H: signs +, 0 -> +H, - ; an integer W is cast to floatx (float32).
    got = keras.ops.convert_to_numpy(binarization(np.array([3, 0, -2]), np.float32(0.25)))
    np.testing.assert_array_equal(got, np.array([0.25, 0.25, -0.25], np.float32))
    assert got.dtype == np.float32


# --------------------------------------------------------------------------- stochastic


@pytest.mark.parametrize("H", H_VALUES)
def test_stochastic_int_seed_matches_oracle_and_repeats(H):
    # With an int seed the draw is stateless: the raw uniforms r are keras.random.uniform(seed=s),
    # bclab's u = r * 2H - H, and +H where u < W (oracle_sample); the same int repeats the sample.
    W = awkward_weights(H)
    first = keras.ops.convert_to_numpy(binarization(W, H, stochastic=True, srng=1234))
    second = keras.ops.convert_to_numpy(binarization(W, H, stochastic=True, srng=1234))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, oracle_sample(W, H, raw_uniforms(W.shape, 1234)))


@pytest.mark.parametrize("H", H_VALUES)
def test_sample_is_the_reference_draw(H):
    # The reference takes +H where r < p = hard_sigmoid(W / H) (Theano's binomial); bclab where
    # r * 2H - H < W on the same r. The two agree except where r lies within 2**-22 of p (one step
    # of the float32 uniform's 2**-23 grid and one rounding: the resolution the docstring states).
    # 200,000 weights over [-1.5H, 1.5H] (|W| > H included) plus the awkward ones (zeros, +-H, tiny).
    rng = np.random.default_rng(5)
    W = np.concatenate([awkward_weights(H).ravel(), rng.uniform(-1.5 * H, 1.5 * H, 200_000)]).astype(np.float32)
    sample = keras.ops.convert_to_numpy(binarization(W, H, stochastic=True, srng=99))
    r = raw_uniforms(W.shape, 99)
    reference = oracle_binarization(W, H, stochastic=True, u=r)
    p = oracle_hard_sigmoid(W / np.float32(H)).astype(np.float64)
    differ = sample != reference
    assert np.all(np.abs(r[differ].astype(np.float64) - p[differ]) <= 2.0**-22), (W[differ], r[differ], p[differ])
    # A disagreement needs r within 2**-22 of p: about 2 * 2**-22 * 200,000 = 0.1 expected; allow a few.
    assert differ.sum() <= 3
    # Certain outcomes stay certain: p = 1 (W >= H) always +H, p = 0 (W <= -H) always -H, whatever r.
    H32 = np.float32(H)
    assert np.all(sample[W >= H32] == H32) and np.all(sample[W <= -H32] == -H32)


def test_stochastic_p0_and_p1_are_certain():
    # W <= -H -> p = 0 -> always -H; W >= H -> p = 1 -> always +H (u in [0, 1), u < 1 always).
    H = 0.3
    W = np.array([-H, -0.31, -3.0, -1e3, H, 0.31, 3.0, 1e3] * 500, np.float32).reshape(500, 8)
    Wb = keras.ops.convert_to_numpy(binarization(W, H, stochastic=True, srng=keras.random.SeedGenerator(5)))
    expected = np.where(W > 0, np.float32(H), np.float32(-H))
    np.testing.assert_array_equal(Wb, expected)


def test_stochastic_frequencies_match_hard_sigmoid():
    # Per weight, over N draws of a compiled function, the fraction of +H must match
    # p = hard_sigmoid(W / H). Tolerance: 5 binomial standard deviations sqrt(p(1-p)/N)
    # (chance of a false failure < 1e-5 over these 12 weights), and exact for p in {0, 1}.
    H = 0.5
    W = np.array([-1.0, -0.5, -0.4, -0.25, -0.1, -1e-9, 0.0, 0.1, 0.25, 0.4, 0.5, 1.0], np.float32)
    p = oracle_hard_sigmoid(W / np.float32(H)).astype(np.float64)
    seed_gen = keras.random.SeedGenerator(11)
    W_var = keras.Variable(W)
    draw = Compiled(lambda: binarization(W_var, H, stochastic=True, srng=seed_gen), state=[seed_gen.state])
    N = 2000
    samples = np.stack([keras.ops.convert_to_numpy(draw()) for _ in range(N)])
    assert set(np.unique(samples)) <= {np.float32(H), np.float32(-H)}
    freq = (samples == np.float32(H)).mean(axis=0)
    tol = 5 * np.sqrt(p * (1 - p) / N)
    assert np.all(np.abs(freq - p) <= tol), (freq, p, tol)
    assert freq[0] == 0 and freq[1] == 0 and freq[-2] == 1 and freq[-1] == 1


def test_compiled_function_with_seed_generator_draws_fresh_samples():
    # A frozen mask (noise drawn at trace time) would make both calls equal. With 256
    # weights at p = 0.5 an honest coincidence has probability 2**-256.
    seed_gen = keras.random.SeedGenerator(42)
    W = keras.Variable(np.zeros((16, 16), np.float32))

    draw = Compiled(lambda: binarization(W, 1.0, stochastic=True, srng=seed_gen), state=[seed_gen.state])
    a = keras.ops.convert_to_numpy(draw())
    b = keras.ops.convert_to_numpy(draw())
    assert not np.array_equal(a, b)
    assert draw.traces == 1
    # both draws are genuinely binary, roughly half +1 (p = 0.5)
    for s in (a, b):
        assert set(np.unique(s)) == {np.float32(-1), np.float32(1)}


def test_a_numpy_integer_seed_draws_as_the_same_int():
    W = np.zeros((8, 8), np.float32)
    a = keras.ops.convert_to_numpy(binarization(W, 1.0, stochastic=True, srng=np.int64(21)))
    b = keras.ops.convert_to_numpy(binarization(W, 1.0, stochastic=True, srng=21))
    np.testing.assert_array_equal(a, b)


def test_different_int_seeds_give_different_samples():
    W = np.zeros((16, 16), np.float32)
    a = keras.ops.convert_to_numpy(binarization(W, 1.0, stochastic=True, srng=1))
    b = keras.ops.convert_to_numpy(binarization(W, 1.0, stochastic=True, srng=2))
    assert not np.array_equal(a, b)


# --------------------------------------------------------------------------- straight_through


@pytest.mark.parametrize("stochastic", [False, True])
def test_straight_through_forward_and_identity_gradient(stochastic):
    H = 0.3
    W0 = awkward_weights(H, n_random=40)  # includes |W| > H, zeros, tiny negatives
    W = keras.Variable(W0)
    upstream = np.random.default_rng(1).normal(size=W0.shape).astype(np.float32)
    upstream[0, 0] = 0.0

    def loss():
        Wb = binarization(W, H, stochastic=stochastic, srng=keras.random.SeedGenerator(3))
        Ws = straight_through(W, Wb)
        return keras.ops.sum(Ws * upstream), (Wb, Ws)

    (Wb, Ws), (grad,) = value_and_gradients(loss, [W])
    # forward: bit-equal to Wb
    np.testing.assert_array_equal(Ws, Wb)
    assert set(np.unique(Ws)) <= {np.float32(H), np.float32(-H)}
    # backward: dC/dW = dC/dWb = upstream exactly, also where |W| > H (no masking)
    assert np.any(np.abs(W0) > H)
    np.testing.assert_array_equal(grad, upstream)


def test_binarization_alone_passes_no_gradient():
    # TensorFlow finds no path (None); jax.grad gives zeros (stop_gradient). An identity would give ones.
    W = keras.Variable(np.array([0.2, -0.7, 0.0], np.float32))
    _, (grad,) = value_and_gradients(lambda: (keras.ops.sum(binarization(W, 1.0, deterministic=True)), None), [W])
    assert grad is None or np.array_equal(grad, np.zeros(3, np.float32))


# --------------------------------------------------------------------------- glorot_H


def test_glorot_H_hand_values():
    # MNIST 784 -> 2048: sqrt(1.5 / 2832) = sqrt(1 / 1888) = 0.0230142...; its inverse
    # sqrt(1888) = 43.4511...
    assert glorot_H(784, 2048) == pytest.approx(math.sqrt(1.5 / 2832), rel=1e-15)
    assert 1 / glorot_H(784, 2048) == pytest.approx(43.4511, abs=1e-4)
    # 3x3 conv, 3 -> 8 channels: fan_in = 27, fan_out = 72: sqrt(1.5 / 99)
    assert glorot_H(27, 72) == pytest.approx(math.sqrt(1.5 / 99), rel=1e-15)


@pytest.mark.parametrize("H", [1.0, 0.3, 0.0230, 7.0, 1e-3, glorot_H(784, 2048), glorot_H(27, 72)])
def test_rounding_compares_W_with_a_threshold_that_is_the_division(H):
    # For a Python-float H bclab compares W with a threshold found once (no division pass); the
    # reference divides. 401 consecutive float32 weights around -eps/4 * H, and NaN: bit-equal to the oracle.
    center = np.float32(-np.finfo(np.float32).eps / 4 * H)
    below, above = [center], [center]
    for _ in range(200):
        below.append(np.nextafter(below[-1], np.float32(-1)))
        above.append(np.nextafter(above[-1], np.float32(1)))
    W = np.array(sorted(set(below + above)) + [np.nan, -0.0, 0.0], np.float32)
    got = keras.ops.convert_to_numpy(binarization(W, H))
    np.testing.assert_array_equal(got, oracle_binarization(W, H))
    assert np.any(got[:-3] < 0) and np.any(got[:-3] > 0)  # the switch lies inside the sweep


@pytest.mark.parametrize("H", [1.0, 0.3, 0.0230])
def test_rounding_at_the_float32_tie_below_zero(H):
    # bclab decides +H by W/H >= -eps/4; the reference computes fl(W/H + 1) >= 1. The tie
    # 1 - eps/4 rounds to even (1.0), so x = -eps/4 gives +H and the next float below gives -H.
    tie = np.float32(-np.finfo(np.float32).eps / 4)
    x = np.array([tie, np.nextafter(tie, np.float32(0)), np.nextafter(tie, np.float32(-1)), -1e-30, -0.0], np.float32)
    W = (x * np.float32(H)).astype(np.float32)
    got = keras.ops.convert_to_numpy(binarization(W, H))
    np.testing.assert_array_equal(got, oracle_binarization(W, H))
