"""Every argument check bclab makes, and the one error formula they share (Keras's).

A bad value raises `ValueError("Received an invalid value for `name`, expected <what>. Received:
name=<value>")`: the argument, what is expected and what came. Each `check_*` returns the value
normalized (an `int`, a `float`, ...) so the caller keeps the checked value. Standard library
only: every tier may import this module.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

GLOROT = "glorot"


def invalid_value(name: str, value: Any, expected: str) -> ValueError:
    """`ValueError("Received an invalid value for `name`, expected <expected>. Received: name=<value>")`."""
    return ValueError(f"Received an invalid value for `{name}`, expected {expected}. Received: {name}={value!r}")


def invalid_data(name: str, expected: str, received: str) -> ValueError:
    """The formula for the contents of an array or a file, where the value is too big to print.

    `ValueError("Invalid data in `name`, expected <expected>. Received: <received>")`; `received`
    points at the offending part, e.g. "y_train[5]=12" or "x_train.shape=(3, 4)".
    """
    return ValueError(f"Invalid data in `{name}`, expected {expected}. Received: {received}")


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """An integer (not a bool; NumPy integers pass) of at least `minimum`."""
    if minimum == 1:
        expected = "a positive integer"
    elif minimum == 0:
        expected = "a non-negative integer"
    else:
        expected = "an integer" if minimum is None else f"an integer >= {minimum}"
    result = _as_int(name, value, expected)
    if minimum is not None and result < minimum:
        raise invalid_value(name, value, expected)
    return result


def _as_int(name: str, value: Any, expected: str) -> int:
    """`operator.index(value)`: ints and NumPy integers, not bools, floats or text."""
    if isinstance(value, bool):
        raise invalid_value(name, value, expected)
    try:
        return operator.index(value)
    except TypeError:
        raise invalid_value(name, value, expected) from None


def check_positive_int(name: str, value: Any) -> int:
    return check_int(name, value, 1)


def check_optional_positive_int(name: str, value: Any) -> int | None:
    """None, or a positive integer."""
    return None if value is None else check_int(name, value, 1)


def check_int_between(name: str, value: Any, low: int, high: int, expected: str | None = None) -> int:
    """An integer (not a bool) in [low, high]."""
    expected = expected or f"an integer in [{low}, {high}]"
    result = _as_int(name, value, expected)
    if not low <= result <= high:
        raise invalid_value(name, value, expected)
    return result


def check_optional_int_between(name: str, value: Any, low: int, high: int) -> int | None:
    """None, or an integer in [low, high]."""
    return None if value is None else check_int_between(name, value, low, high)


SEED_LIMIT = 2**62  # seeds reach TensorFlow as int64 after bclab adds offsets of about 2**20


def check_optional_seed(name: str, value: Any, expected: str = "None or an integer in [0, 2**62)") -> int | None:
    """None, or an integer seed in [0, 2**62) (NumPy integers too, not bools), returned as an `int`."""
    return None if value is None else check_int_between(name, value, 0, SEED_LIMIT - 1, expected)


def check_real(name: str, value: Any, expected: str = "a real number") -> float:
    """A real number (a NumPy scalar too; not a bool, a string or an array). NaN and Inf pass."""
    if isinstance(value, (bool, str, bytes)) or getattr(value, "ndim", 0) != 0:
        raise invalid_value(name, value, expected)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise invalid_value(name, value, expected) from None


def check_positive_float(name: str, value: Any) -> float:
    """A positive, finite number."""
    expected = "a positive finite number"
    result = check_real(name, value, expected)
    if not math.isfinite(result) or result <= 0:
        raise invalid_value(name, value, expected)
    return result


FLOAT32_MAX = 3.4028234663852886e38  # the largest finite float32
FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32


def check_positive_float32(name: str, value: Any) -> float:
    """A positive number that float32 holds as a normal number: training runs in float32, where a
    larger one is Inf and a smaller one is 0 or loses its precision."""
    expected = f"a positive finite number that float32 holds ({FLOAT32_TINY:.3g} to {FLOAT32_MAX:.4g})"
    result = check_real(name, value, expected)
    if not FLOAT32_TINY <= result <= FLOAT32_MAX:
        raise invalid_value(name, value, expected)
    return result


def check_fraction(name: str, value: Any, expected: str = "a number in (0, 1]") -> float:
    """A number in (0, 1]."""
    result = check_real(name, value, expected)
    if not 0 < result <= 1:
        raise invalid_value(name, value, expected)
    return result


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid_value(name, value, "True or False")
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise invalid_value(name, value, f"one of {list(choices)}")
    return value


def check_mapping(name: str, value: Any, allowed: Sequence[str] | None = None) -> Mapping:
    """A mapping whose keys, when `allowed` is given, are among `allowed`."""
    if type(value) is not dict and not isinstance(value, Mapping):  # ABC checks are slow
        raise invalid_value(name, value, "a mapping")
    if allowed is not None:
        unknown = [key for key in value if key not in allowed]
        if unknown:
            raise invalid_value(name, value, f"keys among {list(allowed)} (unknown: {unknown})")
    return value


def check_glorot_or_positive(name: str, value: Any, *, allow_none: bool = False) -> float | str | None:
    """A positive finite number, "glorot" (any case) or, with `allow_none`, None.

    Text is parsed too, for the command line and the lab's text boxes: "0.5", "Glorot" and,
    with `allow_none`, "none" or an empty string. The rule for `H` and `W_LR_scale`.
    """
    expected = 'a positive number, "glorot" or None' if allow_none else 'a positive number or "glorot"'
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == GLOROT:
            return GLOROT
        if allow_none and text in ("", "none"):
            return None
        try:
            number = float(text)
        except ValueError:
            raise invalid_value(name, value, expected) from None
    else:
        number = check_real(name, value, expected)
    if not math.isfinite(number) or number <= 0:
        raise invalid_value(name, value, expected)
    return number
