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
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


def hard_sigmoid(x):
    """`clip((x + 1) / 2, 0, 1)`, the reference's probability of `+H`."""
    return ops.clip((x + 1.0) / 2.0, 0.0, 1.0)


def binarization(W, H, binary=True, deterministic=False, stochastic=False, srng=None):
    """Binarize `W` to `+H`/`-H` exactly as the reference does.

    Args:
        W: real-valued weights (tensor or variable).
        H: the binary magnitude, a positive float.
        binary: `False` returns `W` unchanged.
        deterministic: test-time flag; with `stochastic=True` it disables
            binarization (reference quirk).
        stochastic: draw `b ~ Bernoulli(hard_sigmoid(W / H))` per weight;
            otherwise round `hard_sigmoid(W / H)` half up.
        srng: a `keras.random.SeedGenerator` (a fresh sample on every call,
            also inside a compiled function) or an int seed (a stateless draw:
            the same int gives the same sample). `None` uses Keras's global
            generator.

    Returns:
        `Wb`: a tensor of `+H`/`-H` values (or `W` when not binarizing).
        No gradient flows through it; see `straight_through`.
    """
    if not binary or (deterministic and stochastic):
        return W
    W = ops.convert_to_tensor(W)
    x = W if isinstance(H, (int, float)) and H == 1 else W / H
    if stochastic:
        # Theano's srng.binomial(n=1, p) is 1 with probability p: u < p, u ~ U[0, 1).
        p = hard_sigmoid(x)
        plus = ops.less(keras.random.uniform(ops.shape(W), dtype=p.dtype, seed=srng), p)
    else:
        # round(hard_sigmoid(x)) with half up is 1 iff fl(x + 1) >= 1, and in floating point
        # that holds iff x >= -eps/4 (1 - eps/4 is the tie below 1, which rounds to even, 1).
        # One comparison instead of five passes over the kernel; the same bits as the
        # reference's float arithmetic, tiny negative weights included.
        eps = float(np.finfo(keras.backend.standardize_dtype(x.dtype)).eps)
        plus = ops.greater_equal(x, -eps / 4)
    H = ops.cast(H, x.dtype)
    return ops.where(plus, H, -H)


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
