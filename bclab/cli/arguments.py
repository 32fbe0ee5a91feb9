"""`bclab`'s flags, and the RunConfig they describe.

Rules for combining flags (a combination that one flag would silently override is an error):
`--config` starts from a saved config.json and cannot be combined with `--recipe`; any other
flag then changes one field. `--data-path` goes with `--dataset npz` or `idx` (inferred from the
path when `--dataset` is not given: a name ending in `.npz`, any case, is npz, else idx); with
a built-in `--dataset` it is an error. `--trace-level` needs `--trace` or `--tensorboard`;
`--hidden-units`/`--hidden-layers` need `--architecture mlp`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from bclab.cli.boundary import EXIT_USER_ERROR, UserError, user_errors
from bclab.config import ARCHITECTURES, MODES, ON_NONFINITE, OPTIMIZERS, SIZES, TRACE_LEVELS, RunConfig
from bclab.data import DATASETS, FILE_SOURCES
from bclab.validation import check_glorot_or_positive, invalid_value

# RunConfig fields that have a flag of the same name (`--n-train` -> n_train).
FIELDS = (
    "dataset",
    "data_path",
    "n_train",
    "n_validation",
    "n_test",
    "num_classes",
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
    "on_nonfinite",
    "devices",
)
MAX_CONFIG_BYTES = 1 << 20  # a config.json is about 1 KB; anything this big is not one

EXIT_CODES = """exit codes: 0 done; 1 internal error (a bug: --debug shows the traceback); 2 bad input
(one line names the flag or file, nothing is written); 3 stopped at a NaN/Inf (--on-nonfinite
stop): what was completed is written, result.json says "status": "nonfinite"; 130 interrupted
(Ctrl-C or SIGTERM): what was completed is written, marked "interrupted"."""

OUTPUTS = """outputs: --out, --trace and --tensorboard must not exist yet (an empty folder is
accepted for --out and --tensorboard); missing parent folders are created. --trace and
--tensorboard may lie inside --out. Everything is written when the run ends, each output
atomically (hidden .bclab-<pid>-* names while writing; those of dead runs are removed by the
next run in the same folder). JSON outputs hold null for a missing value (never NaN);
metrics.csv leaves the cell empty."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, `bclab: error: ...` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"bclab: error: {' '.join(message.split())}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def _text_argument(check: Callable[[str, str], Any], name: str) -> Callable[[str], Any]:
    """An argparse `type` that parses and checks the text with `check`; its error names the flag."""

    def parse(text: str) -> Any:
        try:
            return check(name, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def build_parser() -> Parser:
    parser = Parser(prog="bclab", description="BinaryConnect on Keras 3: train and inspect runs.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train",
        help="train a BinaryConnect network and write metrics, model and trace",
        argument_default=argparse.SUPPRESS,  # an option left out is absent, so the config's value stands
        epilog=f"{OUTPUTS}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_train_arguments(train)
    trace = commands.add_parser("trace", help="inspect a saved trace")
    trace_commands = trace.add_subparsers(dest="trace_command", required=True)
    summary = trace_commands.add_parser("summary", help="print a readable summary of a saved trace")
    summary.add_argument("path")
    board = trace_commands.add_parser("tensorboard", help="export a saved trace's scalars to TensorBoard")
    board.add_argument("path")
    board.add_argument("logdir", help="a new or empty folder")
    export = commands.add_parser(
        "export",
        help="pack a saved model's binary kernels to 1 bit per weight (a .bclab file)",
        epilog="OUT must not exist yet (written atomically; missing parent folders are created). "
        "bclab.load_packed(OUT) rebuilds the inference model.\n\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("model", help="a model saved by Keras (the model.keras of `bclab train`)")
    export.add_argument("out", help="the .bclab file to write, a new file")
    export.add_argument(
        "--as-deterministic",
        action="store_true",
        default=False,
        help="pack stochastic layers as deterministic ones (H*sign(W)); their predictions then differ",
    )
    for sub in (train, summary, board, export):
        sub.add_argument("--debug", action="store_true", default=False, help="show the traceback of an error")
    return parser


def _add_train_arguments(train: argparse.ArgumentParser) -> None:
    add = train.add_argument
    add("--recipe", choices=("mnist", "cifar10", "svhn"), default=None, help="start from a recipe (not with --config)")
    add("--config", metavar="JSON", default=None, help="start from a saved config.json (not with --recipe)")
    add("--dataset", choices=DATASETS + FILE_SOURCES, help="default: mnist-5k (embedded)")
    add("--data-path", help="a .npz file (--dataset npz) or a folder of IDX files (--dataset idx)")
    add("--n-train", type=int, help="keep the first N training examples")
    add(
        "--n-validation",
        type=int,
        help="the last N training examples validate: 0 (the last epoch is reported) or >= --batch-size",
    )
    add("--n-test", type=int, help="keep the first N test examples")
    add("--num-classes", type=int, help="the number of classes (labels 0..N-1); default: the data set's")
    add("--architecture", choices=ARCHITECTURES)
    add("--size", choices=SIZES, help="paper, small or tiny hidden widths")
    add("--hidden-units", type=int, help="MLP hidden width (overrides --size)")
    add("--hidden-layers", type=int, help="MLP hidden layers")
    add("--mode", choices=MODES, help="deterministic, stochastic or float (no binarization)")
    glorot_or_none = partial(check_glorot_or_positive, allow_none=True)
    add("--H", type=_text_argument(check_glorot_or_positive, "H"), help='a number or "glorot"')
    add("--W-LR-scale", type=_text_argument(glorot_or_none, "W_LR_scale"), help='a number, "glorot" or "none"')
    add("--optimizer", choices=OPTIMIZERS)
    add("--lr-start", type=float, help="a positive number that float32 holds")
    add("--lr-end", type=float, help="a positive number that float32 holds")
    add("--batch-size", type=int)
    add("--epochs", type=int)
    add("--seed", type=int)
    add(
        "--on-nonfinite",
        choices=ON_NONFINITE,
        help="at a NaN/Inf loss, gradient or update: stop (default, exit 3) or continue",
    )
    add("--trace", metavar="PATH", default=None, help="save the step trace to PATH (.npz), a new file")
    add("--trace-level", choices=TRACE_LEVELS[1:], help="full (default) or scalars; needs --trace or --tensorboard")
    add("--trace-sample", type=int, help="tracked weights per layer (default 256)")
    add(
        "--tensorboard",
        metavar="DIR",
        default=None,
        help="also export the scalars to TensorBoard (a new or empty folder)",
    )
    add("--jit-compile", action="store_true", help="compile the step with XLA")
    add(
        "--devices",
        type=int,
        help="data-parallel replicas (tf.distribute): N GPUs, or the CPU split into N devices (default 1)",
    )
    add("--out", default=None, help="output folder, new or empty (default runs/<time>-<dataset>-<mode>)")
    add("--quiet", action="store_true", default=False, help="no progress bar")


def check_combinations(args: argparse.Namespace) -> None:
    """The rules of the module docstring for flags given together; an empty path is no path."""
    for name in ("config", "data_path", "out", "trace", "tensorboard"):
        if getattr(args, name, None) == "":
            flag = "--" + name.replace("_", "-")
            raise UserError(str(invalid_value(flag, "", "a path (an empty one would be ignored)")))
    if args.config and args.recipe:
        raise UserError(
            str(invalid_value("--recipe", args.recipe, "no --recipe with --config (the config file sets every field)"))
        )
    dataset = getattr(args, "dataset", None)
    if hasattr(args, "data_path") and dataset is not None and dataset not in FILE_SOURCES:
        expected = f"--dataset npz or idx with --data-path (--data-path={args.data_path!r})"
        raise UserError(str(invalid_value("--dataset", dataset, expected)))
    if hasattr(args, "trace_level") and not (args.trace or args.tensorboard):
        raise UserError(str(invalid_value("--trace-level", args.trace_level, "--trace or --tensorboard with it")))


def read_config_file(path: str) -> RunConfig:
    """The RunConfig of a config.json; every problem is a `UserError` naming `--config`."""
    file = Path(path)
    with user_errors("--config", path):
        if not file.exists():
            raise invalid_value("--config", path, "an existing config.json file")
        if not file.is_file():
            raise invalid_value("--config", path, "a config.json file, not a folder or a device")
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise invalid_value("--config", path, f"a config.json file of at most {MAX_CONFIG_BYTES} bytes")
        return RunConfig.from_json(file.read_text(encoding="utf-8"))


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the arguments describe (validated by RunConfig; errors are `UserError`s)."""
    check_combinations(args)
    if args.config:
        config = read_config_file(args.config)
    else:
        with user_errors("--recipe", args.recipe):
            config = RunConfig.recipe(args.recipe, size=getattr(args, "size", "paper")) if args.recipe else RunConfig()
    changes: dict[str, Any] = {name: getattr(args, name) for name in FIELDS if hasattr(args, name)}
    if "dataset" in changes and changes["dataset"] not in FILE_SOURCES:
        changes["data_path"] = None  # a saved config's path belongs to its own data set
    if changes.get("data_path") and "dataset" not in changes:
        changes["dataset"] = "npz" if str(changes["data_path"]).lower().endswith(".npz") else "idx"
    changes["trace"] = getattr(args, "trace_level", "full") if (args.trace or args.tensorboard) else "off"
    with user_errors():
        config = config.replace(**changes)
    explicit_mlp = [flag for flag in ("hidden_units", "hidden_layers") if flag in changes]
    if explicit_mlp and config.architecture != "mlp":
        flag = "--" + explicit_mlp[0].replace("_", "-")
        raise UserError(
            str(invalid_value(flag, changes[explicit_mlp[0]], "--architecture mlp with it (CNN widths: --size)"))
        )
    return config
