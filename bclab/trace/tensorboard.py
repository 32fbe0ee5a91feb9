"""Export a trace's scalar series to TensorBoard event files (`tf.summary`).

Tags: model-level scalars (counters and the epoch included) go under `model/<name>`, binary
layers' under `<layer>/<name>` and other parameters' under `params/<param>/<name>`; the x axis is
the training step. TensorFlow is imported only when exporting, so the trace tier stays NumPy-only.
"""

from __future__ import annotations

import os

from bclab.trace.store import Trace

MODEL_TAG = "model"  # the tag prefix of model-level scalars
PARAMS_TAG = "params"  # the tag prefix of non-binary parameters' scalars


def scalar_tags(trace: Trace) -> list[tuple[str, str, str | None]]:
    """`(tag, name, scope)` of every scalar series, `scope` as `Trace.scalars` takes it."""
    tags = [(f"{MODEL_TAG}/{name}", name, None) for name in trace.scalar_names()]
    tags += [(f"{layer}/{name}", name, layer) for layer in trace.layer_names for name in trace.scalar_names(layer)]
    tags += [(f"{PARAMS_TAG}/{p}/{name}", name, p) for p in trace.params for name in trace.scalar_names(p)]
    return tags


def export_scalars(trace: Trace, logdir: str | os.PathLike) -> None:
    """Write every scalar series of `trace` as TensorBoard events into `logdir`."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for tag, name, scope in scalar_tags(trace):
            steps, values = trace.scalars(name, scope)
            for step, value in zip(steps.tolist(), values.tolist()):
                tf.summary.scalar(tag, value, step=step)
    writer.flush()
    writer.close()
