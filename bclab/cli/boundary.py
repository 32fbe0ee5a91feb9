"""The CLI's error boundary: which exceptions are the user's, and how each is told (one line).

A user error (a bad flag, value, path or file) becomes `UserError` where it is found, with the
argument or file it concerns, and `main` prints `bclab: error: <message>` and exits 2. Anything
else is a bug or an environment failure: `bclab: internal error: <type>: <message>`, exit 1;
`--debug` adds the traceback.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from collections.abc import Iterator

from bclab.data import DatasetUnavailableError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER_ERROR = 2
EXIT_NONFINITE = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C

# What reading the user's files and checking the user's values raise. `json.JSONDecodeError`
# and `UnicodeDecodeError` are ValueErrors; a truncated or foreign archive raises the others.
USER_ERROR_TYPES = (
    ValueError,
    TypeError,
    LookupError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
    json.JSONDecodeError,
    DatasetUnavailableError,
)


class UserError(Exception):
    """A bad flag, value, path or file, told in one line naming it (exit 2)."""


def one_line(error: BaseException) -> str:
    """The error's message on one line (whitespace collapsed); its type when it has none."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


@contextlib.contextmanager
def user_errors(flag: str | None = None, value: object = None) -> Iterator[None]:
    """Turns `USER_ERROR_TYPES` raised inside into `UserError`, prefixed by `flag` and `value`
    (the flag or file they concern) unless the message already names one of them."""
    try:
        yield
    except UserError:
        raise
    except USER_ERROR_TYPES as error:
        message = one_line(error)
        named = flag is None or flag in message or (value is not None and str(value) in message)
        if not named:
            message = f"{flag} {value!r}: {message}" if value is not None else f"{flag}: {message}"
        raise UserError(message) from error
