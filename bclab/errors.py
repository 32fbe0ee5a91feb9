"""The one error formula bclab uses for bad input (Keras's): the argument, what is expected, the value."""

from __future__ import annotations

from typing import Any


def invalid_value(name: str, value: Any, expected: str) -> ValueError:
    """``ValueError("Received an invalid value for `name`, expected <expected>. Received: name=<value>")``."""
    return ValueError(f"Received an invalid value for `{name}`, expected {expected}. Received: {name}={value!r}")
