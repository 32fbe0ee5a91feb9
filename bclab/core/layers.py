"""BinaryDense and BinaryConv2D: the reference's binary Lasagne layers in Keras 3.

Each layer keeps the real-valued kernel `W` as its trainable variable and, on every
forward pass, binarizes it (`bclab.binarization`) and uses the binary kernel with a
straight-through gradient (`dC/dW = dC/dWb`). Keyword names map one-to-one to the
reference's `DenseLayer`/`Conv2DLayer` (`binary`, `stochastic`, `H`,
`W_LR_scale`), and so do the defaults (`binary=True, stochastic=True, H=1.0,
W_LR_scale="glorot"`).

Test time (`training=False`) passes `deterministic=True`, as the reference does:
a deterministic layer then uses `H * sign(W)` (with `sign(0) = +1`) and a
stochastic layer uses its real-valued `W`.

Binary kernels start `Uniform(-H, H)` and carry `BinaryKernelClip`, so any Keras
optimizer clips them to `[-H, H]` after each update; `BinaryConnectOptimizer`
also applies `W_LR_scale` to the step.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from bclab.core.binarize import binarization, glorot_H, straight_through
from bclab.core.constraints import BinaryKernelClip
from bclab.validation import (
    GLOROT,
    check_flag,
    check_glorot_or_positive,
    check_optional_seed,
    check_positive_float32,
    check_positive_int,
    invalid_value,
)

_OWNED_WHEN_BINARY = ("kernel_initializer", "kernel_constraint")
_SAMPLER_SEED_OFFSET = 1_000_003  # a prime, far from the per-layer seeds of bclab.train.models
_SAMPLER_STATE_KEY = "sampler_state"


class BinaryKernelMixin:
    """What BinaryDense and BinaryConv2D share: arguments, H, binarization, config."""

    def _init_binary(self, binary, stochastic, H, W_LR_scale, seed, kwargs) -> None:
        self.binary = check_flag("binary", binary)
        self.stochastic = check_flag("stochastic", stochastic)
        self.H_spec = check_glorot_or_positive("H", H)
        self.W_LR_scale_spec = check_glorot_or_positive("W_LR_scale", W_LR_scale, allow_none=True)
        self.seed = check_optional_seed("seed", seed)
        if self.binary:
            for name in _OWNED_WHEN_BINARY:
                if kwargs.get(name) is not None:
                    raise invalid_value(
                        name,
                        kwargs[name],
                        "None for a binary layer, which owns its kernel initializer (Uniform(-H, H)) and "
                        "constraint (clip to [-H, H]); set H instead, or binary=False for a plain layer",
                    )
                kwargs.pop(name, None)
        # Resolved in build(), when the kernel shape (hence fan-in/out) is known.
        self.H: float | None = None
        self.W_LR_scale: float = 1.0
        if self.binary and self.stochastic:
            # The sampler's state is a non-trainable variable of the layer: on JAX `model.fit`
            # threads it through the compiled step (`stateless_call`), one draw per step.
            # A seed of its own: RandomUniform(seed=s) and SeedGenerator(s) draw the same
            # uniforms, which would make the first sample compare each weight with itself.
            self.seed_generator = keras.random.SeedGenerator(
                None if self.seed is None else _SAMPLER_SEED_OFFSET + self.seed
            )
        else:
            self.seed_generator = None
        self._binary_kernel_in_use = None

    def _resolve_binary(self, kernel_shape: tuple[int, ...]) -> None:
        """Set H, W_LR_scale, the initializer and the clip for this kernel shape."""
        receptive = math.prod(kernel_shape[:-2])
        fan_in, fan_out = receptive * kernel_shape[-2], receptive * kernel_shape[-1]
        glorot = glorot_H(fan_in, fan_out)
        self.H = glorot if self.H_spec == GLOROT else self.H_spec
        if self.W_LR_scale_spec == GLOROT:
            self.W_LR_scale = 1.0 / glorot
        elif self.W_LR_scale_spec is None:
            self.W_LR_scale = 1.0
        else:
            self.W_LR_scale = self.W_LR_scale_spec
        self._check_representable()
        if self.binary:
            self.kernel_initializer = keras.initializers.RandomUniform(-self.H, self.H, seed=self.seed)
            self.kernel_constraint = BinaryKernelClip(self.H, self.W_LR_scale, self.name)

    def _check_representable(self) -> None:
        """H and W_LR_scale must be normal float32 numbers: 1e39 is Inf in float32 (and Keras's
        uniform initializer passes its bounds through float32 whatever the kernel's dtype)."""
        check_positive_float32("H", self.H)
        check_positive_float32("W_LR_scale", self.W_LR_scale)

    def binary_kernel(self, training: bool = False):
        """The kernel the forward pass uses: `binarization(W, H, ...)`.

        `training=True` draws a fresh sample in stochastic mode; `training=False`
        is the reference's test-time kernel. No gradient flows through the result.
        """
        if not self.binary:
            return ops.convert_to_tensor(self.kernel)
        return binarization(
            self.kernel,
            self.H,
            binary=True,
            deterministic=not training,
            stochastic=self.stochastic,
            srng=self.seed_generator,
        )

    @property
    def binary_kernel_in_use(self):
        """The binary kernel `Wb` the last forward pass used (training or not); None before the first.

        Inside a traced function (a compiled step: `tf.function`, `jax.jit`) this is that trace's
        symbolic tensor: read it in the same function, after the forward pass, to get the exact
        sample the step used.
        A plain layer (`binary=False`) has none.
        """
        return self._binary_kernel_in_use

    def _kernel_for_call(self, training):
        """The binary kernel with a straight-through gradient to the real kernel."""
        if not self.binary:
            return self.kernel
        Wb = self.binary_kernel(bool(training))
        self._binary_kernel_in_use = Wb
        return straight_through(self.kernel, Wb)

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.built and self.seed_generator is not None:
            # Keras saves a layer's own variables only; the sampler's position is state too.
            store[_SAMPLER_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        if self.seed_generator is not None and _SAMPLER_STATE_KEY in store.keys():
            self.seed_generator.state.assign(store[_SAMPLER_STATE_KEY])
            store = {key: store[key] for key in store.keys() if key != _SAMPLER_STATE_KEY}
        super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        if self.binary:
            for name in _OWNED_WHEN_BINARY:
                config.pop(name, None)
        return {**config, **self._binary_config()}

    def _binary_config(self) -> dict[str, Any]:
        return {
            "binary": self.binary,
            "stochastic": self.stochastic,
            "H": self.H_spec,
            "W_LR_scale": self.W_LR_scale_spec,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="bclab")
class BinaryDense(BinaryKernelMixin, keras.layers.Dense):
    """A Dense layer with BinaryConnect weights (reference `DenseLayer`).

    Args:
        units: output size.
        binary: binarize the kernel (False gives a plain Dense layer).
        stochastic: Bernoulli(hard_sigmoid(W/H)) sampling while training;
            otherwise deterministic rounding (sign).
        H: binary magnitude, a positive float or `"glorot"`
            (`sqrt(1.5 / (fan_in + fan_out))`).
        W_LR_scale: step multiplier for this kernel, a positive float, `"glorot"`
            (`1 / sqrt(1.5 / (fan_in + fan_out))`) or None (1).
        seed: seed for the initializer and the stochastic sampling: None or an integer in
            [0, 2**62) (NumPy integers too).
        **kwargs: the usual `keras.layers.Dense` arguments.
    """

    def __init__(self, units, binary=True, stochastic=True, H=1.0, W_LR_scale="glorot", seed=None, **kwargs):
        units = check_positive_int("units", units)  # Keras takes True as 1 and refuses NumPy integers
        self._init_binary(binary, stochastic, H, W_LR_scale, seed, kwargs)
        super().__init__(units, **kwargs)

    def build(self, input_shape):
        self._resolve_binary((input_shape[-1], self.units))
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self._kernel_for_call(training))
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x


@keras.saving.register_keras_serializable(package="bclab")
class BinaryConv2D(BinaryKernelMixin, keras.layers.Conv2D):
    """A Conv2D layer with BinaryConnect weights (reference `Conv2DLayer`).

    Same binary arguments as `BinaryDense`; fan-in is `k*k*C_in` and fan-out
    `k*k*C_out`, as in the reference. The usual `keras.layers.Conv2D` arguments
    pass through.
    """

    def __init__(
        self, filters, kernel_size, binary=True, stochastic=True, H=1.0, W_LR_scale="glorot", seed=None, **kwargs
    ):
        filters = check_positive_int("filters", filters)  # Keras's own check misreads 2.5 or "a"
        kernel_size = _kernel_size(kernel_size)
        self._init_binary(binary, stochastic, H, W_LR_scale, seed, kwargs)
        super().__init__(filters, kernel_size, **kwargs)

    def build(self, input_shape):
        channel_axis = -1 if self.data_format == "channels_last" else 1
        kernel_shape = tuple(self.kernel_size) + (input_shape[channel_axis] // self.groups, self.filters)
        self._resolve_binary(kernel_shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        outputs = self.convolution_op(inputs, self._kernel_for_call(training))
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                bias_shape = (1, self.filters) + (1,) * self.rank
            outputs = ops.add(outputs, ops.reshape(self.bias, bias_shape))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


def _kernel_size(value: Any) -> tuple[int, int]:
    """A positive integer or a pair of them (NumPy integers too), as a pair of ints.

    Keras takes `True` and `(3, 3.0)` and refuses `np.int64(3)`; bclab's rule is `check_positive_int`'s.
    """
    expected = "a positive integer or a pair of positive integers"
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise invalid_value("kernel_size", value, expected)
    try:
        return tuple(check_positive_int("kernel_size", side) for side in pair)
    except ValueError:
        raise invalid_value("kernel_size", value, expected) from None


def binary_layers(model: keras.Model) -> list[BinaryKernelMixin]:
    """The model's binary layers (`binary=True`), in the order Keras lists them; nested models too.

    Raises:
        ValueError: `model` is not a `keras.Model`.
    """
    if not isinstance(model, keras.Model):
        raise invalid_value("model", model, "a keras.Model")
    return _binary_layers_in(model)


def _binary_layers_in(container) -> list[BinaryKernelMixin]:
    found = []
    for layer in container.layers:
        if isinstance(layer, BinaryKernelMixin) and layer.binary:
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(_binary_layers_in(layer))
    return found


def binary_weights(model: keras.Model, training: bool = False) -> dict[str, tuple[Any, Any]]:
    """`{layer name: (W, Wb)}` as NumPy arrays: the real kernel and the binary one in use.

    `training=False` gives the test-time kernel (deterministic: `H*sign(W)`;
    stochastic: `W`); `training=True` draws a training-time sample. A model without binary
    layers gives `{}`.

    Raises:
        ValueError: `model` is not a `keras.Model`, one of its binary layers is not built yet,
            or `training` is not a bool.
    """
    training = check_flag("training", training)
    layers = binary_layers(model)
    for layer in layers:
        if not layer.built:
            raise invalid_value(
                "model",
                model,
                f"a built model (layer {layer.name!r} has no kernel yet: call the model on a batch first)",
            )
    return {
        layer.name: (ops.convert_to_numpy(layer.kernel), ops.convert_to_numpy(layer.binary_kernel(training)))
        for layer in layers
    }
