"""Bad input to the `bclab` command, one row per case: flags, config files, paths, data files.

Each row runs `main([...])` in-process and asserts the exact outcome: exit code 2, stderr one
line `bclab: error: ...` naming the flag or file (and the value), and nothing left on disk (no
output folder, no hidden staging file). Every row fails in pre-flight, before TensorFlow trains
anything. The signal cases run `bclab` in a subprocess, at the end of this file.
"""

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, wait_until

from bclab.cli import main

TINY_ARGS = [*(item for name, value in TINY.items() for item in (f"--{name.replace('_', '-')}", str(value))), "--quiet"]
# The rows' base: TINY's sizes without the MLP's widths, which a CNN row may not take.
BASE_ARGS = [
    *(
        a
        for name, value in TINY.items()
        if not name.startswith("hidden")
        for a in (f"--{name.replace('_', '-')}", str(value))
    ),
    "--quiet",
]


def exit_status(argv: list[str]) -> int:
    """The status `bclab` exits with: main's return value, or the parser's SystemExit code."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ----- what a row prepares in tmp_path (`setup(tmp_path, monkeypatch)`) -----


def file(name, content=b"mine"):
    def setup(tmp, monkeypatch):
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def folder(name, holding=None):
    def setup(tmp, monkeypatch):
        (tmp / name).mkdir(parents=True)
        if holding:
            (tmp / name / holding).write_text("mine")

    return setup


def arrays(**changes):
    rng = np.random.default_rng(0)
    data = dict(
        x_train=rng.integers(0, 255, (200, 8, 8), dtype=np.uint8),
        y_train=np.arange(200) % 10,
        x_test=rng.integers(0, 255, (60, 8, 8), dtype=np.uint8),
        y_test=np.arange(60) % 10,
    )
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def npz(name, truncate=None, **changes):
    def setup(tmp, monkeypatch):
        np.savez(tmp / name, **arrays(**changes))
        if truncate is not None:
            raw = (tmp / name).read_bytes()
            (tmp / name).write_bytes(raw[:truncate])

    return setup


def no_tensorboard(tmp, monkeypatch):
    """TensorBoard's package missing: `import tensorboard...` fails, as when it is not installed."""
    for name in ["tensorboard", *(name for name in sys.modules if name.startswith("tensorboard."))]:
        monkeypatch.setitem(sys.modules, name, None)


def several(*setups):
    def setup(tmp, monkeypatch):
        for one in setups:
            one(tmp, monkeypatch)

    return setup


GOOD_CONFIG = json.dumps({**TINY, "epochs": 1})
BAD_LABEL = np.where(np.arange(200) == 3, 12, np.arange(200) % 10)

# (id, flags after `train` + TINY + `--out {tmp}/run`, setup, substrings the one line names)
TRAIN_ROWS = [
    # the parser: a flag's type or choice
    ("mode-unknown", ["--mode", "ternary"], None, ["--mode", "ternary"]),
    ("epochs-text", ["--epochs", "two"], None, ["--epochs", "two"]),
    ("batch-size-float", ["--batch-size", "1.5"], None, ["--batch-size", "1.5"]),
    ("seed-float", ["--seed", "0.5"], None, ["--seed", "0.5"]),
    ("dataset-unknown", ["--dataset", "svhn"], None, ["--dataset", "svhn"]),
    ("recipe-unknown", ["--recipe", "imagenet"], None, ["--recipe", "imagenet"]),
    ("trace-level-unknown", ["--trace-level", "all"], None, ["--trace-level", "all"]),
    ("on-nonfinite-unknown", ["--on-nonfinite", "ignore"], None, ["--on-nonfinite", "ignore"]),
    ("num-classes-text", ["--num-classes", "ten"], None, ["--num-classes", "ten"]),
    ("flag-unknown", ["--learning-rate", "0.1"], None, ["--learning-rate"]),
    ("flag-without-value", ["--epochs"], None, ["--epochs", "expected one argument"]),
    ("H-text", ["--H", "one"], None, ["--H", "H='one'"]),
    ("W-LR-scale-nan", ["--W-LR-scale", "nan"], None, ["--W-LR-scale", "W_LR_scale='nan'"]),
    # RunConfig's checks
    ("H-zero", ["--H", "0"], None, ["H='0'"]),
    ("H-negative", ["--H", "-1"], None, ["H='-1'"]),
    ("H-overflows-float32", ["--H", "1e300"], None, ["`H`", "float32", "H=1e+300"]),
    ("lr-start-negative", ["--lr-start", "-0.1"], None, ["lr_start=-0.1"]),
    ("lr-start-zero", ["--lr-start", "0"], None, ["lr_start=0.0"]),
    ("lr-start-nan", ["--lr-start", "nan"], None, ["lr_start=nan"]),
    ("lr-start-inf", ["--lr-start", "inf"], None, ["lr_start=inf"]),
    ("lr-start-overflows-float32", ["--lr-start", "1e300"], None, ["`lr_start`", "float32", "lr_start=1e+300"]),
    ("lr-end-underflows-float32", ["--lr-end", "1e-50"], None, ["`lr_end`", "float32", "lr_end=1e-50"]),
    ("batch-size-zero", ["--batch-size", "0"], None, ["batch_size=0"]),
    ("epochs-zero", ["--epochs", "0"], None, ["epochs=0"]),
    ("seed-negative", ["--seed", "-1"], None, ["seed=-1"]),
    ("seed-beyond-numpy", ["--seed", str(2**32)], None, [f"seed={2**32}", "below 2**32"]),
    ("n-train-zero", ["--n-train", "0"], None, ["n_train=0"]),
    ("n-validation-negative", ["--n-validation", "-1"], None, ["n_validation=-1"]),
    ("num-classes-one", ["--num-classes", "1"], None, ["num_classes=1"]),
    ("num-classes-huge", ["--num-classes", "100001"], None, ["num_classes=100001"]),
    ("trace-sample-negative", ["--trace", "{tmp}/t.npz", "--trace-sample", "-1"], None, ["trace_sample=-1"]),
    ("hidden-units-zero", ["--hidden-units", "0"], None, ["hidden_units=0"]),
    ("hidden-layers-zero", ["--hidden-layers", "0"], None, ["hidden_layers=0"]),
    ("hidden-units-too-many-weights", ["--hidden-units", "100000000"], None, ["hidden_units=100000000", "weights"]),
    ("hidden-layers-too-many", ["--hidden-layers", "1000000"], None, ["hidden_layers=1000000", "at most 1,000"]),
    # sizes the data cannot satisfy
    ("batch-larger-than-training", ["--batch-size", "5000"], None, ["batch_size=5000", "training"]),
    ("validation-takes-all", ["--n-validation", "600"], None, ["n_validation=600"]),
    ("validation-below-one-batch", ["--n-validation", "30"], None, ["n_validation=30", "batch_size=50"]),
    ("test-below-one-batch", ["--n-test", "10"], None, ["batch_size=50", "test"]),
    ("n-train-beyond-data", ["--n-train", "100000"], None, ["n_train=100000"]),
    ("labels-outside-num-classes", ["--num-classes", "5"], None, ["--dataset 'mnist-5k'", "y_train"]),
    (
        "cnn-on-tiny-images",
        ["--architecture", "cnn", "--data-path", "{tmp}/d.npz"],
        npz("d.npz", **{"x_train": np.zeros((200, 4, 4), np.uint8), "x_test": np.zeros((60, 4, 4), np.uint8)}),
        ["image_shape"],
    ),
    # flags that contradict each other
    (
        "config-with-recipe",
        ["--config", "{tmp}/c.json", "--recipe", "mnist"],
        file("c.json", GOOD_CONFIG),
        ["--recipe", "--config"],
    ),
    (
        "data-path-with-builtin-dataset",
        ["--dataset", "mnist", "--data-path", "{tmp}/d.npz"],
        npz("d.npz"),
        ["--dataset", "'mnist'", "--data-path"],
    ),
    ("trace-level-without-trace", ["--trace-level", "scalars"], None, ["--trace-level", "--trace"]),
    (
        "hidden-units-with-cnn",
        ["--architecture", "cnn", "--hidden-units", "32"],
        None,
        ["--hidden-units", "--architecture mlp"],
    ),
    # output paths
    ("out-is-a-file", ["--out", "{tmp}/f"], file("f"), ["--out", "/f'", "not a file"]),
    ("out-holds-files", ["--out", "{tmp}/d"], folder("d", "keep.txt"), ["--out", "/d'", "holds files"]),
    ("out-parent-is-a-file", ["--out", "{tmp}/f/run"], file("f"), ["--out", "/f/run'", "is a file"]),
    ("out-empty-path", ["--out", ""], None, ["--out", "''", "a path"]),
    ("trace-empty-path", ["--trace", ""], None, ["--trace", "''", "a path"]),
    ("tensorboard-empty-path", ["--tensorboard", ""], None, ["--tensorboard", "''"]),
    ("config-empty-path", ["--config", ""], None, ["--config", "''"]),
    ("data-path-empty", ["--data-path", ""], None, ["--data-path", "''"]),
    ("out-name-too-long", ["--out", "{tmp}/" + "x" * 300], None, ["--out", "at most 255 bytes"]),
    (
        "trace-folder-name-too-long",
        ["--trace", "{tmp}/" + "y" * 256 + "/t.npz"],
        None,
        ["--trace", "at most 255 bytes"],
    ),
    ("out-unwritable", ["--out", "/proc/bclab-run"], None, ["--out", "/proc/bclab-run", "writable"]),
    ("trace-is-out", ["--trace", "{tmp}/run"], None, ["--trace", "/run'", "neither --out"]),
    ("trace-exists", ["--trace", "{tmp}/t.npz"], file("t.npz"), ["--trace", "t.npz", "exists"]),
    ("trace-is-a-folder", ["--trace", "{tmp}/d"], folder("d"), ["--trace", "/d'", "not a folder"]),
    ("trace-parent-is-a-file", ["--trace", "{tmp}/f/t.npz"], file("f"), ["--trace", "/f/t.npz", "is a file"]),
    ("trace-above-out", ["--trace", "{tmp}/a", "--out", "{tmp}/a/run"], None, ["--trace", "/a'", "above it"]),
    ("trace-is-a-run-file", ["--trace", "{tmp}/run/result.json"], None, ["--trace", "result.json", "run's files"]),
    (
        "trace-inside-tensorboard",
        ["--tensorboard", "{tmp}/tb", "--trace", "{tmp}/tb/t.npz"],
        None,
        ["--trace", "outside --tensorboard"],
    ),
    ("trace-unwritable", ["--trace", "/proc/t.npz"], None, ["--trace", "/proc/t.npz", "writable"]),
    ("tensorboard-is-a-file", ["--tensorboard", "{tmp}/f"], file("f"), ["--tensorboard", "/f'", "not a file"]),
    (
        "tensorboard-holds-files",
        ["--tensorboard", "{tmp}/tb"],
        folder("tb", "events"),
        ["--tensorboard", "holds files"],
    ),
    ("tensorboard-is-out", ["--tensorboard", "{tmp}/run"], None, ["--tensorboard", "/run'", "neither --out"]),
    (
        "tensorboard-not-installed",
        ["--tensorboard", "{tmp}/tb"],
        no_tensorboard,
        ["--tensorboard", "pip install tensorboard"],
    ),
    # config files
    ("config-missing", ["--config", "{tmp}/c.json"], None, ["--config", "c.json", "existing"]),
    ("config-is-a-folder", ["--config", "{tmp}/c"], folder("c"), ["--config", "/c'", "not a folder"]),
    ("config-is-a-device", ["--config", "/dev/zero"], None, ["--config", "/dev/zero"]),
    ("config-too-big", ["--config", "{tmp}/c.json"], file("c.json", b" " * (2 << 20)), ["--config", "bytes"]),
    ("config-empty", ["--config", "{tmp}/c.json"], file("c.json", b""), ["--config", "not valid JSON"]),
    ("config-not-json", ["--config", "{tmp}/c.json"], file("c.json", "epochs: 3"), ["--config", "not valid JSON"]),
    ("config-not-utf8", ["--config", "{tmp}/c.json"], file("c.json", b"\xff\xfe{\x00"), ["--config", "c.json"]),
    ("config-a-list", ["--config", "{tmp}/c.json"], file("c.json", "[1, 2]"), ["--config", "`config`", "a mapping"]),
    ("config-null", ["--config", "{tmp}/c.json"], file("c.json", "null"), ["--config", "a mapping"]),
    (
        "config-wrong-type",
        ["--config", "{tmp}/c.json"],
        file("c.json", '{"epochs": "ten"}'),
        ["--config", "epochs='ten'"],
    ),
    (
        "config-unknown-key",
        ["--config", "{tmp}/c.json"],
        file("c.json", '{"learning_rate": 0.1}'),
        ["--config", "learning_rate"],
    ),
    ("config-nan", ["--config", "{tmp}/c.json"], file("c.json", '{"lr_start": NaN}'), ["--config", "lr_start=nan"]),
    (
        "config-overflow",
        ["--config", "{tmp}/c.json"],
        file("c.json", '{"lr_start": 1e999}'),
        ["--config", "lr_start=inf"],
    ),
    (
        "config-npz-without-path",
        ["--config", "{tmp}/c.json"],
        file("c.json", '{"dataset": "npz"}'),
        ["--config", "data_path"],
    ),
    # data files
    ("data-npz-missing", ["--data-path", "{tmp}/none.npz"], None, ["--data-path", "none.npz", "found nothing"]),
    ("data-folder-missing", ["--data-path", "{tmp}/none"], None, ["--data-path", "/none'", "found nothing"]),
    ("data-text-file", ["--data-path", "{tmp}/d.txt"], file("d.txt"), ["--data-path", "d.txt", "IDX"]),
    (
        "data-npz-flag-with-folder",
        ["--dataset", "npz", "--data-path", "{tmp}/d"],
        folder("d"),
        ["--data-path", "/d'", "found a folder"],
    ),
    (
        "data-idx-flag-with-file",
        ["--dataset", "idx", "--data-path", "{tmp}/d.npz"],
        npz("d.npz"),
        ["--data-path", "d.npz", "IDX"],
    ),
    ("data-device", ["--dataset", "npz", "--data-path", "/dev/null"], None, ["--data-path", "/dev/null"]),
    ("data-npz-empty", ["--data-path", "{tmp}/d.npz"], file("d.npz", b""), ["d.npz", "not a zip file"]),
    ("data-npz-truncated", ["--data-path", "{tmp}/d.npz"], npz("d.npz", truncate=300), ["d.npz", "not a zip file"]),
    ("data-npz-missing-labels", ["--data-path", "{tmp}/d.npz"], npz("d.npz", y_test=None), ["d.npz", "y_test"]),
    (
        "data-npz-negative-label",
        ["--data-path", "{tmp}/d.npz"],
        npz("d.npz", y_train=np.arange(200) % 10 - 1),
        ["--data-path", "y_train"],
    ),
    (
        "data-npz-label-beyond-classes",
        ["--data-path", "{tmp}/d.npz", "--num-classes", "10"],
        npz("d.npz", y_train=BAD_LABEL),
        ["--data-path", "y_train[3]=12"],
    ),
    (
        "data-npz-nan-pixels",
        ["--data-path", "{tmp}/d.npz"],
        npz("d.npz", x_train=np.full((200, 8, 8), np.nan)),
        ["--data-path", "x_train"],
    ),
]


@pytest.mark.parametrize(("flags", "setup", "named"), [pytest.param(*row[1:], id=row[0]) for row in TRAIN_ROWS])
def test_bad_train_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, monkeypatch, capsys, flags, setup, named):
    monkeypatch.chdir(tmp_path)  # a default output folder would land here too
    if setup is not None:
        setup(tmp_path, monkeypatch)
    before = tree(tmp_path)
    argv = ["train", *BASE_ARGS, "--out", f"{tmp_path}/run", *(f.replace("{tmp}", str(tmp_path)) for f in flags)]
    assert exit_status(argv) == 2
    assert_one_error_line(capsys.readouterr().err, named)
    assert tree(tmp_path) == before  # no output, no staging file


def assert_one_error_line(err: str, named: list[str]) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bclab: error: "), err
    for text in named:
        assert text in lines[0], (text, lines[0])


TRACE_ROWS = [
    ("summary-missing", ["summary", "{tmp}/t.npz"], None, ["t.npz", "found nothing"]),
    ("summary-folder", ["summary", "{tmp}/d"], folder("d"), ["/d'", "found a folder"]),
    ("summary-device", ["summary", "/dev/null"], None, ["/dev/null", "found a device"]),
    ("summary-garbage", ["summary", "{tmp}/t.npz"], file("t.npz", b"not a trace at all"), ["t.npz"]),
    ("summary-empty", ["summary", "{tmp}/t.npz"], file("t.npz", b""), ["t.npz"]),
    ("summary-plain-npz", ["summary", "{tmp}/t.npz"], npz("t.npz"), ["t.npz"]),
    (
        "tensorboard-logdir-is-a-file",
        ["tensorboard", "{tmp}/t.npz", "{tmp}/f"],
        several(npz("t.npz"), file("f")),
        ["logdir", "/f'"],
    ),
    (
        "tensorboard-logdir-holds-files",
        ["tensorboard", "{tmp}/t.npz", "{tmp}/d"],
        several(npz("t.npz"), folder("d", "x")),
        ["logdir", "holds files"],
    ),
    ("tensorboard-of-garbage", ["tensorboard", "{tmp}/t.npz", "{tmp}/tb"], file("t.npz", b"PK\x03\x04junk"), ["t.npz"]),
]


@pytest.mark.parametrize(("args", "setup", "named"), [pytest.param(*row[1:], id=row[0]) for row in TRACE_ROWS])
def test_bad_trace_command_input_is_one_line_exit_2_and_leaves_nothing(
    tmp_path, monkeypatch, capsys, args, setup, named
):
    if setup is not None:
        setup(tmp_path, monkeypatch)
    before = tree(tmp_path)
    assert exit_status(["trace", *(a.replace("{tmp}", str(tmp_path)) for a in args)]) == 2
    assert_one_error_line(capsys.readouterr().err, named)
    assert tree(tmp_path) == before


def test_zipfile_garbage_is_a_user_error_naming_the_file(tmp_path, capsys):
    # A zip archive that holds no arrays: not an .npz of a data set.
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert (
        exit_status(["train", *TINY_ARGS, "--data-path", str(tmp_path / "d.npz"), "--out", str(tmp_path / "run")]) == 2
    )
    assert_one_error_line(capsys.readouterr().err, ["d.npz", "readme.txt"])
    assert tree(tmp_path) == ["d.npz"]


# ----- signals, in a subprocess -----


def bclab_process(tmp_path: Path, *flags: str, script: str | None = None) -> tuple[subprocess.Popen, Path]:
    """`bclab train` (or a Python `script` that calls main) in the background; stderr goes to a file."""
    log = tmp_path / "stderr.txt"
    command = [sys.executable, "-c", script] if script else [sys.executable, "-m", "bclab.cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(log, "w") as stderr:
        process = subprocess.Popen([*command, "train", *flags], stderr=stderr, stdout=subprocess.DEVNULL, env=env)
    return process, log


def test_sigterm_stops_after_the_current_step_and_writes_what_was_completed(tmp_path):
    from bclab.trace import Trace

    out, trace_path = tmp_path / "run", tmp_path / "t.npz"
    flags = [*TINY_ARGS, "--epochs", "500", "--out", str(out), "--trace", str(trace_path), "--trace-level", "scalars"]
    process, log = bclab_process(tmp_path, *flags)
    try:
        wait_until(lambda: "steps (" in log.read_text(), timeout=120, what="training started")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 130
    finally:
        process.kill()
    err = log.read_text()
    assert (
        "Traceback" not in err and "stopping after the current step; then writing what was completed (SIGTERM)" in err
    )
    result = json.loads((out / "result.json").read_text())
    assert (
        result["status"] == "interrupted"
        and result["interrupted"] is True
        and result["message"] == "interrupted (SIGTERM)"
    )
    assert len(Trace.load(trace_path)) == result["steps_completed"] < 500 * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "stderr.txt", "t.npz"]  # no staging left


SIGNAL_WHILE_WRITING = """
import os, signal, sys
import bclab.cli.outputs as outputs
real = outputs.write_run_files
def interrupted_write(*args):
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, then SIGTERM, in the middle of the write
    os.kill(os.getpid(), signal.SIGTERM)
    real(*args)
outputs.write_run_files = interrupted_write
from bclab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_signal_during_the_final_write_lets_it_finish(tmp_path):
    out, trace_path = tmp_path / "run", tmp_path / "t.npz"
    flags = [*TINY_ARGS, "--epochs", "1", "--out", str(out), "--trace", str(trace_path)]
    process, log = bclab_process(tmp_path, *flags, script=SIGNAL_WHILE_WRITING)
    try:
        assert process.wait(timeout=300) == 130
    finally:
        process.kill()
    err = log.read_text()
    assert "Traceback" not in err and "interrupted; the outputs are complete" in err
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and result["epochs_completed"] == 1 and result["steps_completed"] == 10
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "metrics.json", "metrics.csv", "result.json", "model.keras"]
    )
    assert trace_path.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["run", "stderr.txt", "t.npz"]


def test_staging_left_by_killed_runs_is_removed_and_never_taken_for_a_result(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is now free: the owner of the staging below is dead
    (tmp_path / f".bclab-{dead.pid}-run.partial-abc").mkdir()
    (tmp_path / f".bclab-{dead.pid}-run.partial-abc" / "result.json").write_text("{}")
    (tmp_path / f".bclab-{dead.pid}-tmp1234.tmp").write_bytes(b"half a trace")
    live = tmp_path / f".bclab-{os.getpid()}-other.partial-xyz"  # a run still going: kept
    live.mkdir()
    (tmp_path / ".bclab-notes").write_text("no pid: not bclab's staging, kept")
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                *TINY_ARGS,
                "--epochs",
                "1",
                "--trace-level",
                "scalars",
                "--trace",
                str(tmp_path / "t.npz"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([".bclab-notes", live.name, "run", "t.npz"])
    assert json.loads((out / "result.json").read_text())["status"] == "completed"
