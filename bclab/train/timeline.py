"""The timeline of one step: device timestamps taken after each phase, turned into events.

While the step's Python body runs, `Timeline.stamp(phase, after)` adds a `tf.timestamp()` that
runs once `after`'s values exist (a control dependency), so a compiled step stamps every call
although its Python ran once. TensorFlow may overlap independent ops, so each phase is drawn from
the previous phase's end to its own, never with a negative length. XLA has no timestamp op: a
jit-compiled step stamps nothing inside, and its timeline holds its two calls, timed on the host.

An event is `{"phase", "start", "duration", "detail"}`, with `start` in seconds since the epoch
(`time.time()`) so that the caller can merge its host phases.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

START = "start"
XLA_STEP = "XLA step (forward, loss, gradients, apply_gradients)"

_DETAILS = {
    "forward": "model(x, training=True): the rest of the forward pass, matmuls/convs with Wb, BatchNorm, ReLU",
    "loss": "squared hinge on +-1 targets",
    "gradients": "tape.gradient(loss, W): dC/dWb handed to W (straight-through)",
    "scale_and_clip": "end of apply_gradients: other constraints, then BinaryConnectOptimizer's "
    "W <- clip(W + W_LR_scale * (W_new - W), -H, H) for binary kernels",
    "summaries": "histograms, counts and norms computed on the device",
}
_BINARIZE = "binarize "
_UPDATE_STEP = ".update_step "


def replicated_phase(replicas: int) -> str:
    """The one phase of a data-parallel step: its replicas' timestamps would interleave."""
    return f"distributed step on {replicas} replicas (forward, loss, gradients, all-reduce, apply_gradients)"


def binarize_phase(layer_name: str) -> str:
    return f"{_BINARIZE}{layer_name}"


def update_step_phase(optimizer_name: str, variable_name: str) -> str:
    return f"{optimizer_name}{_UPDATE_STEP}{variable_name}"


class Timeline:
    """The `(phase, timestamp)` pairs of the step being traced (or run eagerly)."""

    def __init__(self):
        self.phase_names: list[str] = []  # of the last step traced: a compiled step stamps in this order
        self._stamps: list | None = None  # a list while a step records

    def begin(self, recording: bool = True) -> None:
        """Start a step's stamps; `recording=False` (XLA) makes `stamp` a no-op."""
        self._stamps = [] if recording else None

    def stamp(self, phase: str, after: Any = None) -> None:
        """A device timestamp taken once the tensors in `after` (a nest) are computed."""
        if self._stamps is None:
            return
        deps = [tf.identity(t) for t in tf.nest.flatten(after)] if after is not None else []
        with tf.control_dependencies(deps):
            self._stamps.append((phase, tf.timestamp()))

    def end(self):
        """The step's timestamps as one float64 tensor (empty when not recording)."""
        stamps, self._stamps = self._stamps or [], None
        self.phase_names = [name for name, _ in stamps]
        return tf.stack([t for _, t in stamps]) if stamps else tf.zeros([0], tf.float64)


def event(phase: str, start: float, end: float, detail: str) -> dict[str, Any]:
    return {"phase": phase, "start": start, "duration": max(0.0, end - start), "detail": detail}


def step_events(phase_names: list[str], stamps: list[float], call_start: float, eager: bool) -> list[dict[str, Any]]:
    """The events of one call: each phase from the previous phase's end (the call's start
    for the first) to its own timestamp."""
    mode = "eager: Python runs every call" if eager else "compiled: Python ran only while tracing"
    events, previous = [], call_start
    for name, t in zip(phase_names, stamps):
        if name == START:
            events.append(event("enter step function", previous, t, mode))
        else:
            events.append(event(name, previous, t, phase_detail(name)))
        previous = max(previous, t)
    return events


def phase_detail(phase: str) -> str:
    """What a phase does, for the timeline's hover text."""
    if phase.startswith(_BINARIZE):
        return "Wb = binarization(W, H, ...) for this layer's kernel, inside its forward pass"
    if _UPDATE_STEP in phase:
        return (
            "apply_gradients -> apply -> update_step for this variable: the Keras 3 successor of "
            "Keras 2's get_updates, whose ops also ran every step"
        )
    return _DETAILS.get(phase, "")
