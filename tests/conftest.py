"""Shared test helpers: polling with a deadline, tiny run settings, the embedded digits."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

# 500 training examples / 50 = 10 batches per epoch; 1 hidden layer of 32 units; 2 epochs.
TINY = dict(n_train=600, n_validation=100, n_test=200, hidden_units=32, hidden_layers=1, batch_size=50, epochs=2)


def wait_until(predicate: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail after `timeout` seconds (never a fixed sleep)."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.005)


def stays(value: Callable[[], object], expected: object, seconds: float) -> bool:
    """True if `value()` equals `expected` throughout `seconds`: checks that nothing happens."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if value() != expected:
            return False
        time.sleep(0.005)
    return value() == expected


# Markers of tests for one Keras backend (the golden tests of bclab.core run on TensorFlow here and
# on JAX in the subprocess of tests/test_jax_backend.py).
_BACKEND_MARKERS = {"tensorflow_only": "tensorflow", "jax_only": "jax"}


def pytest_collection_modifyitems(config, items):
    marked = [(item, backend) for item in items for name, backend in _BACKEND_MARKERS.items() if name in item.keywords]
    if not marked:
        return
    import keras  # already imported by the modules that use these markers

    active = keras.backend.backend()
    for item, backend in marked:
        if backend != active:
            item.add_marker(pytest.mark.skip(reason=f"needs KERAS_BACKEND={backend}; this process runs {active}"))


@pytest.fixture(scope="session")
def digits():
    """The embedded 5,000 MNIST digits (`mnist-5k`), loaded once per session."""
    from bclab.data import load_dataset

    return load_dataset("mnist-5k")


@pytest.fixture
def tiny_config():
    """A RunConfig that trains 10 batches per epoch for 2 epochs in a few seconds."""
    from bclab.config import RunConfig

    return RunConfig(**TINY)
