"""The BinaryConnect binarization rule, transcribed from the reference.

Source: MatthieuCourbariaux/BinaryConnect, `binary_connect.py` (`hard_sigmoid`
and `binarization`), paper arXiv:1511.00363. Written with `keras.ops` only, so it
runs on any Keras backend and device, inside a compiled function too (`tf.function`, `jax.jit`).

Two departures in form, not in value: rounding compares `W` with a threshold equivalent to the
reference's divide-add-scale-clip-round (bit for bit, `_rounded`), and sampling draws
`u ~ U[-H, H)` and takes `+H` where `u < W`, which is `Bernoulli(hard_sigmoid(W / H))` exactly in
distribution up to the float32 uniform's resolution, `|P(+H) - hard_sigmoid(W / H)| <= 2**-22`
(`_sampled`). Both save passes over the kernel (bench/README.md, "Profile of the stochastic path").

Quirks kept on purpose (they are the reference's semantics):

- `binary=True, deterministic=False, stochastic=False` takes the rounding branch,
  so it is deterministic.
- `deterministic=True` together with `stochastic=True` switches binarization
  OFF (`Wb = W`). The layers pass `deterministic=True` at test time, so a
  stochastic network is evaluated with its real-valued weights.
- Rounding is half-up (`p == 0.5` gives `+H`), so `W == 0` maps to `+H`.
  `keras.ops.round` rounds half to even and would map 0 to `-H`.
- A NaN weight is not propagated, as in the reference: the rounding branch gives `+H` (Theano's
  `clip` and `round` keep the NaN and `switch(NaN, H, -H)` takes `H`), the stochastic branch `-H`
  (`u < NaN` is false, in the reference's form and in bclab's). Propagating it would cost a pass
  over the kernel on the hot path (measured on a CPU: binarization +40-60 %, a 784x1024 forward
  matmul with it +30 %). A NaN
  in `W` comes from a non-finite update, which the Trainer's non-finite policy stops at
  (`bclab.train.trainer`), and the clip keeps it in `W` (`clip(NaN) = NaN`).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from bclab.validation import check_flag, check_optional_seed, check_positive_float, invalid_value


def hard_sigmoid(x):
    """`clip((x + 1) / 2, 0, 1)`, the reference's probability of `+H`."""
    return ops.clip((x + 1.0) / 2.0, 0.0, 1.0)


def binarization(W, H, binary=True, deterministic=False, stochastic=False, srng=None):
    """Binarize `W` to `+H`/`-H` exactly as the reference does.

    Args:
        W: real-valued weights (tensor, variable or array; integers are cast to floatx).
        H: the binary magnitude: a positive finite number (Python or NumPy scalar, 0-d array
            or scalar tensor). Inside a compiled function a tensor `H` has no value to check:
            only its shape is checked there.
        binary: `False` returns `W` unchanged.
        deterministic: test-time flag; with `stochastic=True` it disables
            binarization (reference quirk).
        stochastic: draw `b ~ Bernoulli(hard_sigmoid(W / H))` per weight;
            otherwise round `hard_sigmoid(W / H)` half up.
        srng: a `keras.random.SeedGenerator` (a fresh sample on every call,
            also inside a compiled function) or an int seed in [0, 2**62) (a stateless draw:
            the same int gives the same sample). `None` uses Keras's global generator.
            On JAX a function compiled with `jax.jit` must take the generator's `state` in and
            hand it back, as `model.fit` does for a layer's generator (`stateless_call`);
            otherwise every call repeats the sample of the trace, and Keras refuses `None` there.

    Returns:
        `Wb`: a tensor of `+H`/`-H` values (or `W` when not binarizing); a NaN weight gives
        `+H` when rounding and `-H` when sampling (see the module docstring).
        No gradient flows through it; see `straight_through`.

    Raises:
        ValueError: an argument is not of the kinds above (`bclab.validation`'s formula).
    """
    binary = check_flag("binary", binary)
    deterministic = check_flag("deterministic", deterministic)
    stochastic = check_flag("stochastic", stochastic)
    H = _checked_H(H)
    srng = _checked_srng(srng)
    if not binary or (deterministic and stochastic):
        return W
    W = ops.convert_to_tensor(W)
    if not keras.backend.is_float_dtype(W.dtype):
        W = ops.cast(W, keras.backend.floatx())
    if stochastic:
        return _sampled(W, H, srng)
    return _rounded(W, H)


def _sampled(W, H, srng):
    """`+H` with probability `hard_sigmoid(W / H)`, else `-H`: the reference's draw, without `p`.

    The reference draws `u ~ U[0, 1)` and takes `+H` where `u < hard_sigmoid(W / H)` (Theano's
    `srng.binomial(n=1, p)`). Here `u ~ U[-H, H)` and `+H` where `u < W`: for `|W| <= H`,
    `P(u < W) = (W / H + 1) / 2`; for `W >= H` it is 1 and for `W <= -H` 0; that is
    `hard_sigmoid(W / H)` exactly, in distribution. Nothing of the size of the kernel is
    computed but the draw, one comparison and one select (the reference's form costs four
    more passes over it: divide, add, scale, clip).

    Resolution: TensorFlow's and JAX's float32 uniforms take 23 random bits, `r = k * 2**-23`, and
    `u = fl(fl(2H * r) - H)`; `P(+H)` is `hard_sigmoid(W / H)` up to one step of that grid and
    one rounding, `|error| <= 2**-22`, and exact at `W = 0` (1/2), at `W >= H` (1) and
    `W <= -H` (0). Draw for draw it is the reference's `r < hard_sigmoid(W / H)` on the same
    `r` except where `r` lies within that error of `p` (tests/test_binarize.py bounds both).
    """
    H = ops.cast(H, W.dtype)
    u = keras.random.uniform(ops.shape(W), minval=-H, maxval=H, dtype=W.dtype, seed=srng)
    # `u < NaN` is false: a NaN weight gives -H (the module docstring).
    return ops.where(ops.less(u, W), H, -H)


def _rounded(W, H):
    """`H` where `round(hard_sigmoid(W / H))` (half up) is 1, else `-H`: the reference's rounding branch.

    round(hard_sigmoid(x)) with half up is 1 iff fl(x + 1) >= 1, and in floating point that
    holds iff x >= -eps/4 (1 - eps/4 is the tie below 1, which rounds to even, 1). One
    comparison instead of five passes over the kernel; the same bits as the reference's
    float arithmetic, tiny negative weights included. Written as "minus iff x < -eps/4" so
    that NaN (no comparison holds) gives +H, as the reference's switch does.
    """
    dtype = keras.backend.standardize_dtype(W.dtype)
    below = _minus_below(H, dtype) if isinstance(H, float) else None
    if below is not None:
        # fl(W / H) < -eps/4 iff W < `below` (see `_minus_below`): no division pass.
        return ops.where(ops.less(W, ops.cast(below, W.dtype)), ops.cast(-H, W.dtype), ops.cast(H, W.dtype))
    x = W / H
    H = ops.cast(H, x.dtype)
    eps = float(np.finfo(dtype).eps)
    return ops.where(ops.less(x, -eps / 4), -H, H)


def _minus_below(H: float, dtype: str) -> float | None:
    """The float `T` with `fl(W / H) < -eps/4` iff `W < T`, for every `W` of `dtype`; None for a dtype
    NumPy lacks (bfloat16: the caller divides).

    `W -> fl(W / H)` is non-decreasing (IEEE division is correctly rounded), so the weights that
    round to `-H` are those below the smallest `W` with `fl(W / H) >= -eps/4`. As `-eps/4` is a power
    of two, that is `-eps/4 * H` exactly unless the product underflows; the loops step from it one
    float at a time until the rule holds (no step for a normal product). Runs at trace time.
    """
    if dtype not in ("float16", "float32", "float64"):
        return None
    np_dtype = np.dtype(dtype)
    H_ = np_dtype.type(H)
    target = np_dtype.type(-np.finfo(np_dtype).eps / 4)
    with np.errstate(all="ignore"):
        T = np_dtype.type(target * H_)
        if T / H_ >= target:  # step down while the float below still rounds to -eps/4 or above
            while np.nextafter(T, np_dtype.type(-np.inf)) / H_ >= target:
                T = np.nextafter(T, np_dtype.type(-np.inf))
        else:  # step up to the first that does
            while T / H_ < target:
                T = np.nextafter(T, np_dtype.type(np.inf))
    return float(T)


def _checked_H(H):
    """H as a float, or a scalar tensor whose value cannot be read (inside a compiled function)."""
    if ops.is_tensor(H) or isinstance(H, keras.Variable):
        if len(H.shape) != 0:  # a rank unknown at trace time raises ValueError from TensorFlow
            raise invalid_value("H", H, "a positive finite number (a scalar)")
        try:
            value = float(ops.convert_to_numpy(H))
        except Exception:  # symbolic: there is no value before the function runs
            return H
        check_positive_float("H", value)
        return H
    return check_positive_float("H", H)


def _checked_srng(srng):
    """None, a SeedGenerator, or an int seed (NumPy integers too, as an `int`)."""
    if isinstance(srng, keras.random.SeedGenerator):
        return srng
    return check_optional_seed("srng", srng, "None, an integer in [0, 2**62) or a keras.random.SeedGenerator")


def straight_through(W, Wb):
    """Return `Wb` in the forward pass with the gradient passed unchanged to `W`.

    Rule: forward `Wb` (bit for bit); backward `dC/dW = dC/dWb` (identity, no masking
    where `|W| > H`), as the reference's `theano.grad(cost, wrt=Wb)` handed to `W`.
    A custom gradient costs no pass over the kernel; `Wb + (W - stop_gradient(W))`
    would cost two, and `W + stop_gradient(Wb - W)` is not exactly `Wb`.
    """
    Wb = ops.stop_gradient(Wb)

    @ops.custom_gradient
    def identity_to_W(w):
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return upstream

        return Wb, grad

    return identity_to_W(W)


def glorot_H(fan_in: int, fan_out: int) -> float:
    """`sqrt(1.5 / (fan_in + fan_out))`: the reference's `H="Glorot"`."""
    return math.sqrt(1.5 / (fan_in + fan_out))
