"""Bad input to the Python API, one row per case: the exact error (type and the whole message, naming
the argument, the value and what is expected, `bclab.validation`'s formula) or the right answer.

Covered: `binarization`, the binary layers, `BinaryKernelClip`, `BinaryConnectOptimizer`,
`binary_weights`, the RunConfig fields `tests/test_config.py` does not try, a `Trainer` on data its
model cannot take, and `BackgroundRun` misuse. Saved models: `tests/test_registration.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import keras
import numpy as np
import pytest

from bclab.config import RunConfig
from bclab.core.binarize import binarization
from bclab.core.constraints import BinaryKernelClip
from bclab.core.layers import BinaryConv2D, BinaryDense, binary_layers, binary_weights
from bclab.core.optimizers import BinaryConnectOptimizer
from bclab.train.runner import BackgroundRun

W = np.array([[-0.5, 0.0], [0.25, 1.5]], np.float32)

POSITIVE = "a positive finite number"
FLAG = "True or False"
SRNG = "None, an integer in [0, 2**62) or a keras.random.SeedGenerator"
SEED = "None or an integer in [0, 2**62)"
GLOROT_OR_POSITIVE = 'a positive number or "glorot"'
FLOAT32 = "a positive finite number that float32 holds (1.18e-38 to 3.403e+38)"
KERNEL_SIZE = "a positive integer or a pair of positive integers"


class Row(NamedTuple):
    id: str
    call: Callable[[], Any]
    name: str  # the argument the message must name
    value: Any  # the value it must show (its repr)
    expected: str  # what it must say is expected, word for word


def invalid(name: str, value: Any, expected: str) -> str:
    """The one formula (`bclab.validation.invalid_value`), spelled out independently."""
    return f"Received an invalid value for `{name}`, expected {expected}. Received: {name}={value!r}"


def built(layer: keras.layers.Layer, in_dim: int = 4) -> keras.layers.Layer:
    layer.build((None, in_dim))
    return layer


LAYER = built(BinaryDense(2, name="lonely"))  # a layer where a model is expected


def unbuilt_model() -> keras.Model:
    return keras.Sequential([BinaryDense(2, name="late")])


def runner_wait(**kwargs) -> Any:
    return BackgroundRun(lambda: None).wait(**kwargs)


ROWS = [
    # ------------------------------------------------------------ binarization(W, H, ...)
    Row("binarize-H-zero", lambda: binarization(W, 0), "H", 0, POSITIVE),
    Row("binarize-H-negative", lambda: binarization(W, -0.5), "H", -0.5, POSITIVE),
    Row("binarize-H-nan", lambda: binarization(W, float("nan")), "H", float("nan"), POSITIVE),
    Row("binarize-H-inf", lambda: binarization(W, np.float32("inf")), "H", np.float32("inf"), POSITIVE),
    Row("binarize-H-glorot-text", lambda: binarization(W, "glorot"), "H", "glorot", POSITIVE),
    Row("binarize-H-bool", lambda: binarization(W, True), "H", True, POSITIVE),
    Row("binarize-H-array", lambda: binarization(W, np.array([1.0, 2.0])), "H", np.array([1.0, 2.0]), POSITIVE),
    Row("binarize-H-None", lambda: binarization(W, None), "H", None, POSITIVE),
    Row("binarize-binary-text", lambda: binarization(W, 1.0, binary="yes"), "binary", "yes", FLAG),
    Row("binarize-deterministic-int", lambda: binarization(W, 1.0, deterministic=1), "deterministic", 1, FLAG),
    Row("binarize-stochastic-None", lambda: binarization(W, 1.0, stochastic=None), "stochastic", None, FLAG),
    Row("binarize-srng-negative", lambda: binarization(W, 1.0, stochastic=True, srng=-1), "srng", -1, SRNG),
    Row("binarize-srng-huge", lambda: binarization(W, 1.0, stochastic=True, srng=2**62), "srng", 2**62, SRNG),
    Row("binarize-srng-text", lambda: binarization(W, 1.0, stochastic=True, srng="7"), "srng", "7", SRNG),
    Row("binarize-srng-float", lambda: binarization(W, 1.0, stochastic=True, srng=1.5), "srng", 1.5, SRNG),
    Row("binarize-srng-bool", lambda: binarization(W, 1.0, stochastic=True, srng=True), "srng", True, SRNG),
    # Checked even where the value is not used (binary=False): a wrong call is wrong either way.
    Row("binarize-unused-H", lambda: binarization(W, -1, binary=False), "H", -1, POSITIVE),
    # ------------------------------------------------------------ BinaryDense / BinaryConv2D
    Row("dense-seed-text", lambda: BinaryDense(3, seed="x"), "seed", "x", SEED),
    Row("dense-seed-negative", lambda: BinaryDense(3, seed=-1), "seed", -1, SEED),
    Row("dense-seed-float", lambda: BinaryDense(3, seed=1.0), "seed", 1.0, SEED),
    Row("dense-seed-bool", lambda: BinaryDense(3, seed=True), "seed", True, SEED),
    Row("conv-seed-huge", lambda: BinaryConv2D(2, 3, seed=2**62), "seed", 2**62, SEED),
    Row("dense-units-zero", lambda: BinaryDense(0), "units", 0, "a positive integer"),
    Row("dense-units-bool", lambda: BinaryDense(True), "units", True, "a positive integer"),
    Row("dense-units-text", lambda: BinaryDense("8"), "units", "8", "a positive integer"),
    Row("conv-filters-fraction", lambda: BinaryConv2D(2.5, 3), "filters", 2.5, "a positive integer"),
    Row("conv-filters-None", lambda: BinaryConv2D(None, 3), "filters", None, "a positive integer"),
    Row("conv-kernel_size-zero", lambda: BinaryConv2D(2, 0), "kernel_size", 0, KERNEL_SIZE),
    Row("conv-kernel_size-bool", lambda: BinaryConv2D(2, True), "kernel_size", True, KERNEL_SIZE),
    Row("conv-kernel_size-float-side", lambda: BinaryConv2D(2, (3, 3.0)), "kernel_size", (3, 3.0), KERNEL_SIZE),
    Row("conv-kernel_size-three", lambda: BinaryConv2D(2, (3, 3, 3)), "kernel_size", (3, 3, 3), KERNEL_SIZE),
    Row("dense-H-numpy-zero", lambda: BinaryDense(3, H=np.float64(0)), "H", np.float64(0), GLOROT_OR_POSITIVE),
    Row("conv-H-negative-text", lambda: BinaryConv2D(2, 3, H="-1"), "H", "-1", GLOROT_OR_POSITIVE),
    Row(
        "conv-W_LR_scale-negative",
        lambda: BinaryConv2D(2, 3, W_LR_scale=-1),
        "W_LR_scale",
        -1,
        'a positive number, "glorot" or None',
    ),
    Row("dense-H-overflows-float32", lambda: built(BinaryDense(3, H=1e39)), "H", 1e39, FLOAT32),
    Row("dense-binary-text", lambda: BinaryDense(3, binary="false"), "binary", "false", FLAG),
    Row("conv-stochastic-int", lambda: BinaryConv2D(2, 3, stochastic=0), "stochastic", 0, FLAG),
    Row(
        "conv-kernel_initializer-on-binary",
        lambda: BinaryConv2D(2, 3, kernel_initializer="he_normal"),
        "kernel_initializer",
        "he_normal",
        "None for a binary layer, which owns its kernel initializer (Uniform(-H, H)) and constraint "
        "(clip to [-H, H]); set H instead, or binary=False for a plain layer",
    ),
    # ------------------------------------------------------------ BinaryKernelClip, BinaryConnectOptimizer
    Row("clip-H-zero", lambda: BinaryKernelClip(0.0), "H", 0.0, POSITIVE),
    Row("clip-W_LR_scale-text", lambda: BinaryKernelClip(1.0, "fast"), "W_LR_scale", "fast", POSITIVE),
    Row("clip-layer_name-int", lambda: BinaryKernelClip(1.0, 1.0, 3), "layer_name", 3, "a string"),
    Row(
        "optimizer-not-an-optimizer",
        lambda: BinaryConnectOptimizer("adam"),
        "inner_optimizer",
        "adam",
        "a keras.optimizers.Optimizer instance",
    ),
    Row(
        "optimizer-learning_rate-kwarg",
        lambda: BinaryConnectOptimizer(keras.optimizers.SGD(), learning_rate=0.1),
        "learning_rate",
        0.1,
        "no such argument here (BinaryConnectOptimizer takes `inner_optimizer` and `name`): set it on the inner "
        "optimizer",
    ),
    Row(
        "optimizer-name-int",
        lambda: BinaryConnectOptimizer(keras.optimizers.SGD(), name=3),
        "name",
        3,
        "None or a string",
    ),
    # ------------------------------------------------------------ binary_weights / binary_layers
    Row("binary_weights-not-a-model", lambda: binary_weights("model.keras"), "model", "model.keras", "a keras.Model"),
    Row("binary_layers-a-layer", lambda: binary_layers(LAYER), "model", LAYER, "a keras.Model"),
    Row(
        "binary_weights-training-text",
        lambda: binary_weights(keras.Sequential([keras.Input((2,)), BinaryDense(2)]), training="yes"),
        "training",
        "yes",
        FLAG,
    ),
    # ------------------------------------------------------------ RunConfig fields test_config.py does not try
    Row(
        "config-architecture",
        lambda: RunConfig(architecture="resnet"),
        "architecture",
        "resnet",
        "one of ['mlp', 'cnn']",
    ),
    Row("config-size", lambda: RunConfig(size="huge"), "size", "huge", "one of ['paper', 'small', 'tiny']"),
    Row(
        "config-optimizer",
        lambda: RunConfig(optimizer="rmsprop"),
        "optimizer",
        "rmsprop",
        "one of ['adam', 'adamax', 'sgd']",
    ),
    Row("config-epochs", lambda: RunConfig(epochs=0), "epochs", 0, "a positive integer"),
    Row("config-fc_units", lambda: RunConfig(fc_units=-8), "fc_units", -8, "a positive integer"),
    Row("config-n_test", lambda: RunConfig(n_test=0), "n_test", 0, "a positive integer"),
    Row("config-num_classes-one", lambda: RunConfig(num_classes=1), "num_classes", 1, "an integer in [2, 10000]"),
    Row(
        "config-num_classes-text", lambda: RunConfig(num_classes="10"), "num_classes", "10", "an integer in [2, 10000]"
    ),
    Row(
        "config-on_nonfinite",
        lambda: RunConfig(on_nonfinite="ignore"),
        "on_nonfinite",
        "ignore",
        "one of ['stop', 'continue']",
    ),
    Row("config-H-overflows-float32", lambda: RunConfig(H=1e39), "H", 1e39, FLOAT32),
    # ------------------------------------------------------------ BackgroundRun misuse
    Row(
        "runner-make_trainer-not-callable",
        lambda: BackgroundRun("Trainer"),
        "make_trainer",
        "Trainer",
        "a function of no arguments that returns a Trainer",
    ),
    Row(
        "runner-on_epoch-not-callable",
        lambda: BackgroundRun(lambda: None, on_epoch="log"),
        "on_epoch",
        "log",
        "None or a function of one argument",
    ),
    Row(
        "runner-wait-negative",
        lambda: runner_wait(timeout=-1),
        "timeout",
        -1,
        "None or a non-negative number of seconds",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_argument_gives_one_value_error_naming_it(row: Row):
    with pytest.raises(ValueError) as info:
        row.call()
    assert str(info.value) == invalid(row.name, row.value, row.expected)


# ---------------------------------------------------------------- the right answer, not an error


def test_numpy_scalars_and_zero_d_arrays_are_numbers():
    # H as a NumPy scalar or a 0-d array, a NumPy integer seed: the same Wb as the Python values.
    expected = keras.ops.convert_to_numpy(binarization(W, 0.5, stochastic=True, srng=3))
    for H, seed in ((np.float32(0.5), np.int32(3)), (np.array(0.5), np.uint64(3)), (np.float64(0.5), 3)):
        got = keras.ops.convert_to_numpy(binarization(W, H, stochastic=True, srng=seed))
        np.testing.assert_array_equal(got, expected)


def test_nan_weights_are_binarized_as_the_reference_does_not_propagated():
    # Rounding: the reference's switch(NaN, H, -H) is +H; sampling: u < NaN is false, -H.
    W_nan = np.array([np.nan, -0.3, 0.3], np.float32)
    rounded = keras.ops.convert_to_numpy(binarization(W_nan, 0.5))
    sampled = keras.ops.convert_to_numpy(binarization(W_nan, 0.5, stochastic=True, srng=1))
    np.testing.assert_array_equal(rounded, np.array([0.5, -0.5, 0.5], np.float32))
    assert sampled[0] == np.float32(-0.5)


def test_binary_weights_of_a_model_without_binary_layers_is_empty_and_of_an_unbuilt_one_an_error():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), BinaryDense(2, binary=False)])
    assert binary_weights(plain) == {}
    model = unbuilt_model()
    with pytest.raises(ValueError) as info:
        binary_weights(model)
    expected = "a built model (layer 'late' has no kernel yet: call the model on a batch first)"
    assert str(info.value) == invalid("model", model, expected)


def test_reset_from_the_runs_own_thread_is_refused():
    errors: list[str] = []
    run = None

    def on_state(state):
        if state == "finished":
            try:
                run.reset(timeout=1)
            except RuntimeError as exc:
                errors.append(str(exc))

    class Done:
        done, global_step = True, 0

    run = BackgroundRun(Done, on_state=on_state)
    assert run.start() and run.wait(10)
    assert errors == ["reset() was called from the run's own thread (a callback); call it from the notebook instead."]


def test_a_trainer_on_images_the_cnn_cannot_take_fails_before_building():
    from bclab.data import Dataset
    from bclab.train.trainer import Trainer

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (120, 4, 4, 1), dtype=np.uint8)
    data = Dataset("tiny", images, np.arange(120) % 10, images, np.arange(120) % 10, 10, "arrays")
    config = RunConfig(architecture="cnn", n_validation=0, batch_size=50, epochs=1)
    with pytest.raises(ValueError) as info:
        Trainer(config, data)
    assert str(info.value) == invalid(
        "image_shape",
        (4, 4, 1),
        "an image shape (H, W, C) with H, W >= 8 and C >= 1 for the cnn architecture (it max-pools 2x2 three times)",
    )


def test_a_trainer_whose_declared_classes_exclude_a_label_names_the_split_and_index():
    from bclab.data import Dataset
    from bclab.train.trainer import Trainer

    images = np.zeros((100, 8, 8, 1), np.uint8)
    labels = np.arange(100) % 10  # label 5 first appears at index 5
    data = Dataset("tiny", images, labels, images, labels, 10, "arrays")
    with pytest.raises(ValueError) as info:
        Trainer(RunConfig(num_classes=5, n_validation=0, batch_size=50, epochs=1), data)
    assert str(info.value) == (
        "Invalid data in `y_train`, expected class labels in [0, 5) (num_classes=5). Received: y_train[5]=5"
    )
