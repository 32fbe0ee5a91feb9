"""RunConfig: every setting of a BinaryConnect run, validated once, JSON round-trippable.

The paper's recipes (`RunConfig.recipe`) follow the reference scripts
(`mnist.py`, `cifar10.py`, `svhn.py`; docs/binaryconnect-reference.md, section 4),
with sizes that can be scaled down for a CPU or a Binder session.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from bclab.data import DATASETS, DEFAULT_DATASET
from bclab.validation import invalid_value

MODES = ("deterministic", "stochastic", "float")
ARCHITECTURES = ("mlp", "cnn")
OPTIMIZERS = ("adam", "adamax", "sgd")
TRACE_LEVELS = ("off", "scalars", "full")
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


def _positive_int(name: str, value: Any, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise invalid_value(name, value, "a non-negative integer" if allow_zero else "a positive integer")


def _positive_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise invalid_value(name, value, "a positive finite number")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise invalid_value(name, value, f"one of {list(choices)}")


@dataclass(frozen=True)
class RunConfig:
    """One BinaryConnect run. Defaults: a quick demo, a small deterministic MLP on the embedded
    5,000 MNIST digits for 10 epochs (LR 3e-3 -> 3e-4); `RunConfig.recipe` gives the paper's.

    `mode`: "deterministic" (sign), "stochastic" (Bernoulli) or "float" (no
    binarization, the paper's "no regularizer" baseline).
    `n_train`/`n_test`: keep only the first n examples (None: all).
    `n_validation`: the last n training examples validate (reference split).
    `trace`: "off", "scalars" (per-step scalars and timeline) or "full" (plus
    histograms, binary counts and tracked weights).
    """

    dataset: str = DEFAULT_DATASET
    data_path: str | None = None
    n_train: int | None = None
    n_validation: int = 500
    n_test: int | None = None
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

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS + ("npz", "idx"):
            raise invalid_value("dataset", self.dataset, f"one of {list(DATASETS + ('npz', 'idx'))}")
        if self.dataset in ("npz", "idx") and not self.data_path:
            raise invalid_value("data_path", self.data_path, f"a path to the {self.dataset} data")
        for name in ("n_train", "n_test"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        _positive_int("n_validation", self.n_validation, allow_zero=True)
        _choice("architecture", self.architecture, ARCHITECTURES)
        _choice("size", self.size, SIZES)
        _choice("mode", self.mode, MODES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("trace", self.trace, TRACE_LEVELS)
        for name in ("hidden_units", "fc_units"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        _positive_int("hidden_layers", self.hidden_layers)
        if self.conv_channels is not None:
            channels = tuple(self.conv_channels)
            if len(channels) != 3 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
                raise invalid_value("conv_channels", self.conv_channels, "three positive integers")
            object.__setattr__(self, "conv_channels", channels)
        if not (isinstance(self.H, str) and self.H.lower() == "glorot"):
            _positive_float("H", self.H)
        if self.W_LR_scale is not None and not (
            isinstance(self.W_LR_scale, str) and self.W_LR_scale.lower() == "glorot"
        ):
            _positive_float("W_LR_scale", self.W_LR_scale)
        _positive_float("lr_start", self.lr_start)
        _positive_float("lr_end", self.lr_end)
        _positive_int("batch_size", self.batch_size)
        _positive_int("epochs", self.epochs)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise invalid_value("seed", self.seed, "a non-negative integer")
        if not 0 < self.bn_alpha <= 1:
            raise invalid_value("bn_alpha", self.bn_alpha, "a number in (0, 1] (Keras momentum = 1 - alpha)")
        _positive_float("bn_epsilon", self.bn_epsilon)
        _positive_int("trace_sample", self.trace_sample, allow_zero=True)
        if not isinstance(self.jit_compile, bool):
            raise invalid_value("jit_compile", self.jit_compile, "True or False")

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
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        if not isinstance(data, dict):
            raise invalid_value("config", data, "a JSON object of RunConfig fields")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown RunConfig fields {unknown}. Known fields: {sorted(known)}")
        data = dict(data)
        if data.get("conv_channels") is not None:
            data["conv_channels"] = tuple(data["conv_channels"])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"The config is not valid JSON: {error}") from error
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
