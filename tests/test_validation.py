"""`bclab.validation`: what each check accepts, what it returns, and the error a careless user gets."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest

from bclab.validation import (
    check_choice,
    check_flag,
    check_fraction,
    check_glorot_or_positive,
    check_int,
    check_int_between,
    check_mapping,
    check_optional_positive_int,
    check_positive_float,
    check_positive_int,
    check_real,
    invalid_data,
    invalid_value,
)


class Bad:
    """The check must raise a ValueError whose message says `expected`."""

    def __init__(self, expected: str):
        self.expected = expected


INT = "an integer"
POSITIVE_INT = "a positive integer"
NON_NEGATIVE_INT = "a non-negative integer"
IN_0_9 = "an integer in [0, 9]"
REAL = "a real number"
POSITIVE = "a positive finite number"
FRACTION = "a number in (0, 1]"
FLAG = "True or False"
CHOICE = "one of ['adam', 'sgd']"
GLOROT = 'a positive number or "glorot"'
GLOROT_OR_NONE = 'a positive number, "glorot" or None'

CASES = [
    # check, value, result or Bad(expected)
    (check_int, 3, 3),
    (check_int, -1, -1),
    (check_int, np.int64(3), 3),  # NumPy integers pass, returned as int
    (check_int, True, Bad(INT)),  # a bool is not a count
    (check_int, 1.5, Bad(INT)),
    (check_int, 3.0, Bad(INT)),  # an integral float is still a float
    (check_int, "3", Bad(INT)),
    (check_int, None, Bad(INT)),
    (check_int, [], Bad(INT)),
    (check_int, math.nan, Bad(INT)),
    (partial(check_int, minimum=0), 0, 0),
    (partial(check_int, minimum=0), -1, Bad(NON_NEGATIVE_INT)),
    (partial(check_int, minimum=5), 4, Bad("an integer >= 5")),
    (check_positive_int, 1, 1),
    (check_positive_int, np.int32(2), 2),
    (check_positive_int, 0, Bad(POSITIVE_INT)),
    (check_positive_int, -1, Bad(POSITIVE_INT)),
    (check_positive_int, True, Bad(POSITIVE_INT)),
    (check_positive_int, 1.5, Bad(POSITIVE_INT)),
    (check_positive_int, "3", Bad(POSITIVE_INT)),
    (check_positive_int, math.inf, Bad(POSITIVE_INT)),
    (check_positive_int, None, Bad(POSITIVE_INT)),
    (check_optional_positive_int, None, None),
    (check_optional_positive_int, 5, 5),
    (check_optional_positive_int, 0, Bad(POSITIVE_INT)),
    (check_optional_positive_int, False, Bad(POSITIVE_INT)),
    (check_optional_positive_int, "none", Bad(POSITIVE_INT)),
    (partial(check_int_between, low=0, high=9), 0, 0),
    (partial(check_int_between, low=0, high=9), 9, 9),
    (partial(check_int_between, low=0, high=9), np.uint8(4), 4),
    (partial(check_int_between, low=0, high=9), -1, Bad(IN_0_9)),
    (partial(check_int_between, low=0, high=9), 10, Bad(IN_0_9)),
    (partial(check_int_between, low=0, high=9), True, Bad(IN_0_9)),
    (partial(check_int_between, low=0, high=9), 2.5, Bad(IN_0_9)),
    (partial(check_int_between, low=0, high=9), "3", Bad(IN_0_9)),
    (partial(check_int_between, low=0, high=9, expected="one of 10 rows"), 10, Bad("one of 10 rows")),
    (check_real, 1, 1.0),
    (check_real, np.float32(0.5), 0.5),
    (check_real, math.inf, math.inf),  # check_real lets NaN and Inf through; the positive checks do not
    (check_real, math.nan, math.nan),
    (check_real, True, Bad(REAL)),
    (check_real, "1", Bad(REAL)),
    (check_real, None, Bad(REAL)),
    (check_real, [], Bad(REAL)),
    (check_real, np.array([1.0]), Bad(REAL)),
    (check_real, 1j, Bad(REAL)),
    (check_positive_float, 2, 2.0),
    (check_positive_float, 1e-300, 1e-300),
    (check_positive_float, 0, Bad(POSITIVE)),
    (check_positive_float, -1, Bad(POSITIVE)),
    (check_positive_float, math.nan, Bad(POSITIVE)),
    (check_positive_float, math.inf, Bad(POSITIVE)),
    (check_positive_float, True, Bad(POSITIVE)),
    (check_positive_float, "0.5", Bad(POSITIVE)),  # text is parsed only by check_glorot_or_positive
    (check_positive_float, None, Bad(POSITIVE)),
    (check_fraction, 1, 1.0),
    (check_fraction, 0.5, 0.5),
    (check_fraction, 0, Bad(FRACTION)),
    (check_fraction, -0.0, Bad(FRACTION)),
    (check_fraction, 1.0001, Bad(FRACTION)),
    (check_fraction, math.nan, Bad(FRACTION)),
    (check_fraction, True, Bad(FRACTION)),
    (check_fraction, "0.5", Bad(FRACTION)),
    (check_flag, True, True),
    (check_flag, False, False),
    (check_flag, 1, Bad(FLAG)),
    (check_flag, 0, Bad(FLAG)),
    (check_flag, "True", Bad(FLAG)),
    (check_flag, None, Bad(FLAG)),
    (check_flag, np.bool_(True), Bad(FLAG)),
    (partial(check_choice, choices=("adam", "sgd")), "adam", "adam"),
    (partial(check_choice, choices=("adam", "sgd")), "Adam", Bad(CHOICE)),  # choices are exact
    (partial(check_choice, choices=("adam", "sgd")), " adam", Bad(CHOICE)),
    (partial(check_choice, choices=("adam", "sgd")), None, Bad(CHOICE)),
    (partial(check_choice, choices=("adam", "sgd")), ["adam"], Bad(CHOICE)),
    (partial(check_choice, choices=("adam", "sgd")), 1, Bad(CHOICE)),
    (check_mapping, {}, {}),
    (check_mapping, [], Bad("a mapping")),
    (check_mapping, None, Bad("a mapping")),
    (partial(check_mapping, allowed=["a"]), {"a": 1}, {"a": 1}),
    (partial(check_mapping, allowed=["a"]), {"a": 1, "b": 2}, Bad("keys among ['a'] (unknown: ['b'])")),
    (check_glorot_or_positive, "glorot", "glorot"),
    (check_glorot_or_positive, "Glorot ", "glorot"),  # any case, spaces around
    (check_glorot_or_positive, "GLOROT", "glorot"),
    (check_glorot_or_positive, 1, 1.0),
    (check_glorot_or_positive, np.float64(0.25), 0.25),
    (check_glorot_or_positive, "0.5", 0.5),  # text from the command line or a text box
    (check_glorot_or_positive, " 2 ", 2.0),
    (check_glorot_or_positive, "1e-3", 0.001),
    (check_glorot_or_positive, 0, Bad(GLOROT)),
    (check_glorot_or_positive, "0", Bad(GLOROT)),
    (check_glorot_or_positive, -1, Bad(GLOROT)),
    (check_glorot_or_positive, math.nan, Bad(GLOROT)),
    (check_glorot_or_positive, "nan", Bad(GLOROT)),
    (check_glorot_or_positive, math.inf, Bad(GLOROT)),
    (check_glorot_or_positive, "inf", Bad(GLOROT)),
    (check_glorot_or_positive, True, Bad(GLOROT)),
    (check_glorot_or_positive, None, Bad(GLOROT)),  # None only with allow_none
    (check_glorot_or_positive, "none", Bad(GLOROT)),
    (check_glorot_or_positive, "", Bad(GLOROT)),
    (check_glorot_or_positive, "glorot!", Bad(GLOROT)),
    (check_glorot_or_positive, [], Bad(GLOROT)),
    (partial(check_glorot_or_positive, allow_none=True), None, None),
    (partial(check_glorot_or_positive, allow_none=True), "none", None),
    (partial(check_glorot_or_positive, allow_none=True), "None", None),
    (partial(check_glorot_or_positive, allow_none=True), " ", None),  # an emptied text box
    (partial(check_glorot_or_positive, allow_none=True), "Glorot ", "glorot"),
    (partial(check_glorot_or_positive, allow_none=True), 3, 3.0),
    (partial(check_glorot_or_positive, allow_none=True), "null", Bad(GLOROT_OR_NONE)),
    (partial(check_glorot_or_positive, allow_none=True), 0, Bad(GLOROT_OR_NONE)),
    (partial(check_glorot_or_positive, allow_none=True), False, Bad(GLOROT_OR_NONE)),
]


def _id(case):
    check, value, _ = case
    name = check.func.__name__ if isinstance(check, partial) else check.__name__
    return f"{name}-{value!r}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_check(case):
    check, value, outcome = case
    if isinstance(outcome, Bad):
        with pytest.raises(ValueError) as err:
            check("arg", value)
        # The formula: the argument, what is expected, the value received.
        assert (
            str(err.value)
            == f"Received an invalid value for `arg`, expected {outcome.expected}. Received: arg={value!r}"
        )
        return
    result = check("arg", value)
    assert type(result) is type(outcome)  # normalized: int, float, str, None (JSON-serializable)
    assert result == outcome or (isinstance(outcome, float) and math.isnan(outcome) and math.isnan(result))


def test_the_error_formulas():
    error = invalid_value("units", 0, "a positive integer")
    # Keras's wording, e.g. keras/src/layers/core/dense.py.
    assert str(error) == "Received an invalid value for `units`, expected a positive integer. Received: units=0"
    error = invalid_data("y_train", "class labels in [0, 10)", "y_train[5]=12")
    assert str(error) == "Invalid data in `y_train`, expected class labels in [0, 10). Received: y_train[5]=12"
    assert isinstance(error, ValueError)
