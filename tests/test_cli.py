"""`bclab train` and `bclab trace` end to end on the embedded digits, and their bad input."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import TINY

from bclab.cli import build_parser, config_from_args, main
from bclab.config import RunConfig
from bclab.trace import Trace
from bclab.train.trainer import device_name

# conftest's TINY as flags: 10 batches of 50 per epoch, 2 epochs.
TINY_ARGS = [*(item for name, value in TINY.items() for item in (f"--{name.replace('_', '-')}", str(value))), "--quiet"]


def exit_status(argv: list[str]) -> int:
    """The status `bclab` exits with: main's return value, or the parser's SystemExit code."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def test_train_writes_metrics_result_model_and_trace(tmp_path, capsys):
    out, trace_path = tmp_path / "run", tmp_path / "trace.npz"
    code = main(
        [
            "train",
            *TINY_ARGS,
            "--mode",
            "stochastic",
            "--optimizer",
            "adamax",
            "--out",
            str(out),
            "--trace",
            str(trace_path),
            "--tensorboard",
            str(tmp_path / "tb"),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "metrics.csv",
        "metrics.json",
        "model.keras",
        "result.json",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    result = strict_json(out / "result.json")
    assert result["status"] == "completed" and result["message"] is None and result["interrupted"] is False
    assert [m["epoch"] for m in metrics] == [1, 2]
    best = max((m for m in metrics), key=lambda m: (-m["val_error"], m["epoch"]))  # ties go later
    assert result["test_error_at_best_val"] == best["test_error"] and result["device"] == device_name()
    config = RunConfig.from_json((out / "config.json").read_text())
    assert config == RunConfig(**TINY, mode="stochastic", optimizer="adamax", trace="full")
    model = keras.models.load_model(out / "model.keras")
    assert model.count_params() > 0
    trace = Trace.load(trace_path)
    assert len(trace) == 2 * (500 // 50)
    assert list((tmp_path / "tb").iterdir()), "TensorBoard events written"
    err = capsys.readouterr().err
    assert f"device {device_name()}" in err and "test error" in err

    assert main(["trace", "summary", str(trace_path)]) == 0
    summary = capsys.readouterr().out
    assert "python_traces=1" in summary and "compiled_runs=20" in summary


def test_glorot_and_none_are_parsed_as_the_config_parses_them():
    args = build_parser().parse_args(["train", "--H", " Glorot ", "--W-LR-scale", "none", "--lr-start", "0.01"])
    assert config_from_args(args) == RunConfig(H="glorot", W_LR_scale=None, lr_start=0.01, trace="off")
    args = build_parser().parse_args(["train", "--H", "0.5", "--W-LR-scale", "2"])
    assert config_from_args(args) == RunConfig(H=0.5, W_LR_scale=2.0, trace="off")
    assert config_from_args(build_parser().parse_args(["train"])) == RunConfig(trace="off")  # no flag: the defaults


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--H", "0"], "Received: H='0'"),
        (["--H", "-1"], "Received: H='-1'"),
        (["--H", "one"], "Received: H='one'"),
        (["--W-LR-scale", "nan"], "Received: W_LR_scale='nan'"),
        (["--lr-start", "-0.1"], "Received: lr_start=-0.1"),
        (["--batch-size", "0"], "Received: batch_size=0"),
        (["--epochs", "0"], "Received: epochs=0"),
        (["--epochs", "two"], "--epochs"),
        (["--batch-size", "5000"], "Received: batch_size=5000"),
        (["--dataset", "npz", "--data-path", "/nonexistent/data.npz"], "/nonexistent/data.npz"),
        (["--data-path", "/nonexistent/folder"], "/nonexistent/folder"),
    ],
)
def test_bad_input_fails_early_naming_the_argument_and_writes_nothing(tmp_path, capsys, args, named):
    out = tmp_path / "run"
    assert exit_status(["train", *TINY_ARGS, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error" in err and named in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unknown_mode_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--mode", "ternary"])
    assert exit_info.value.code == 2
    assert "ternary" in capsys.readouterr().err


def test_non_empty_out_folder_is_refused(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["train", *TINY_ARGS, "--out", str(tmp_path)]) == 2
    assert f"Received: --out='{tmp_path}'" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_trace_and_tensorboard_paths_that_would_overwrite_are_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    assert main(["train", *TINY_ARGS, "--out", str(tmp_path / "a"), "--trace", str(tmp_path)]) == 2
    assert "`--trace`" in capsys.readouterr().err
    assert main(["train", *TINY_ARGS, "--out", str(tmp_path / "b"), "--tensorboard", str(tmp_path / "file")]) == 2
    assert "`--tensorboard`" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_npz_with_labels_out_of_range_or_nan_is_named(tmp_path, capsys):
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 255, (200, 8, 8), dtype=np.uint8),
        y_train=rng.integers(0, 10, 200),
        x_test=rng.integers(0, 255, (60, 8, 8), dtype=np.uint8),
        y_test=rng.integers(0, 10, 60),
    )
    arrays["y_train"][3] = -1
    np.savez(tmp_path / "bad_labels.npz", **arrays)
    assert main(["train", "--data-path", str(tmp_path / "bad_labels.npz"), "--out", str(tmp_path / "a")]) == 2
    assert "y_train" in capsys.readouterr().err
    arrays["y_train"][3] = 1
    arrays["x_train"] = arrays["x_train"].astype(np.float32)
    arrays["x_train"][5, 1, 1] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    assert main(["train", "--data-path", str(tmp_path / "nan.npz"), "--out", str(tmp_path / "b")]) == 2
    assert "x_train" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_user_npz_trains_end_to_end(tmp_path, digits):
    np.savez(
        tmp_path / "mine.npz",
        x_train=digits.x_train[:400],
        y_train=digits.y_train[:400],
        x_test=digits.x_test[:100],
        y_test=digits.y_test[:100],
    )
    code = main(
        [
            "train",
            "--data-path",
            str(tmp_path / "mine.npz"),
            "--n-validation",
            "100",
            "--hidden-units",
            "16",
            "--batch-size",
            "50",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 0
    assert json.loads((tmp_path / "run" / "result.json").read_text())["epochs_completed"] == 1


def test_trace_summary_of_a_corrupt_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a trace at all")
    assert main(["trace", "summary", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_console_script_is_installed():
    done = subprocess.run([sys.executable, "-m", "bclab.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "train" in done.stdout


def test_ctrl_c_writes_what_was_completed(tmp_path, monkeypatch, capsys):
    from bclab.train.trainer import Trainer

    real_step, calls = Trainer.step, []

    def step_then_interrupt(self):
        calls.append(1)
        if len(calls) == 13:  # one epoch is 10 batches: Ctrl-C during the second epoch
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", step_then_interrupt)
    out, trace_path = tmp_path / "run", tmp_path / "t.npz"
    assert main(["train", *TINY_ARGS, "--out", str(out), "--trace", str(trace_path)]) == 130
    result = json.loads((out / "result.json").read_text())
    assert result["interrupted"] is True and result["epochs_completed"] == 1 and result["steps_completed"] == 12
    assert result["status"] == "interrupted" and result["message"] == "interrupted (Ctrl-C)"
    assert len(Trace.load(trace_path)) == 12
    assert "interrupted" in capsys.readouterr().err


def strict_json(path):
    """Parse as strict JSON: NaN, Infinity and -Infinity are refused."""

    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_nan_stops_the_run_writes_what_was_completed_and_exits_3(tmp_path, capsys):
    # lr 1e30 is finite in float32 but moves every non-binary parameter by ~1e30 at step 0,
    # so an update norm overflows to Inf (bclab.train.trainer's non-finite policy).
    out, trace_path = tmp_path / "run", tmp_path / "t.npz"
    argv = ["train", *TINY_ARGS, "--lr-start", "1e30", "--lr-end", "1e30", "--out", str(out)]
    assert main([*argv, "--trace", str(trace_path), "--trace-level", "scalars"]) == 3
    err = capsys.readouterr().err
    result = strict_json(out / "result.json")
    assert result["status"] == "nonfinite" and result["interrupted"] is False
    assert result["message"].startswith("step 0: update_norm of variable ") and result["message"].endswith(" is Inf")
    assert result["steps_completed"] == 1 and result["epochs_completed"] == 0 and result["best_epoch"] is None
    assert f"bclab: stopped: {result['message']}" in err and "Traceback" not in err
    assert strict_json(out / "metrics.json") == [] and len(Trace.load(trace_path)) == 1
    assert keras.models.load_model(out / "model.keras").count_params() > 0
    # --on-nonfinite continue trains to the end.
    assert main([*argv[:-1], str(tmp_path / "b"), "--on-nonfinite", "continue", "--epochs", "1"]) == 0
    assert strict_json(tmp_path / "b" / "result.json")["status"] == "completed"


def test_without_a_validation_set_the_last_epoch_is_reported_in_strict_json(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY_ARGS, "--n-validation", "0", "--out", str(out)]) == 0
    result, metrics = strict_json(out / "result.json"), strict_json(out / "metrics.json")
    assert [m["val_error"] for m in metrics] == [None, None] and [m["val_loss"] for m in metrics] == [None, None]
    assert result["best_epoch"] == 2 and result["best_val_error"] is None
    assert result["selected_by"] == "last epoch (no validation set)"
    assert result["test_error_at_best_val"] == metrics[1]["test_error"]
    rows = (out / "metrics.csv").read_text().splitlines()
    header, first = rows[0].split(","), rows[1].split(",")
    assert first[header.index("val_error")] == "" and first[header.index("test_error")] != ""


def test_trace_and_tensorboard_inside_out_are_written_with_it(tmp_path):
    out = tmp_path / "run"
    argv = ["train", *TINY_ARGS, "--epochs", "1", "--out", str(out), "--trace", str(out / "trace.npz")]
    assert main([*argv, "--trace-level", "scalars", "--tensorboard", str(out / "tb")]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "metrics.csv", "metrics.json", "model.keras", "result.json", "trace.npz", "tb"]
    )
    assert len(Trace.load(out / "trace.npz")) == 10 and list((out / "tb").iterdir())
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_an_internal_error_is_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    import bclab.train.trainer

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(bclab.train.trainer, "Trainer", broken)
    argv = ["train", *TINY_ARGS, "--out", str(tmp_path / "run")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == "bclab: internal error: RuntimeError: a bug over two lines (run with --debug for the traceback)\n"
    assert main([*argv, "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.endswith(
        "bclab: internal error: RuntimeError: a bug over two lines\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_flags_override_a_config_file_field_by_field(tmp_path):
    saved = RunConfig(**TINY, dataset="npz", data_path=str(tmp_path / "d.npz"), lr_start=0.01)
    (tmp_path / "c.json").write_text(saved.to_json())
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "c.json"), "--epochs", "3"])
    assert config_from_args(args) == saved.replace(epochs=3, trace="off")
    # A built-in --dataset replaces the file's data set, and its path with it.
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "c.json"), "--dataset", "mnist-5k"])
    assert config_from_args(args) == saved.replace(dataset="mnist-5k", data_path=None, trace="off")
    # A path in upper case is still an .npz file.
    args = build_parser().parse_args(["train", "--data-path", "DATA.NPZ"])
    assert config_from_args(args).dataset == "npz"


def test_trace_into_a_missing_folder_creates_it_and_export_twice_is_refused(tmp_path, capsys):
    trace_path, board = tmp_path / "new" / "deeper" / "t.npz", tmp_path / "tb"
    argv = ["train", *TINY_ARGS, "--epochs", "1", "--trace-level", "scalars", "--out", str(tmp_path / "run")]
    assert main([*argv, "--trace", str(trace_path)]) == 0
    assert len(Trace.load(trace_path)) == 10
    assert main(["trace", "tensorboard", str(trace_path), str(board)]) == 0
    events = sorted(p.name for p in board.iterdir())
    # A second export into the same folder would duplicate every point: refused, nothing changed.
    assert main(["trace", "tensorboard", str(trace_path), str(board)]) == 2
    assert "Received: logdir=" in capsys.readouterr().err
    assert sorted(p.name for p in board.iterdir()) == events


def test_an_output_that_appears_during_the_run_is_never_overwritten(tmp_path):
    from bclab.cli.paths import commit, staging_folder

    target = tmp_path / "t.npz"
    staged = staging_folder(target) / "t.npz"
    staged.write_bytes(b"new")
    target.write_bytes(b"someone else's")  # appeared after the pre-flight check
    assert commit(staged, target) == tmp_path / "t-2.npz"
    assert target.read_bytes() == b"someone else's" and (tmp_path / "t-2.npz").read_bytes() == b"new"
    run, folder = tmp_path / "run", staging_folder(tmp_path / "run")
    (run / "x").parent.mkdir()
    (run / "x").write_text("theirs")
    assert commit(folder, run) == tmp_path / "run-2" and (run / "x").read_text() == "theirs"
