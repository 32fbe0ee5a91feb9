"""TensorFlow's C++ start-up lines (oneDNN, "Could not find cuda drivers", cuInit, absl) hidden by default.

TensorFlow writes them to file descriptor 2 from C++, many before absl's logging is set up, so
`TF_CPP_MIN_LOG_LEVEL` alone does not hide them: a notebook shows them as red stderr and the CLI
prints them before its own output. `hide_tensorflow_startup_lines()` (run when `bclab.train` is
imported, before any module of it imports Keras) arranges that TensorFlow's own import runs with
descriptor 2 pointed at /dev/null and `TF_CPP_MIN_LOG_LEVEL=3` set, so the later C++ lines stay
hidden too. Python exceptions are unaffected. A user who set `TF_CPP_MIN_LOG_LEVEL` (e.g. to 0,
to see every line) gets exactly what they asked for: nothing is changed then, nor when
TensorFlow is already imported.

The import is caught by a `sys.meta_path` finder that answers for the top-level `tensorflow`
only and removes itself once it fired, like bclab's Keras registration hook (`bclab/__init__.py`),
so importing `bclab.train.runner` (the lab) still loads no TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["LEVEL", "hide_tensorflow_startup_lines", "stderr_hidden"]

LEVEL = "3"  # TF_CPP_MIN_LOG_LEVEL set by default: 3 also hides "failed call to cuInit" on CPU-only machines


@contextlib.contextmanager
def stderr_hidden() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside (C++ writes there; Python's sys.stderr too)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (some embedded interpreters): nothing to hide
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def hide_tensorflow_startup_lines() -> None:
    """Hides TensorFlow's C++ log lines from its coming import on, unless the user set
    `TF_CPP_MIN_LOG_LEVEL` or TensorFlow is imported already. Safe to call more than once."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    if not any(getattr(finder, "bclab_quiet", False) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())


class _QuietFinder:
    """Answers for `tensorflow` with the real spec whose loader runs inside `stderr_hidden()`."""

    bclab_quiet = True

    def __init__(self) -> None:
        self._searching = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow" or self._searching:
            return None
        self._searching = True
        try:
            spec = next(
                (
                    found
                    for finder in list(sys.meta_path)
                    if finder is not self and hasattr(finder, "find_spec")
                    for found in [finder.find_spec(fullname, path, target)]
                    if found is not None
                ),
                None,
            )
        finally:
            self._searching = False
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _QuietLoader(spec.loader, self)
        return spec


class _QuietLoader:
    """The real loader of `tensorflow`, run with descriptor 2 hidden; then the finder leaves."""

    def __init__(self, loader, finder: _QuietFinder) -> None:
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        create = getattr(self.loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = self.loader
        if getattr(module.__spec__, "loader", None) is self:
            module.__spec__.loader = self.loader
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        if "TF_CPP_MIN_LOG_LEVEL" in os.environ:  # set since the finder was installed: the user's choice
            self.loader.exec_module(module)
            return
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = LEVEL
        with stderr_hidden():
            self.loader.exec_module(module)

    def __getattr__(self, name: str):
        return getattr(self.loader, name)
