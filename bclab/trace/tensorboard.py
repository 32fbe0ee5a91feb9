"""Export a trace's scalar series to TensorBoard event files (`tf.summary`).

Model-level scalars go under `model/<name>`, binary layers' under
`<layer>/<name>` and other parameters' under `params/<param>/<name>`; the x axis
is the training step.
"""

from __future__ import annotations

import os

from bclab.trace.store import Trace


def export_scalars(trace: Trace, logdir: str | os.PathLike) -> None:
    """Write every scalar series of `trace` as TensorBoard events into `logdir`."""
    import tensorflow as tf

    series = [(f"model/{name}", name, None) for name in trace.scalar_names()]
    series += [(f"{layer}/{name}", name, layer) for layer in trace.layer_names for name in trace.scalar_names(layer)]
    series += [(f"params/{p}/{name}", name, p) for p in trace.params for name in trace.scalar_names(p)]
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for tag, name, scope in series:
            steps, values = trace.scalars(name, scope)
            for step, value in zip(steps.tolist(), values.tolist()):
                tf.summary.scalar(tag, value, step=step)
    writer.flush()
    writer.close()
