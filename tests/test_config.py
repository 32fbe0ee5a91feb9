"""RunConfig: every field checked, values kept normalized, JSON round trip, the paper's recipes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from bclab.config import SIZES, TRACE_LEVELS, RunConfig


def test_json_round_trip_of_the_defaults_and_every_recipe():
    configs = [RunConfig(), RunConfig(H="glorot", W_LR_scale=None, conv_channels=[4, 8, 8], jit_compile=True)]
    configs += [RunConfig.recipe(name, size) for name in ("mnist", "cifar10", "svhn") for size in SIZES]
    for config in configs:
        text = config.to_json()
        assert RunConfig.from_json(text) == config
        assert json.loads(text) == config.to_dict()


def test_values_are_kept_normalized():
    config = RunConfig(
        H="Glorot ",
        W_LR_scale="none",
        epochs=np.int64(3),
        lr_start=1,
        conv_channels=[4, 8, 8],
        dataset="npz",
        data_path=Path("/data/mine.npz"),
    )
    assert config.H == "glorot" and config.W_LR_scale is None
    assert type(config.epochs) is int and config.epochs == 3  # JSON cannot write np.int64
    assert type(config.lr_start) is float and config.lr_start == 1.0
    assert config.conv_channels == (4, 8, 8) and config.data_path == "/data/mine.npz"
    assert RunConfig.from_json(config.to_json()) == config
    assert RunConfig(H=0.5).H == 0.5 and RunConfig(W_LR_scale=2).W_LR_scale == 2.0


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("dataset", "svhn", "one of ['mnist-5k'"),
        ("n_train", 0, "a positive integer"),
        ("n_validation", -1, "a non-negative integer"),
        ("hidden_units", 1.5, "a positive integer"),
        ("hidden_layers", True, "a positive integer"),
        ("conv_channels", (8, 16), "three positive integers"),
        ("conv_channels", (8, 0, 16), "three positive integers"),
        ("mode", "ternary", "one of ['deterministic', 'stochastic', 'float']"),
        ("H", 0, 'a positive number or "glorot"'),
        ("H", None, 'a positive number or "glorot"'),
        ("W_LR_scale", "nope", 'a positive number, "glorot" or None'),
        ("lr_start", float("nan"), "a positive finite number"),
        ("lr_end", "0.1", "a positive finite number"),
        ("batch_size", 0, "a positive integer"),
        ("seed", -1, "a non-negative integer"),
        ("bn_alpha", 0, "a number in (0, 1]"),
        ("bn_epsilon", -1e-4, "a positive finite number"),
        ("trace", "all", str(list(TRACE_LEVELS))),
        ("trace_sample", -1, "a non-negative integer"),
        ("jit_compile", 1, "True or False"),
        ("data_path", 3, "None or a path"),
    ],
)
def test_a_bad_field_is_named_with_its_value_and_what_is_expected(field, value, expected):
    with pytest.raises(ValueError) as err:
        RunConfig(**{field: value})
    message = str(err.value)
    assert f"`{field}`" in message and f"{field}={value!r}" in message and expected in message


def test_every_field_is_checked():
    # Each field with a wrong-typed value (a list: no field takes one, conv_channels needs 3 items).
    for field in dataclasses.fields(RunConfig):
        with pytest.raises(ValueError, match=f"`{field.name}`"):
            RunConfig(**{field.name: [object()]})


def test_own_files_need_a_path():
    with pytest.raises(ValueError, match="`data_path`.*npz"):
        RunConfig(dataset="npz")


def test_from_json_names_unknown_fields_and_bad_json():
    with pytest.raises(ValueError, match=r"unknown: \['units'\]"):
        RunConfig.from_json('{"units": 3}')
    with pytest.raises(ValueError, match="not valid JSON"):
        RunConfig.from_json("{epochs: 3}")
    with pytest.raises(ValueError, match="`config`"):
        RunConfig.from_json("[3]")


def test_recipe_follows_the_reference_scripts():
    # docs/binaryconnect-reference.md, section 4: cifar10.py trains 500 epochs of batches of 50,
    # LR 3e-3 -> 2e-6, BatchNorm alpha 0.1.
    config = RunConfig.recipe("cifar10")
    assert (config.architecture, config.batch_size, config.epochs) == ("cnn", 50, 500)
    assert (config.lr_start, config.lr_end, config.bn_alpha) == (3e-3, 2e-6, 0.1)
    assert config.channels == (128, 256, 512) and config.dense_units == 1024
    assert RunConfig.recipe("svhn").channels == (64, 128, 256)  # svhn.py: same net, narrower convs
    assert RunConfig.recipe("svhn", "tiny").channels == (8, 16, 16)
    with pytest.raises(ValueError, match="`recipe`"):
        RunConfig.recipe("imagenet")


def test_lr_at_epoch_decays_geometrically_from_start_to_end():
    config = RunConfig(lr_start=1e-2, lr_end=1e-4, epochs=2)
    # decay = (1e-4 / 1e-2) ** (1 / 2) = 0.1 per epoch.
    assert config.lr_at_epoch(0) == pytest.approx(1e-2, rel=1e-12)
    assert config.lr_at_epoch(1) == pytest.approx(1e-3, rel=1e-12)
    assert config.lr_at_epoch(2) == pytest.approx(1e-4, rel=1e-12)
