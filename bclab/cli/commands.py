"""`bclab train`, `bclab trace summary|tensorboard` and `bclab export`.

`bclab train` checks everything it can before TensorFlow is imported (pre-flight): the flags
and their combinations (`bclab.cli.arguments`), the output paths (`bclab.cli.paths`), that
TensorBoard can write when `--tensorboard` is given, the data with every size the config
asks of it (`bclab.train.plan`), and that Keras runs on TensorFlow. Then it trains, and writes what was completed when the run ends,
is interrupted or stops at a NaN/Inf (`bclab.cli.outputs`); exit codes: `EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import time
from pathlib import Path

from bclab.cli.arguments import config_from_args
from bclab.cli.boundary import EXIT_INTERRUPTED, EXIT_NONFINITE, EXIT_OK, UserError, one_line, user_errors
from bclab.cli.outputs import (
    COMPLETED,
    INTERRUPTED,
    NONFINITE,
    recorded_signals,
    sigterm_as_interrupt,
    write_outputs,
)
from bclab.cli.paths import Outputs, check_output_file, check_outputs, commit, remove_stale, staging_folder
from bclab.config import RunConfig
from bclab.validation import invalid_value

STOPPING = "bclab: stopping after the current step; then writing what was completed"
WRITING = "bclab: finishing the outputs first"


def train(args: argparse.Namespace) -> int:
    """`bclab train`; SIGTERM acts as Ctrl-C throughout."""
    with sigterm_as_interrupt():
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    config, outputs, dataset = preflight(args)
    from bclab.train.trainer import Trainer  # TensorFlow: only once every check has passed

    trainer = Trainer(config, dataset)
    logging.getLogger("bclab").info("device: %s", trainer.device)
    say(
        f"bclab: device {trainer.device}; data {trainer.dataset.source}; "
        f"{trainer.steps_total} steps ({config.epochs} epochs x {trainer.batches_per_epoch} batches)"
    )
    with recorded_signals(STOPPING) as signals:
        status, message = run(trainer, progress_bar=not args.quiet, stop=signals.received)
        signals.announce, before_writing = WRITING, len(signals.received)
        try:
            written = write_outputs(trainer, outputs, status, message)
        except OSError as error:  # the disk, not the run: a full disk, a folder removed meanwhile
            raise UserError(f"writing the outputs failed: {one_line(error)}") from error
    during_write = len(signals.received) > before_writing
    for flag, target in (("--out", outputs.out), ("--trace", outputs.trace), ("--tensorboard", outputs.tensorboard)):
        if flag in written and written[flag] != target:
            say(f"bclab: {flag} {target} appeared during the run; wrote {written[flag]} instead")
    return _report(trainer, written["--out"], status, message, during_write)


def preflight(args: argparse.Namespace) -> tuple[RunConfig, Outputs, object]:
    """The config, the checked outputs and the run's data; a `UserError` for anything wrong."""
    config = config_from_args(args)
    out = args.out or _default_out(config)
    with user_errors():
        outputs = check_outputs(out, args.trace, args.tensorboard)
    dataset = load_checked_data(config)
    if args.tensorboard:  # last: it imports TensorFlow
        check_tensorboard("--tensorboard", args.tensorboard)
    check_backend("bclab train")  # last too: it imports Keras, hence TensorFlow
    parents = [path.parent for path in (outputs.out, outputs.trace, outputs.tensorboard) if path is not None]
    for entry in remove_stale(parents):
        logging.getLogger("bclab").info("removed %s, left by a run that was killed", entry)
    return config, outputs, dataset


def check_backend(what: str) -> None:
    """A `UserError` unless Keras runs on TensorFlow (the Trainer and the trace need it)."""
    from bclab.train.backend import BackendError, require_tensorflow

    try:
        require_tensorflow(what)
    except BackendError as error:
        raise UserError(one_line(error)) from error


def _default_out(config: RunConfig) -> str:
    base = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.dataset}-{config.mode}"
    candidates = [base, *(base.with_name(f"{base.name}-{n}") for n in range(2, 100))]
    return str(next((c for c in candidates if not c.exists()), base))


def load_checked_data(config: RunConfig):
    """The data set, loaded and checked against the config before any TensorFlow op."""
    from bclab.train.plan import load_data, prepare_data

    path = config.data_path
    flag, value = ("--data-path", path) if path else ("--dataset", config.dataset)
    with user_errors(flag, value):
        wanted = {"npz": Path(path).is_file(), "idx": Path(path).is_dir()} if path else {}
        if path and not wanted[config.dataset]:
            expected = "a file ending in .npz (--dataset npz) or a folder of IDX files (--dataset idx)"
            raise invalid_value("--data-path", path, f"{expected}; found {_what_is(Path(path))}")
        dataset = load_data(config)
    with user_errors():
        return prepare_data(config, dataset)[0]


def check_tensorboard(flag: str, logdir: str) -> None:
    """TensorBoard can write events (`bclab.trace.tensorboard.check_available`), else a `UserError`."""
    from bclab.trace.tensorboard import check_available

    try:
        check_available()
    except (ImportError, RuntimeError) as error:
        message = one_line(error)
        fix = "" if "pip install" in message else " (pip install tensorboard)"
        raise UserError(f"{flag} {logdir!r}: TensorBoard cannot write events: {message}{fix}") from error


def run(trainer, progress_bar: bool, stop: list[int]) -> tuple[str, str | None]:
    """Trains to the end, until a stop signal or Ctrl-C (after the current step) or a NaN/Inf;
    returns (status, message)."""
    import keras

    from bclab.train.trainer import NonFiniteError

    bar = keras.utils.Progbar(trainer.steps_total, stateful_metrics=["epoch", "val_err"]) if progress_bar else None
    last: dict[str, float] = {}
    try:
        while not trainer.done and not stop:
            result = trainer.step()
            if result is not None:
                last = {"epoch": result.epoch, "val_err": result.val_error}
                val = "none" if math.isnan(result.val_error) else f"{result.val_error:.2f} %"
                say(
                    f"\nepoch {result.epoch}: train loss {result.train_loss:.4f}, val error {val}, "
                    f"test error {result.test_error:.2f} %, lr {result.lr:.3g}"
                )
            if bar is not None:
                bar.update(trainer.global_step, values=list(last.items()))
    except KeyboardInterrupt:
        return INTERRUPTED, "interrupted (Ctrl-C)"
    except NonFiniteError as error:
        return NONFINITE, str(error)
    if stop:
        return INTERRUPTED, f"interrupted ({' and '.join(sorted({_signal_name(s) for s in stop}))})"
    return COMPLETED, None


def _signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _report(trainer, out: Path, status: str, message: str | None, signalled_while_writing: bool) -> int:
    best = trainer.best()
    if best is not None:
        val = "no validation set" if trainer.config.n_validation == 0 else f"val {best.val_error:.2f} %"
        say(f"bclab: test error {best.test_error:.2f} % at the reported epoch {best.epoch} ({val})")
    if status == NONFINITE:
        say(f"bclab: stopped: {message}; wrote what was completed to {out}")
        return EXIT_NONFINITE
    if status == INTERRUPTED or signalled_while_writing:
        what = "the outputs are complete" if status == COMPLETED else "wrote what was completed"
        say(f"bclab: interrupted; {what} to {out}")
        return EXIT_INTERRUPTED
    say(f"bclab: written to {out}")
    return EXIT_OK


def trace_command(args: argparse.Namespace) -> int:
    """`bclab trace summary PATH` and `bclab trace tensorboard PATH LOGDIR` (LOGDIR: new or empty)."""
    from bclab.trace import Trace

    path = args.path
    if args.trace_command == "tensorboard":
        with user_errors("logdir", args.logdir):
            logdir = check_outputs(args.logdir, None, None, out_flag="logdir").out
        check_tensorboard("logdir", args.logdir)
    with user_errors("trace file", path):
        if not Path(path).is_file():
            raise invalid_value("path", path, f"a trace file saved by bclab; found {_what_is(Path(path))}")
        trace = Trace.load(path)
    if args.trace_command == "summary":
        print(trace.summary())
        return EXIT_OK
    from bclab.trace.tensorboard import export_scalars

    folder = staging_folder(logdir)
    try:
        export_scalars(trace, folder)
        written = commit(folder, logdir)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"bclab: wrote TensorBoard events to {written}")
    return EXIT_OK


def export_command(args: argparse.Namespace) -> int:
    """`bclab export MODEL OUT`: `bclab.export_packed` of a saved model, then both sizes and their ratio."""
    source = Path(args.model)
    with user_errors("model", args.model):
        if not source.is_file():
            raise invalid_value("model", args.model, f"a model file saved by Keras (.keras); found {_what_is(source)}")
        target = check_output_file("out", args.out)
    import keras

    from bclab.export.keras_model import export_packed, stochastic_layers

    with user_errors("model", args.model):
        model = keras.models.load_model(source, compile=False)
        stochastic = stochastic_layers(model)
    if stochastic and not args.as_deterministic:
        raise UserError(
            f"model {args.model!r} has stochastic binary layers {stochastic}: at test time they use the "
            "real-valued W (the reference's semantics), which 1 bit cannot hold; --as-deterministic packs "
            "H*sign(W) and rebuilds them as deterministic layers (their predictions then differ)"
        )
    with sigterm_as_interrupt():
        folder = staging_folder(target)
        try:
            with user_errors("model", args.model):
                summary = export_packed(model, folder / target.name, as_deterministic=args.as_deterministic)
            written = commit(folder / target.name, target)
        except OSError as error:  # the disk: a full disk, a folder removed meanwhile
            raise UserError(f"writing {str(target)!r} failed: {one_line(error)}") from error
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(export_report(summary, source.stat().st_size, source.name, written))
    return EXIT_OK


def export_report(summary, model_bytes: int, model_name: str, written: Path) -> str:
    """The lines `bclab export` prints: what was packed, both file sizes, the ratios."""
    converted = f"; packed as deterministic: {list(summary.as_deterministic)}" if summary.as_deterministic else ""
    return "\n".join(
        [
            f"bclab: wrote {written}: {len(summary.packed_layers)} binary kernels at 1 bit per weight "
            f"({summary.binary_weights:,} weights), {summary.float_values:,} other values as floats{converted}",
            f"  {model_name:<16} {model_bytes:>14,} bytes",
            f"  {written.name:<16} {summary.file_bytes:>14,} bytes  ({model_bytes / summary.file_bytes:.1f}x smaller)",
            f"  {'weights alone':<16} {summary.weights_bytes:>14,} bytes  "
            f"(model.weights in memory; {summary.weights_ratio:.1f}x the .bclab file)",
        ]
    )


def _what_is(path: Path) -> str:
    if not path.exists():
        return "nothing"
    return "a folder" if path.is_dir() else ("a file" if path.is_file() else "a device or a pipe")


def say(text: str) -> None:
    print(text, file=sys.stderr)
