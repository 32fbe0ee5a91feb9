"""The BinaryConnect binarization rule, transcribed from the reference.

Source: MatthieuCourbariaux/BinaryConnect, `binary_connect.py` (`hard_sigmoid`
and `binarization`), paper arXiv:1511.00363. Written with `keras.ops` only, so it
runs inside a compiled `tf.function` and on any device.

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
  (`u < NaN` is false). Propagating it would cost a pass over the kernel on the hot path
  (measured on a CPU: binarization +40-60 %, a 784x1024 forward matmul with it +30 %). A NaN
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
    x = W if isinstance(H, float) and H == 1 else W / H
    H = ops.cast(H, x.dtype)
    if stochastic:
        # Theano's srng.binomial(n=1, p) is 1 with probability p: u < p, u ~ U[0, 1).
        p = hard_sigmoid(x)
        plus = ops.less(keras.random.uniform(ops.shape(W), dtype=p.dtype, seed=srng), p)
        return ops.where(plus, H, -H)
    # round(hard_sigmoid(x)) with half up is 1 iff fl(x + 1) >= 1, and in floating point
    # that holds iff x >= -eps/4 (1 - eps/4 is the tie below 1, which rounds to even, 1).
    # One comparison instead of five passes over the kernel; the same bits as the
    # reference's float arithmetic, tiny negative weights included. Written as "minus iff
    # x < -eps/4" so that NaN (no comparison holds) gives +H, as the reference's switch does.
    eps = float(np.finfo(keras.backend.standardize_dtype(x.dtype)).eps)
    return ops.where(ops.less(x, -eps / 4), -H, H)


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
