"""Files written whole or not at all, and the strict JSON bclab writes (standard library only)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Yield a temporary file beside `path`; on success fsync it and rename it to `path`.

    `os.replace` within one directory is atomic, so readers see the old file or the new
    one, never a part; on any exception the temporary file is removed.
    """
    path = os.fspath(path)
    # The owner's pid in the name lets a later `bclab train` remove what a killed process left.
    fd, tmp = tempfile.mkstemp(
        prefix=f".bclab-{os.getpid()}-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path))
    )
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def finite_or_none(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None (inside mappings, lists and tuples too)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def strict_json(value: Any, **dumps_kwargs: Any) -> str:
    """`json.dumps(value)` with NaN and Inf written as `null`: JSON has no NaN, and strict parsers
    reject Python's bare `NaN`. `allow_nan=False` guarantees none is left."""
    return json.dumps(finite_or_none(value), allow_nan=False, **dumps_kwargs)
