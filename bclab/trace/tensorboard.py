"""Export a trace's scalar series to TensorBoard event files (`tf.summary`).

Tags: model-level scalars (counters and the epoch included) go under `model/<name>`, binary
layers' under `<layer>/<name>` and other parameters' under `params/<param>/<name>`; the x axis is
the training step. TensorFlow is imported only when exporting, so the trace tier stays NumPy-only.

One export, one events file: the file's name ends in `EVENTS_SUFFIX`, and a new export into a
folder replaces the files with that suffix already there (TensorBoard would show their points
twice), leaving every other file alone. The file is written in a hidden folder inside `logdir` and
moved into place only when complete, so a failed export leaves nothing new behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from bclab.trace.store import Trace

MODEL_TAG = "model"  # the tag prefix of model-level scalars
PARAMS_TAG = "params"  # the tag prefix of non-binary parameters' scalars
EVENTS_SUFFIX = ".bclab"  # bclab's own event files end with this (TensorBoard reads any "*tfevents*")
INSTALL_HINT = "pip install tensorboard"


def check_available() -> None:
    """Raises ModuleNotFoundError, naming the fix, unless TensorBoard events can be written; writes nothing."""
    try:
        import tensorflow  # noqa: F401
        from tensorboard.summary.v2 import scalar  # noqa: F401  (`tf.summary.scalar` calls it)
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"Exporting to TensorBoard needs TensorFlow and the `tensorboard` package, which cannot be "
            f"imported ({type(exc).__name__}: {exc}); install it with `{INSTALL_HINT}`."
        ) from exc


def scalar_tags(trace: Trace) -> list[tuple[str, str, str | None]]:
    """`(tag, name, scope)` of every scalar series, `scope` as `Trace.scalars` takes it."""
    tags = [(f"{MODEL_TAG}/{name}", name, None) for name in trace.scalar_names()]
    tags += [(f"{layer}/{name}", name, layer) for layer in trace.layer_names for name in trace.scalar_names(layer)]
    tags += [(f"{PARAMS_TAG}/{p}/{name}", name, p) for p in trace.params for name in trace.scalar_names(p)]
    return tags


def export_scalars(trace: Trace, logdir: str | os.PathLike) -> str:
    """Writes every scalar series of `trace` as one TensorBoard events file in `logdir`.

    Replaces the files of earlier exports into `logdir` (see the module doc). Returns the new
    file's path.

    Raises:
        ModuleNotFoundError: TensorBoard is not installed (see `check_available`); nothing is written.
        OSError: `logdir` cannot be made or written; nothing new is left behind.
    """
    check_available()
    logdir = os.fspath(logdir)
    created = not os.path.exists(logdir)
    os.makedirs(logdir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".bclab-tensorboard-", dir=logdir)
    try:
        (name,) = _write_events(trace, staging)
        for old in os.listdir(logdir):
            if "tfevents" in old and old.endswith(EVENTS_SUFFIX):
                os.remove(os.path.join(logdir, old))
        path = os.path.join(logdir, name)
        os.replace(os.path.join(staging, name), path)
    except BaseException:
        shutil.rmtree(logdir if created else staging, ignore_errors=True)
        raise
    with contextlib.suppress(OSError):
        os.rmdir(staging)
    return path


def _write_events(trace: Trace, folder: str) -> list[str]:
    """Writes the events file into the empty `folder`; returns the names in it (one)."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(folder, filename_suffix=EVENTS_SUFFIX)
    try:
        with writer.as_default():
            for tag, name, scope in scalar_tags(trace):
                steps, values = trace.scalars(name, scope)
                for step, value in zip(steps.tolist(), values.tolist()):
                    tf.summary.scalar(tag, value, step=step)
        writer.flush()
    finally:
        writer.close()
    return os.listdir(folder)
