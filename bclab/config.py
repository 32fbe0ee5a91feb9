"""RunConfig: every setting of a BinaryConnect run, validated once, JSON round-trippable.

The paper's recipes (`RunConfig.recipe`) follow the reference scripts
(`mnist.py`, `cifar10.py`, `svhn.py`; docs/binaryconnect-reference.md, section 4),
with sizes that can be scaled down for a CPU or a Binder session.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from bclab.data import DATASETS, DEFAULT_DATASET, FILE_SOURCES, MAX_CLASSES
from bclab.validation import (
    check_choice,
    check_flag,
    check_fraction,
    check_glorot_or_positive,
    check_int,
    check_int_between,
    check_mapping,
    check_optional_int_between,
    check_optional_positive_int,
    check_positive_float32,
    check_positive_int,
    invalid_data,
    invalid_value,
)

MODES = ("deterministic", "stochastic", "float")
ARCHITECTURES = ("mlp", "cnn")
OPTIMIZERS = ("adam", "adamax", "sgd")
TRACE_LEVELS = ("off", "scalars", "full")  # the one list of trace levels (the step uses it too)
ON_NONFINITE = ("stop", "continue")
MAX_DEVICES = 64  # replicas of one data-parallel run (a sanity bound: a typo of 1000 fails before TensorFlow starts)
SIZES = ("paper", "small", "tiny")

# Hidden widths per recipe and size. "paper" is the published network.
_MLP_UNITS = {"paper": 2048, "small": 256, "tiny": 32}
_CNN_CHANNELS = {"paper": (128, 256, 512), "small": (32, 64, 128), "tiny": (8, 16, 16)}
_CNN_FC = {"paper": 1024, "small": 256, "tiny": 32}
_SVHN_CHANNELS = {"paper": (64, 128, 256), "small": (16, 32, 64), "tiny": (8, 16, 16)}

# Reference recipes: batch, epochs, LR start -> end, BatchNorm alpha (section 4).
_RECIPES = {
    "mnist": dict(
        architecture="mlp",
        dataset="mnist",
        batch_size=100,
        epochs=250,
        lr_start=1e-3,
        lr_end=3e-6,
        bn_alpha=0.15,
        n_validation=10_000,
    ),
    "cifar10": dict(
        architecture="cnn",
        dataset="cifar10",
        batch_size=50,
        epochs=500,
        lr_start=3e-3,
        lr_end=2e-6,
        bn_alpha=0.1,
        n_validation=5_000,
    ),
    # SVHN is not among bclab's loaders; its architecture runs on any image data set.
    "svhn": dict(
        architecture="cnn",
        dataset="cifar10",
        batch_size=50,
        epochs=200,
        lr_start=1e-2,
        lr_end=3e-6,
        bn_alpha=0.1,
        n_validation=5_000,
    ),
}


def _optional_path(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # a str in the config, so that it round-trips through JSON
    raise invalid_value(name, value, "None or a path")


def _channels(name: str, value: Any) -> tuple[int, int, int] | None:
    expected = "None or three positive integers"
    if value is None:
        return None
    try:
        channels = tuple(check_positive_int(name, c) for c in value)
    except (TypeError, ValueError):
        raise invalid_value(name, value, expected) from None
    if len(channels) != 3:
        raise invalid_value(name, value, expected)
    return channels


def _in_float32(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """`check`, then a number must be one that float32 holds (training runs in float32)."""

    def checked(name: str, value: Any) -> Any:
        result = check(name, value)
        if isinstance(result, float):
            check_positive_float32(name, result)
        return result

    return checked


# field -> its check, which returns the value normalized (an int, a float, "glorot", a tuple).
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "dataset": partial(check_choice, choices=DATASETS + FILE_SOURCES),
    "data_path": _optional_path,
    "n_train": check_optional_positive_int,
    "n_validation": partial(check_int, minimum=0),
    "n_test": check_optional_positive_int,
    "num_classes": partial(check_optional_int_between, low=2, high=MAX_CLASSES),
    "architecture": partial(check_choice, choices=ARCHITECTURES),
    "size": partial(check_choice, choices=SIZES),
    "hidden_units": check_optional_positive_int,
    "hidden_layers": check_positive_int,
    "conv_channels": _channels,
    "fc_units": check_optional_positive_int,
    "mode": partial(check_choice, choices=MODES),
    "H": _in_float32(check_glorot_or_positive),
    "W_LR_scale": _in_float32(partial(check_glorot_or_positive, allow_none=True)),
    "optimizer": partial(check_choice, choices=OPTIMIZERS),
    "lr_start": check_positive_float32,
    "lr_end": check_positive_float32,
    "batch_size": check_positive_int,
    "epochs": check_positive_int,
    # keras.utils.set_random_seed seeds NumPy's legacy generator, which takes [0, 2**32).
    "seed": partial(check_int_between, low=0, high=2**32 - 1, expected="a non-negative integer below 2**32"),
    "bn_alpha": partial(check_fraction, expected="a number in (0, 1] (Keras momentum = 1 - alpha)"),
    "bn_epsilon": check_positive_float32,
    "trace": partial(check_choice, choices=TRACE_LEVELS),
    "trace_sample": partial(check_int, minimum=0),
    "jit_compile": check_flag,
    "on_nonfinite": partial(check_choice, choices=ON_NONFINITE),
    "devices": partial(
        check_int_between, low=1, high=MAX_DEVICES, expected=f"a whole number of devices in [1, {MAX_DEVICES}]"
    ),
}


@dataclass(frozen=True)
class RunConfig:
    """One BinaryConnect run. Defaults: a quick demo, a small deterministic MLP on the embedded
    5,000 MNIST digits for 10 epochs (LR 3e-3 -> 3e-4); `RunConfig.recipe` gives the paper's.

    `mode`: "deterministic" (sign), "stochastic" (Bernoulli) or "float" (no
    binarization, the paper's "no regularizer" baseline).
    `n_train`/`n_test`: keep only the first n examples (None: all).
    `n_validation`: the last n training examples validate (reference split).
    `num_classes`: the number of classes the labels may use (0 .. num_classes - 1); None takes
    the data set's own (10 for the built-in ones, the labels' largest + 1 for files).
    `trace`: "off", "scalars" (per-step scalars and timeline) or "full" (plus
    histograms, binary counts and tracked weights).
    `on_nonfinite`: "stop" (default) ends the run at the first NaN/Inf loss, gradient or update
    and names it; "continue" keeps training, to watch a divergence.
    `devices`: data-parallel replicas (`tf.distribute.MirroredStrategy`, `bclab.train.devices`);
    `batch_size` is the global batch and must split evenly over them.
    Each field is checked on construction (`_CHECKS`) and kept normalized: `H=1` is kept as
    1.0, `H="Glorot"` as "glorot", a path as a str, `conv_channels` as a tuple.
    """

    dataset: str = DEFAULT_DATASET
    data_path: str | None = None
    n_train: int | None = None
    n_validation: int = 500
    n_test: int | None = None
    num_classes: int | None = None
    architecture: str = "mlp"
    size: str = "small"
    hidden_units: int | None = None
    hidden_layers: int = 3
    conv_channels: tuple[int, int, int] | None = None
    fc_units: int | None = None
    mode: str = "deterministic"
    H: float | str = 1.0
    W_LR_scale: float | str | None = "glorot"
    optimizer: str = "adam"
    lr_start: float = 3e-3
    lr_end: float = 3e-4
    batch_size: int = 100
    epochs: int = 10
    seed: int = 0
    bn_alpha: float = 0.15
    bn_epsilon: float = 1e-4
    trace: str = "full"
    trace_sample: int = 256
    jit_compile: bool = False
    on_nonfinite: str = "stop"
    devices: int = 1

    def __post_init__(self) -> None:
        for name, check in _CHECKS.items():
            object.__setattr__(self, name, check(name, getattr(self, name)))
        if self.dataset in FILE_SOURCES and not self.data_path:
            raise invalid_value("data_path", self.data_path, f"a path to the {self.dataset} data")
        if self.batch_size % self.devices:
            raise invalid_value(
                "batch_size",
                self.batch_size,
                f"a multiple of devices={self.devices} (each replica takes an equal share)",
            )
        if self.devices > 1 and self.jit_compile:
            raise invalid_value("jit_compile", True, f"False with devices={self.devices} (XLA runs on one device here)")

    @property
    def binary(self) -> bool:
        return self.mode != "float"

    @property
    def stochastic(self) -> bool:
        return self.mode == "stochastic"

    @property
    def units(self) -> int:
        """Hidden width of the MLP."""
        return self.hidden_units or _MLP_UNITS[self.size]

    @property
    def channels(self) -> tuple[int, int, int]:
        """Conv widths of the three conv blocks of the CNN."""
        return self.conv_channels or _CNN_CHANNELS[self.size]

    @property
    def dense_units(self) -> int:
        """Width of the CNN's two fully connected layers."""
        return self.fc_units or _CNN_FC[self.size]

    def lr_at_epoch(self, epoch: int) -> float:
        """`lr_start * decay**epoch` with `decay = (lr_end / lr_start) ** (1 / epochs)` (reference)."""
        return self.lr_start * (self.lr_end / self.lr_start) ** (epoch / self.epochs)

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["conv_channels"] is not None:
            data["conv_channels"] = list(data["conv_channels"])
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)  # strict JSON; fields are finite

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        check_mapping("config", data, allowed=[f.name for f in dataclasses.fields(cls)])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise invalid_data(
                "config", "a JSON object of RunConfig fields", f"text that is not valid JSON ({error})"
            ) from error
        return cls.from_dict(data)

    @classmethod
    def recipe(cls, name: str, size: str = "paper", **overrides: Any) -> RunConfig:
        """The reference script `name` ("mnist", "cifar10", "svhn") at a given size.

        "paper" is the published network and schedule; "small"/"tiny" shrink the
        hidden widths only (epochs and data stay as given unless overridden).
        """
        if name not in _RECIPES:
            raise invalid_value("recipe", name, f"one of {sorted(_RECIPES)}")
        settings: dict[str, Any] = dict(_RECIPES[name], size=size, H=1.0, W_LR_scale="glorot", optimizer="adam")
        if name == "svhn":
            settings["conv_channels"] = _SVHN_CHANNELS.get(size)
        settings.update(overrides)
        return cls(**settings)
