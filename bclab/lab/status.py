"""The lab's status line: the run's state, the first NaN/Inf, a non-finite stop, errors and messages, as HTML.

Every failure the lab catches ends up here as one line (`describe`), so a user who never opens
the kernel log still sees it. A run stopped at a NaN/Inf (`RunConfig.on_nonfinite="stop"`) gets
its own line, apart from other errors: "Training stopped at a NaN/Inf: step 3: loss is NaN ...".
"""

from __future__ import annotations

import html
from typing import Any

from bclab.trace import Trace

__all__ = ["BUTTON_HINTS", "describe", "hint_html", "status_html"]

ERROR_COLOR, MESSAGE_COLOR = "#c00", "#444"


def describe(error: BaseException) -> str:
    """An exception as one line: its message, after its type unless it is a plain ValueError or OSError."""
    text = str(error)
    if isinstance(error, (ValueError, OSError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _line(text: str, color: str = ERROR_COLOR, css_class: str = "") -> str:
    attribute = f' class="{css_class}"' if css_class else ""
    return f'<span style="color:{color}"{attribute}>{html.escape(text)}</span>'


# What each button does next, by the run's state (the lab shows it under the status line).
BUTTON_HINTS = {
    "idle": "<b>Start</b> trains a new run with the settings · <b>Step</b> builds it and trains one batch",
    "building": "<b>Pause</b> holds the run after this batch · <b>Stop</b> ends it · <b>Reset</b> ends it and clears the views",
    "running": "<b>Pause</b> holds the run after this batch (Resume continues) · <b>Stop</b> ends the run, "
    "the views stay · <b>Reset</b> ends it and clears the views",
    "paused": "<b>Resume</b> continues · <b>Step</b> trains one more batch · <b>Stop</b> ends the run",
    "stopped": "the run has ended · <b>New run</b> starts over with the settings · <b>Reset</b> clears the views",
    "finished": "the run is complete · <b>New run</b> starts over with the settings · <b>Reset</b> clears the views",
    "error": "<b>New run</b> starts over with the settings · <b>Reset</b> clears the views",
}


def _epochs(trainer: Any) -> int:
    """The run's epochs: a Trainer's config, or a ModelRun's own (its config is None)."""
    config = getattr(trainer, "config", None)
    return config.epochs if config is not None else trainer.epochs


def status_html(
    state: str, error: str | None, trainer: Any, loaded: Trace | None, trace: Trace | None, message: tuple[str, bool]
) -> str:
    """The status line's HTML.

    Steps are numbered as in the views (the trace's step numbers, from 0): "last step 422" is
    the 423rd batch. The count of batches trained is given apart, in words.

    Args:
        state: The runner's state; `error`: its error text ("TypeName: message") or None.
        trainer: The runner's Trainer (or ModelRun) or None; `loaded`: a trace loaded from a file, or None.
        trace: The trace on show (None when there is none).
        message: The lab's last message and whether it reports an error.
    """
    parts = [
        f"device: <b>{html.escape(trainer.device if trainer is not None else 'chosen at start')}</b>",
        f"state: <b>{state}</b>",
    ]
    if trainer is not None:
        done = trainer.global_step
        if done:
            parts.append(f"last step <b>{done - 1}</b>")
        parts.append(f"{done:,} of {trainer.steps_total:,} batches trained")
        parts.append(f"epoch {trainer.epoch}/{_epochs(trainer)}")
        if trainer.history:
            parts.append(f"val error {trainer.history[-1].val_error:.2f}%")
    elif loaded is not None:
        last = loaded.last_step
        parts.append(f"loaded trace: {len(loaded)} steps" + ("" if last is None else f", last step {last}"))
    lines = [" &middot; ".join(parts)]
    bad = trace.first_nonfinite() if trace is not None else None
    if bad is not None:
        where = f" in {bad['layer']}" if bad.get("layer") else ""
        lines.append(_line(f"{bad['name']}{where} first became NaN or Inf at step {bad['step']}."))
    nonfinite = getattr(trainer, "nonfinite", None)  # the Trainer's NonFiniteError, once one happened
    if state == "error" and error and nonfinite is not None and error.startswith(type(nonfinite).__name__):
        text = f'Training stopped at a NaN/Inf: {nonfinite}. (New run or Reset to start over; on_nonfinite="continue" trains on.)'
        lines.append(_line(text, css_class="bclab-nonfinite"))
    elif error:
        lines.append(_line(f"Error: {error} (New run or Reset to start over.)"))
    if message[0]:
        lines.append(_line(message[0], ERROR_COLOR if message[1] else MESSAGE_COLOR))
    return "<br>".join(lines)


def hint_html(state: str) -> str:
    """What each button will do in `state`, in one grey line."""
    return f'<span style="color:{MESSAGE_COLOR};font-size:90%">{BUTTON_HINTS.get(state, "")}</span>'
