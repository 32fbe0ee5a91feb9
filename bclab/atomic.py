"""Write a file so that a crash never leaves it half-written (standard library only)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Yield a temporary file beside `path`; on success fsync it and rename it to `path`.

    `os.replace` within one directory is atomic, so readers see the old file or the new
    one, never a part; on any exception the temporary file is removed.
    """
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".bclab-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
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
