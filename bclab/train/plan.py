"""A run's data, checked without TensorFlow: load, declare the classes, subset, split, check sizes.

The CLI calls `prepare_data` before it imports TensorFlow (its pre-flight), and the `Trainer`
calls it again on the loaded `Dataset` (views, no copy), so both apply one set of rules:

- `num_classes`: the config's, when given, is declared on the data (labels outside it are an
  error naming the split and index, `bclab.data`); else the data set's own.
- The architecture must take the images (`bclab.data.check_fits_architecture`), and the model
  must be buildable: at most `MAX_WEIGHTS` kernel weights and `MAX_HIDDEN_LAYERS` hidden layers
  (a mistyped width would otherwise exhaust the memory or build for hours).
- Validation: `n_validation` is 0 (no validation set: the best epoch is then the last one,
  `bclab.train.trainer.best_epoch`) or at least one batch, since errors are averaged over full
  batches (reference `val_epoch`); fewer than one batch would give no error at all.
- Training and test sets hold at least one full batch each.
"""

from __future__ import annotations

import dataclasses
import math

from bclab import data as bcdata
from bclab.config import RunConfig
from bclab.validation import invalid_value

MAX_WEIGHTS = 1 << 30  # kernel weights: 4 GiB in float32, 16 GiB with Adam's state (the paper's CNN: 14 M)
MAX_HIDDEN_LAYERS = 1_000


def prepare_data(config: RunConfig, dataset: bcdata.Dataset | None = None) -> tuple[bcdata.Dataset, bcdata.Split]:
    """The run's `Dataset` (after `n_train`/`n_test`) and its validation `Split`.

    Raises:
        ValueError: the data, or a size of the config that the data cannot satisfy (named).
        FileNotFoundError, DatasetUnavailableError: as `bclab.data.load_dataset`.
    """
    dataset = _declared(config, dataset)
    bcdata.check_fits_architecture(dataset, config.architecture)
    check_model_size(config, dataset.image_shape, dataset.num_classes)
    dataset = bcdata.subset(dataset, config.n_train, config.n_test)
    n_train, n_validation, batch_size = len(dataset.x_train), config.n_validation, config.batch_size
    if n_validation >= n_train:
        raise invalid_value("n_validation", n_validation, f"fewer than the {n_train} training examples")
    split = bcdata.split_validation(dataset, n_validation)
    for name, n in (("training", len(split.x_train)), ("test", len(split.x_test))):
        if n < batch_size:
            expected = f"at most the {n} {name} examples (only full batches are used)"
            raise invalid_value("batch_size", batch_size, expected)
    if 0 < n_validation < batch_size:
        expected = f"0 (no validation set) or at least batch_size={batch_size} (errors use full batches)"
        raise invalid_value("n_validation", n_validation, expected)
    return dataset, split


def load_data(config: RunConfig) -> bcdata.Dataset:
    """`config`'s data set, with `config.num_classes` declared when given."""
    return bcdata.load_dataset(config.dataset, path=config.data_path, num_classes=config.num_classes)


def _declared(config: RunConfig, dataset: bcdata.Dataset | None) -> bcdata.Dataset:
    """The data with `config.num_classes` declared, when given."""
    if dataset is None:
        return load_data(config)
    if not isinstance(dataset, bcdata.Dataset):
        raise invalid_value("dataset", dataset, "None or a bclab.data.Dataset (from bclab.load_dataset)")
    if config.num_classes is not None and config.num_classes != dataset.num_classes:
        dataset = dataclasses.replace(dataset, num_classes=config.num_classes)
        bcdata.validate(dataset)  # labels outside the declared classes are named here
    return dataset


def check_model_size(config: RunConfig, image_shape: tuple[int, ...], num_classes: int) -> int:
    """The number of kernel weights of `config`'s model (`bclab.train.models`), within the caps."""
    if config.hidden_layers > MAX_HIDDEN_LAYERS:
        raise invalid_value("hidden_layers", config.hidden_layers, f"at most {MAX_HIDDEN_LAYERS:,}")
    if config.architecture == "mlp":
        units, features = config.units, math.prod(image_shape)
        weights = features * units + (config.hidden_layers - 1) * units * units + units * num_classes
        name, value = "hidden_units", units
    else:  # three blocks of two 3x3 convolutions, each block pooled 2x2, then two dense layers
        height, width, channels = image_shape
        c1, c2, c3 = config.channels
        fc = config.dense_units
        convs = 9 * (channels * c1 + c1 * c1 + c1 * c2 + c2 * c2 + c2 * c3 + c3 * c3)
        weights = convs + (height // 8) * (width // 8) * c3 * fc + fc * fc + fc * num_classes
        name, value = "conv_channels, fc_units", (config.channels, fc)
    if weights > MAX_WEIGHTS:
        raise invalid_value(name, value, f"widths that give at most {MAX_WEIGHTS:,} weights (these give {weights:,})")
    return weights
