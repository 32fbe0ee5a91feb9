"""The bench scripts run end to end (--smoke), and the reproduction's bookkeeping is the reference's.

The three smoke runs start together in subprocesses when the module starts (an autouse
fixture), so they overlap with each other and with the in-process tests, which come first;
each smoke test then waits for its own script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("throughput", "reproduce", "memory", "profile_step")
MACHINE_KEYS = {"cpu_count", "load_average_before", "load_average_after", "device", "tensorflow", "keras", "command"}


@pytest.fixture(scope="module", autouse=True)
def smoke_runs(tmp_path_factory):
    """Start every script with --smoke at once; yield {name: (process, out folder)}."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    runs = {}
    for name in SCRIPTS:
        out = tmp_path_factory.mktemp(name)
        command = [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--smoke", "--out", str(out)]
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        runs[name] = (process, out)
    yield runs
    for process, _ in runs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


# ----- the reproduction's bookkeeping against the reference -----


def _epochs(val_errors, test_errors):
    from bclab.train.trainer import EpochResult

    return [
        EpochResult(
            epoch=i + 1,
            lr=1e-3,
            train_loss=0.0,
            train_error=0.0,
            val_loss=0.0,
            val_error=v,
            test_loss=0.0,
            test_error=t,
            seconds=0.0,
        )
        for i, (v, t) in enumerate(zip(val_errors, test_errors))
    ]


def test_best_epoch_ties_go_to_the_later_epoch():
    from bclab.train.trainer import best_epoch

    # Validation errors 5, 3, 4, 3, 6: the minimum 3 is reached at epochs 2 and 4; the
    # reference keeps the later one (``if val_err <= best_val_err``), so epoch 4 and its
    # test error 1.7, not epoch 2's 1.9 nor the lowest test error 1.5 (epoch 3).
    best = best_epoch(_epochs([5.0, 3.0, 4.0, 3.0, 6.0], [2.0, 1.9, 1.5, 1.7, 2.5]))
    assert best.epoch == 4
    assert best.test_error == 1.7
    assert best_epoch([]) is None


def test_only_full_batches():
    from bclab import data as bcdata
    from bclab.config import RunConfig
    from bclab.train.trainer import Trainer

    # 1050 examples in batches of 100: 10 full batches, the last 50 examples are dropped.
    assert bcdata.num_batches(1050, 100) == 10
    # n_train 1250 - n_validation 200 = 1050 training examples -> an epoch of 10 steps.
    config = RunConfig(size="tiny", n_train=1250, n_validation=200, n_test=250, batch_size=100, epochs=2, trace="off")
    trainer = Trainer(config)
    assert len(trainer.split.x_train) == 1050 and trainer.batches_per_epoch == 10
    results = [trainer.step() for _ in range(10)]
    assert results[:9] == [None] * 9 and results[9] is not None and results[9].epoch == 1
    assert trainer.global_step == 10
    # Errors average over full batches only: 250 test examples are scored as the first 200.
    x, y = trainer.split.x_test, trainer.split.y_test
    assert trainer.evaluate(x[:250], y[:250]) == trainer.evaluate(x[:200], y[:200])


# ----- the scripts end to end -----


def _finish(smoke_runs, name: str) -> dict:
    process, out = smoke_runs[name]
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-4000:]
    result = json.loads((out / f"{name}.json").read_text())
    assert MACHINE_KEYS <= set(result["machine"]), result["machine"]
    assert result["smoke"] is True
    return result


def test_throughput_smoke(smoke_runs):
    result = _finish(smoke_runs, "throughput")["results"]
    assert set(result) == {"mlp", "trace", "cnn", "xla"}
    assert "bclab/dense" in result["mlp"]["ratios"]
    assert {"trace full/off", "trace scalars/off"} <= set(result["trace"]["ratios"])
    assert "bclab/dense" in result["cnn"]["ratios"]
    # Smoke mode forces the XLA group on CPU (XLA contenders only), so its code path runs in CI.
    assert "bclab/dense (XLA)" in result["xla"]["ratios"]
    for group in ("mlp", "trace", "cnn", "xla"):
        for contender in result[group]["contenders"].values():
            assert contender["median_steps_per_s"] > 0
    ratio = result["mlp"]["ratios"]["bclab/dense"]
    assert {"median_paired", "of_medians", "of_bests", "per_rep", "target", "met"} <= set(ratio)


def test_reproduce_smoke(smoke_runs):
    result = _finish(smoke_runs, "reproduce")
    assert set(result["summary"]) == {"deterministic", "stochastic", "float"}
    paper = {"deterministic": 1.29, "stochastic": 1.18, "float": 1.30}
    for mode, summary in result["summary"].items():
        assert summary["paper_mean"] == paper[mode]
        assert 0.0 <= summary["test_error_mean"] <= 100.0
    assert result["full_length"] is False
    for run in result["runs"]:
        assert run["best_epoch"] == 1 and len(run["history"]) == 1


def test_memory_smoke(smoke_runs):
    runs = {r["trace"]: r for r in _finish(smoke_runs, "memory")["runs"]}
    assert set(runs) == {"full", "off"}
    for run in runs.values():
        assert run["peak_bytes"] >= run["peak_after_build_bytes"] >= run["peak_after_import_bytes"] > 0
        assert run["steps"] == 3
    assert runs["full"]["trace_memory_bytes"] > 0
    assert runs["off"]["trace_memory_bytes"] == 0


def test_profile_step_smoke(smoke_runs):
    result = _finish(smoke_runs, "profile_step")
    assert result["results"]
