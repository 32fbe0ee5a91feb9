"""What `bclab train` writes at the end of a run, in strict JSON, and the signals around it.

Files in `--out`: `config.json`, `metrics.json` (one object per finished epoch), `metrics.csv`
(the same rows), `result.json` and `model.keras`. JSON is written with `allow_nan=False`: a
missing or non-finite number (e.g. the validation error without a validation set) is `null`;
in `metrics.csv` its cell is empty. `result.json` says how the run ended: `status` is
"completed", "interrupted" (Ctrl-C or SIGTERM; `interrupted` is true too) or "nonfinite" (with
`message` naming the step, the quantity and the layer or variable), and `selected_by` says how
the reported epoch was chosen (`bclab.train.trainer.best_epoch`).

Signals: while training, SIGINT and SIGTERM ask to stop after the current step; while writing,
they are recorded and acted on only once every output is complete.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bclab.atomic import finite_or_none, strict_json
from bclab.cli.paths import Outputs, commit, staging_folder

COMPLETED, INTERRUPTED, NONFINITE = "completed", "interrupted", "nonfinite"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def dumps(value: Any) -> str:
    """Strict JSON: NaN/Inf become null, and `allow_nan=False` guarantees none is left."""
    return strict_json(value, indent=2)


def result_summary(trainer, status: str, message: str | None) -> dict[str, Any]:
    """The content of result.json."""
    best = trainer.best()
    no_validation = trainer.config.n_validation == 0
    return {
        "status": status,
        "message": message,
        "best_epoch": best.epoch if best else None,
        "best_val_error": best.val_error if best else None,
        "test_error_at_best_val": best.test_error if best else None,
        "selected_by": "last epoch (no validation set)"
        if no_validation
        else "lowest validation error (ties: the later epoch; a missing error counts as the worst)",
        "epochs_completed": len(trainer.history),
        "steps_completed": trainer.global_step,
        "interrupted": status == INTERRUPTED,
        "device": trainer.device,
    }


def write_run_files(trainer, folder: Path, status: str, message: str | None) -> None:
    """config.json, metrics.json, metrics.csv, result.json and model.keras into `folder`."""
    (folder / "config.json").write_text(dumps(trainer.config.to_dict()))
    history = trainer.history_dicts()
    (folder / "metrics.json").write_text(dumps(history))
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]) if history else ["epoch"])
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in finite_or_none(row).items()} for row in history])
    (folder / "result.json").write_text(dumps(result_summary(trainer, status, message)))
    trainer.model.save(folder / "model.keras")


def write_outputs(trainer, outputs: Outputs, status: str, message: str | None) -> dict[str, Path]:
    """Every output, staged and then renamed into place (`bclab.cli.paths`); where each went."""
    run_folder = staging_folder(outputs.out)
    staging, moves = [run_folder], []  # moves: (flag, staged, target), committed in order
    try:
        write_run_files(trainer, run_folder, status, message)
        if trainer.trace is not None and outputs.trace is not None:
            staged = _staged_path(outputs, outputs.trace, run_folder, staging, moves, "--trace")
            trainer.trace.save(staged)
        if trainer.trace is not None and outputs.tensorboard is not None:
            from bclab.trace.tensorboard import export_scalars

            staged = _staged_path(outputs, outputs.tensorboard, run_folder, staging, moves, "--tensorboard")
            staged.mkdir(parents=True, exist_ok=True)
            export_scalars(trainer.trace, staged)
        moves.append(("--out", run_folder, outputs.out))
        return {flag: commit(staged, target) for flag, staged, target in moves}
    finally:
        for folder in staging:
            shutil.rmtree(folder, ignore_errors=True)


def _staged_path(outputs: Outputs, target: Path, run_folder: Path, staging: list, moves: list, flag: str) -> Path:
    """Where to write `target` now: inside the staged run folder when it lies in --out, else in
    a staging folder of its own, to be committed."""
    if outputs.inside_out(target):
        staged = run_folder / target.relative_to(outputs.out)
        staged.parent.mkdir(parents=True, exist_ok=True)
        return staged
    folder = staging_folder(target)
    staging.append(folder)
    staged = folder / (target.name or "output")
    moves.append((flag, staged, target))
    return staged


class SignalLog:
    """The stop signals received (`received`, their numbers); `announce` is written to stderr
    when one arrives (None: nothing)."""

    def __init__(self, announce: str | None = None):
        self.received: list[int] = []
        self.announce = announce

    def record(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        if self.announce:  # os.write: safe even while a print is under way
            os.write(2, f"\n{self.announce} ({signal.Signals(signum).name})\n".encode())


@contextlib.contextmanager
def recorded_signals(announce: str | None = None) -> Iterator[SignalLog]:
    """Inside, SIGINT and SIGTERM are only recorded in the yielded `SignalLog`; the previous
    handlers are restored after. In a thread other than the main one, where Python cannot set
    handlers, nothing changes."""
    log = SignalLog(announce)
    if threading.current_thread() is not threading.main_thread():
        yield log
        return
    previous = {signum: signal.signal(signum, log.record) for signum in STOP_SIGNALS}
    try:
        yield log
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt as Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
