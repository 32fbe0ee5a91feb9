"""The text of `bclab trace summary PATH` and `Trace.summary()`, built from the trace's public API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bclab.trace.schema import ACCURACY, CLIPPED_FRACTION, EPOCH, FLIP_RATIO, LOSS

if TYPE_CHECKING:  # only for the annotation: bclab.trace.store imports this module
    from bclab.trace.store import Trace


def format_summary(trace: Trace) -> str:
    """Steps, loss and accuracy, each layer's mode and last flip ratio, counters, thinning, memory."""

    def last(name: str, layer: str | None = None, index: int = -1) -> str:
        if name not in trace.scalar_names(layer):
            return "-"
        values = trace.scalars(name, layer)[1]
        return f"{values[index]:.6g}" if len(values) else "-"

    latest = trace.latest_heavy_step()
    lines = [
        f"steps: {len(trace)} appended (last step {trace.last_step}), last epoch: {last(EPOCH)}",
        f"{LOSS}: first {last(LOSS, index=0)}, last {last(LOSS)}; "
        f"{ACCURACY}: first {last(ACCURACY, index=0)}, last {last(ACCURACY)}",
        "layers:",
    ]
    for li in trace.layers:
        mode = ("stochastic binary" if li.stochastic else "deterministic binary") if li.binary else "float"
        lines += [
            f"  {li.name}: shape {tuple(li.shape)}, H {li.H:g}, W_LR_scale {li.W_LR_scale:g}, {mode}",
            f"    last {FLIP_RATIO} {last(FLIP_RATIO, li.name)}, {CLIPPED_FRACTION} "
            f"{last(CLIPPED_FRACTION, li.name)}, {_binary_counts(trace, li.name, latest)} at step {latest}",
        ]
    if trace.params:
        lines.append(f"params: {', '.join(trace.params)}")
    counters = ", ".join(f"{name}={last(name)}" for name in trace.counter_names)
    lines.append(f"counters: {counters or '-'}")
    bad = trace.first_nonfinite()
    lines.append(
        "first non-finite: "
        + ("none" if bad is None else f"step {bad['step']}, {bad['name']} ({bad['layer'] or 'model'})")
    )
    lines.append(
        f"thinning: {len(trace.steps())} heavy steps retained (stride {trace.heavy_stride}), "
        f"scalar stride {trace.scalar_stride}; memory {trace.memory_bytes() / 2**20:.1f} MiB"
    )
    return "\n".join(lines)


def _binary_counts(trace: Trace, layer: str, step: int | None) -> str:
    """The layer's +H/-H counts at `step` as text (`+H 60 / -H 68`), or "-" if there are none."""
    if step is None:
        return "-"
    try:
        plus, minus = trace.binary_counts(layer, step)
    except LookupError:  # none recorded there, or thinned away since `step` was read
        return "-"
    return f"+H {plus} / -H {minus}"


def format_repr(trace: Trace) -> str:
    """`repr(trace)`: "<bclab Trace: 350 steps (last step 349); layers dense_1, ...; last loss 0.2;
    12.3 MiB; .summary() for more>"."""
    last = trace.last_step
    parts = [f"{len(trace)} steps" + ("" if last is None else f" (last step {last})")]
    parts.append(f"layers {', '.join(trace.layer_names)}")
    losses = trace.scalars(LOSS)[1] if last is not None and LOSS in trace.scalar_names() else ()
    if len(losses):
        parts.append(f"last loss {float(losses[-1]):.4g}")
    parts.append(f"{trace.memory_bytes() / 2**20:.1f} MiB; .summary() for more")
    return f"<bclab Trace: {'; '.join(parts)}>"
