"""The paper's architectures and loss, built from a RunConfig.

Layer order as the reference scripts: Dense/Conv (with bias) -> [MaxPool 2x2] ->
BatchNorm -> ReLU, and the 10-unit output layer is followed by BatchNorm too.
Convs are 3x3 with "same" padding (pad 1). BatchNorm uses Keras momentum = 1 - alpha.

Deliberate difference: the reference adds BatchNorm's epsilon to the standard
deviation, Keras adds it to the variance; with epsilon = 1e-4 the two differ only
for features whose variance is below about 1e-4.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bclab.config import RunConfig
from bclab.core.layers import BinaryConv2D, BinaryDense
from bclab.data import MAX_CLASSES, check_fits_architecture
from bclab.validation import check_int_between


def _batch_norm(config: RunConfig, name: str) -> keras.layers.Layer:
    # Over several replicas, BatchNorm's batch statistics are the whole batch's (synchronized), so a
    # data-parallel run trains the same network as one device with the same global batch.
    synchronized = tf.distribute.get_strategy().num_replicas_in_sync > 1  # built inside the run's strategy scope
    return keras.layers.BatchNormalization(
        momentum=1.0 - config.bn_alpha, epsilon=config.bn_epsilon, synchronized=synchronized, name=name
    )


def _binary_args(config: RunConfig, index: int) -> dict:
    # One seed per layer, so layers do not share initial weights or samples.
    return dict(
        binary=config.binary,
        stochastic=config.stochastic,
        H=config.H,
        W_LR_scale=config.W_LR_scale,
        seed=config.seed * 1000 + index,
    )


def build_mlp(config: RunConfig, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The permutation-invariant MLP (paper: 784-2048-2048-2048-10)."""
    layers = [keras.Input(input_shape), keras.layers.Flatten(name="flatten")]
    for i in range(config.hidden_layers):
        layers += [
            BinaryDense(config.units, name=f"dense_{i + 1}", **_binary_args(config, i)),
            _batch_norm(config, f"bn_{i + 1}"),
            keras.layers.ReLU(name=f"relu_{i + 1}"),
        ]
    layers += [
        BinaryDense(num_classes, name="dense_out", **_binary_args(config, config.hidden_layers)),
        _batch_norm(config, "bn_out"),
    ]
    return keras.Sequential(layers, name="binaryconnect_mlp")


def build_cnn(config: RunConfig, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The CIFAR-10/SVHN convnet: 2xC3-MP2-2xC3-MP2-2xC3-MP2-FC-FC-out (paper widths 128/256/512, 1024)."""
    layers: list = [keras.Input(input_shape)]
    index = 0
    for block, channels in enumerate(config.channels, start=1):
        for conv in (1, 2):
            name = f"conv_{block}{conv}"
            layers.append(BinaryConv2D(channels, 3, padding="same", name=name, **_binary_args(config, index)))
            index += 1
            if conv == 2:
                layers.append(keras.layers.MaxPooling2D(2, name=f"pool_{block}"))
            layers += [_batch_norm(config, f"bn_{block}{conv}"), keras.layers.ReLU(name=f"relu_{block}{conv}")]
    layers.append(keras.layers.Flatten(name="flatten"))
    for fc in (1, 2):
        layers += [
            BinaryDense(config.dense_units, name=f"fc_{fc}", **_binary_args(config, index)),
            _batch_norm(config, f"bn_fc{fc}"),
            keras.layers.ReLU(name=f"relu_fc{fc}"),
        ]
        index += 1
    layers += [BinaryDense(num_classes, name="dense_out", **_binary_args(config, index)), _batch_norm(config, "bn_out")]
    return keras.Sequential(layers, name="binaryconnect_cnn")


def build_model(config: RunConfig, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """The architecture named by `config.architecture` for images of `input_shape`.

    The shape and the class count are checked before any layer is built (a zero-size input
    would abort the process inside oneDNN): `bclab.data.check_fits_architecture`.
    """
    input_shape = check_fits_architecture(input_shape, config.architecture)
    num_classes = check_int_between("num_classes", num_classes, 2, MAX_CLASSES)
    if config.architecture == "cnn":
        return build_cnn(config, input_shape, num_classes)
    return build_mlp(config, input_shape, num_classes)


def squared_hinge(y_true, y_pred):
    """Mean over batch and classes of `max(0, 1 - t*y)**2` on +-1 targets (reference loss)."""
    return keras.ops.mean(keras.ops.square(keras.ops.maximum(0.0, 1.0 - y_true * y_pred)))


def make_optimizer(config: RunConfig) -> keras.optimizers.Optimizer:
    """The inner optimizer named by the config; Adam/Adamax with the reference's epsilon 1e-8."""
    if config.optimizer == "adam":
        return keras.optimizers.Adam(config.lr_start, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    if config.optimizer == "adamax":
        return keras.optimizers.Adamax(config.lr_start, epsilon=1e-8)
    return keras.optimizers.SGD(config.lr_start)
