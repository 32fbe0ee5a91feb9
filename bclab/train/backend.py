"""The TensorFlow tier's one precondition: Keras runs on its TensorFlow backend.

The layers and the optimizer (`bclab.core`) are written in `keras.ops` and run on any backend;
the instrumented step, the Trainer, the `fit` callback and the lab read TensorFlow graphs and
variables, so they check the backend first and say what to do instead of failing deep inside.
"""

from __future__ import annotations


class BackendError(RuntimeError):
    """Raised when a TensorFlow-only part of bclab runs on another Keras backend."""


def require_tensorflow(what: str) -> None:
    """Raise `BackendError` naming `what` unless `keras.backend.backend()` is "tensorflow"."""
    import keras  # here, not at the top: the lab imports this module and loads Keras only on Start

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise BackendError(
            f"{what} needs Keras's TensorFlow backend; this process runs Keras on {backend!r} "
            f"(KERAS_BACKEND={backend}). The layers and BinaryConnectOptimizer train on {backend!r} with "
            "model.fit; for the trace and the lab, start Python with KERAS_BACKEND=tensorflow."
        )
