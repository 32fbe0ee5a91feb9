"""The headless entry point: `bclab train` and `bclab trace summary|tensorboard`.

`bclab train` writes into `--out` only when the run ends: it works in a temporary
folder beside it and renames it, so an error leaves nothing half-written. Ctrl-C stops
after the current step and still writes what was completed (marked `interrupted`).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bclab.config import ARCHITECTURES, MODES, OPTIMIZERS, SIZES, TRACE_LEVELS, RunConfig
from bclab.data import DATASETS, FILE_SOURCES
from bclab.validation import check_glorot_or_positive, invalid_value

_FIELDS = (
    "dataset",
    "data_path",
    "n_train",
    "n_validation",
    "n_test",
    "architecture",
    "size",
    "hidden_units",
    "hidden_layers",
    "mode",
    "H",
    "W_LR_scale",
    "optimizer",
    "lr_start",
    "lr_end",
    "batch_size",
    "epochs",
    "seed",
    "trace_sample",
    "jit_compile",
)


def _text_argument(check: Callable[[str, str], Any], name: str) -> Callable[[str], Any]:
    """An argparse `type` that parses and checks the text with `check`; its error names the flag."""

    def parse(text: str) -> Any:
        try:
            return check(name, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bclab", description="BinaryConnect on Keras 3: train and inspect runs.")
    commands = parser.add_subparsers(dest="command", required=True)

    # An option left out is absent from the namespace, so the config's value stands.
    train = commands.add_parser(
        "train",
        help="train a BinaryConnect network and write metrics, model and trace",
        argument_default=argparse.SUPPRESS,
    )
    train.add_argument("--recipe", choices=("mnist", "cifar10", "svhn"), default=None, help="start from a recipe")
    train.add_argument("--dataset", choices=DATASETS + FILE_SOURCES, help="default: mnist-5k (embedded)")
    train.add_argument("--data-path", help="a .npz file (dataset npz) or a folder of IDX files (dataset idx)")
    train.add_argument("--n-train", type=int, help="keep the first N training examples")
    train.add_argument("--n-validation", type=int, help="the last N training examples validate")
    train.add_argument("--n-test", type=int, help="keep the first N test examples")
    train.add_argument("--architecture", choices=ARCHITECTURES)
    train.add_argument("--size", choices=SIZES, help="paper, small or tiny hidden widths")
    train.add_argument("--hidden-units", type=int, help="MLP hidden width (overrides --size)")
    train.add_argument("--hidden-layers", type=int)
    train.add_argument("--mode", choices=MODES, help="deterministic, stochastic or float (no binarization)")
    glorot_or_none = partial(check_glorot_or_positive, allow_none=True)
    train.add_argument("--H", type=_text_argument(check_glorot_or_positive, "H"), help='a number or "glorot"')
    train.add_argument(
        "--W-LR-scale", type=_text_argument(glorot_or_none, "W_LR_scale"), help='a number, "glorot" or "none"'
    )
    train.add_argument("--optimizer", choices=OPTIMIZERS)
    train.add_argument("--lr-start", type=float)
    train.add_argument("--lr-end", type=float)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--epochs", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--trace", metavar="PATH", default=None, help="save the step trace to PATH (.npz)")
    train.add_argument("--trace-level", choices=TRACE_LEVELS[1:], default="full")
    train.add_argument("--trace-sample", type=int, help="tracked weights per layer (default 256)")
    train.add_argument("--tensorboard", metavar="DIR", default=None, help="also export the scalars to TensorBoard")
    train.add_argument("--jit-compile", action="store_true", help="compile the step with XLA")
    train.add_argument("--config", metavar="JSON", default=None, help="start from a saved config.json")
    train.add_argument("--out", default=None, help="output folder (default runs/<time>-<dataset>-<mode>)")
    train.add_argument("--quiet", action="store_true", default=False, help="no progress bar")

    trace = commands.add_parser("trace", help="inspect a saved trace")
    trace_commands = trace.add_subparsers(dest="trace_command", required=True)
    summary = trace_commands.add_parser("summary", help="print a readable summary of a saved trace")
    summary.add_argument("path")
    board = trace_commands.add_parser("tensorboard", help="export a saved trace's scalars to TensorBoard")
    board.add_argument("path")
    board.add_argument("logdir")
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the arguments describe (validated by RunConfig)."""
    if args.config:
        config = RunConfig.from_json(Path(args.config).read_text())
    elif args.recipe:
        config = RunConfig.recipe(args.recipe, size=getattr(args, "size", "paper"))
    else:
        config = RunConfig()
    changes: dict[str, Any] = {name: getattr(args, name) for name in _FIELDS if hasattr(args, name)}
    if changes.get("data_path") and "dataset" not in changes:
        changes["dataset"] = "npz" if str(changes["data_path"]).endswith(".npz") else "idx"
    changes["trace"] = args.trace_level if (args.trace or args.tensorboard) else "off"
    return config.replace(**changes)


def _check_paths(args: argparse.Namespace, out: Path) -> None:
    """Refuses, before training, outputs that would overwrite something."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise invalid_value("--out", str(out), "a new or empty folder")
    if args.trace and Path(args.trace).is_dir():
        raise invalid_value("--trace", args.trace, "a file path, not a folder")
    if args.tensorboard and Path(args.tensorboard).is_file():
        raise invalid_value("--tensorboard", args.tensorboard, "a folder path, not a file")


def train(args: argparse.Namespace) -> int:
    """`bclab train`: 0 when done, 130 when interrupted (what was completed is written)."""
    config = config_from_args(args)
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{config.dataset}-{config.mode}")
    _check_paths(args, out)

    from bclab.train.trainer import Trainer

    trainer = Trainer(config)
    logging.getLogger("bclab").info("device: %s", trainer.device)
    _say(
        f"bclab: device {trainer.device}; data {trainer.dataset.source}; "
        f"{trainer.steps_total} steps ({config.epochs} epochs x {trainer.batches_per_epoch} batches)"
    )
    interrupted = not _run(trainer, progress_bar=not args.quiet)
    _write_outputs(trainer, out, interrupted)
    if args.trace and trainer.trace is not None:
        trainer.trace.save(args.trace)
    if args.tensorboard and trainer.trace is not None:
        from bclab.trace.tensorboard import export_scalars

        export_scalars(trainer.trace, args.tensorboard)
    best = trainer.best()
    if best is not None:
        _say(
            f"bclab: test error {best.test_error:.2f} % at the best validation epoch {best.epoch} "
            f"(val {best.val_error:.2f} %); written to {out}"
        )
    return 130 if interrupted else 0


def _run(trainer, progress_bar: bool) -> bool:
    """Trains to the end (True) or until Ctrl-C (False, after the current step)."""
    import keras

    bar = keras.utils.Progbar(trainer.steps_total, stateful_metrics=["epoch", "val_err"]) if progress_bar else None
    last: dict[str, float] = {}
    try:
        while not trainer.done:
            result = trainer.step()
            if result is not None:
                last = {"epoch": result.epoch, "val_err": result.val_error}
                _say(
                    f"\nepoch {result.epoch}: train loss {result.train_loss:.4f}, val error {result.val_error:.2f} %, "
                    f"test error {result.test_error:.2f} %, lr {result.lr:.3g}"
                )
            if bar is not None:
                bar.update(trainer.global_step, values=list(last.items()))
    except KeyboardInterrupt:
        _say("\nbclab: interrupted; writing what was completed")
        return False
    return True


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _write_outputs(trainer, out: Path, interrupted: bool) -> None:
    """Write config, metrics (JSON and CSV), result and model into `out`, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        (work / "config.json").write_text(trainer.config.to_json())
        history = trainer.history_dicts()
        (work / "metrics.json").write_text(json.dumps(history, indent=2))
        with open(work / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(history[0]) if history else ["epoch"])
            writer.writeheader()
            writer.writerows(history)
        best = trainer.best()
        result = {
            "best_epoch": best.epoch if best else None,
            "best_val_error": best.val_error if best else None,
            "test_error_at_best_val": best.test_error if best else None,
            "epochs_completed": len(history),
            "steps_completed": trainer.global_step,
            "interrupted": interrupted,
            "device": trainer.device,
        }
        (work / "result.json").write_text(json.dumps(result, indent=2))
        trainer.model.save(work / "model.keras")
        work.chmod(0o755)  # mkdtemp makes it private
        if out.exists():
            out.rmdir()  # checked empty before training
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def trace_command(args: argparse.Namespace) -> int:
    from bclab.trace import Trace

    trace = Trace.load(args.path)
    if args.trace_command == "summary":
        print(trace.summary())
    else:
        from bclab.trace.tensorboard import export_scalars

        export_scalars(trace, args.logdir)
        print(f"bclab: wrote TensorBoard events to {args.logdir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="bclab: %(message)s")
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return train(args)
        return trace_command(args)
    except (ValueError, FileNotFoundError, RuntimeError, LookupError) as error:
        print(f"bclab: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
