"""The lab, driven headless the way a user drives it: set control values, click buttons, wait."""

from __future__ import annotations

import collections
import html
import json

import numpy as np
import pytest
from conftest import TINY, stays, wait_until

from bclab.config import RunConfig
from bclab.lab import VIEWS, Lab, compare_runs
from bclab.train.trainer import Trainer

CONFIG = RunConfig(**TINY)  # 10 batches per epoch, 2 epochs


@pytest.fixture
def track():
    """`track(x)` returns `x` (a Lab or a Comparison) and, at teardown, stops its run and waits for
    the worker thread: no run outlives its test to step a later test's (patched) Trainer."""
    tracked = []
    yield lambda obj: tracked.append(obj) or obj
    for obj in tracked:
        obj.runner.reset(timeout=60)  # stops, joins the worker thread (TimeoutError if stuck)


def scalar_points(lab: Lab) -> int:
    return len(lab.figures["scalars"].data[0].y)


def test_construct_shows_controls_buttons_views_and_dom_classes(track):
    lab = track(Lab(CONFIG))
    assert list(lab.controls)[0] == "dataset" and lab.controls["dataset"].options[0] == "mnist-5k"
    assert set(lab.buttons) == {"start", "pause", "step", "stop", "reset"}
    assert set(lab.figures) == set(VIEWS)
    assert lab.config == CONFIG
    assert "bclab-lab" in lab.widget._dom_classes
    for key, button in lab.buttons.items():
        assert f"bclab-{key}" in button._dom_classes
    assert "bclab-progress" in lab.progress._dom_classes and "bclab-status" in lab.status._dom_classes
    for name, fig in lab.figures.items():
        assert f"bclab-fig-{name}" in fig._dom_classes
    assert "state: <b>idle</b>" in lab.status.value
    assert lab.buttons["pause"].disabled and lab.buttons["stop"].disabled
    assert "application/vnd.jupyter.widget-view+json" in lab._repr_mimebundle_()


def test_run_pause_step_stop_resume_and_reset(track):
    lab = track(Lab(CONFIG.replace(epochs=200)))
    lab.buttons["start"].click()
    assert lab.runner.state in ("building", "running")
    assert all(w.disabled for w in lab.controls.values())
    wait_until(lambda: lab.progress.value >= 3)
    assert lab.progress.max == 2000  # 200 epochs x 10 batches
    wait_until(lambda: scalar_points(lab) > 0, what="the loss line drawn")
    first = scalar_points(lab)
    wait_until(lambda: scalar_points(lab) > first, what="the loss line growing live")
    assert lab.trainer.device in lab.status.value and "running" in lab.status.value

    lab.buttons["pause"].click()
    assert lab.wait(10)
    trainer, paused_at = lab.trainer, lab.trainer.global_step
    assert lab.runner.state == "paused" and lab.buttons["pause"].description == "Resume"
    assert stays(lambda: trainer.global_step, paused_at, 0.2)  # the pause took effect within one step
    assert lab.progress.value == paused_at

    lab.buttons["step"].click()
    assert lab.wait(10)
    assert trainer.global_step == paused_at + 1 and lab.runner.state == "paused"
    assert len(trainer.trace) == trainer.global_step

    lab.buttons["stop"].click()
    assert lab.runner.state == "stopped"
    lab.buttons["start"].click()
    wait_until(lambda: trainer.global_step > paused_at + 3)
    assert lab.trainer is trainer  # resumed the same Trainer
    lab.buttons["stop"].click()
    assert lab.wait(10)
    assert lab.runner.state == "stopped" and len(trainer.trace) == trainer.global_step
    assert all(w.disabled for w in lab.controls.values())  # a Trainer still exists

    lab.buttons["reset"].click()
    assert lab.trainer is None and lab.runner.state == "idle"
    assert not any(w.disabled for w in lab.controls.values())
    assert lab.progress.value == 0 and len(lab.figures["scalars"].data[0].y) == 0
    lab.controls["epochs"].value = 1
    lab.buttons["step"].click()
    assert lab.wait(60)
    assert lab.trainer is not trainer and lab.trainer.global_step == 1
    assert lab.trainer.config.epochs == 1  # the new Trainer has the current settings


def test_bad_values_are_reported_in_the_status_line(track):
    lab = track(Lab(CONFIG))
    lab.controls["H"].value = "0"
    assert "`H`" in lab.status.value and "Received: H='0'" in html.unescape(lab.status.value)  # as typed
    assert not lab.start() and lab.trainer is None and lab.runner.state == "idle"
    lab.controls["H"].value = "one"
    assert "Received: H='one'" in html.unescape(lab.status.value)
    lab.controls["H"].value = "glorot"
    assert "Received" not in lab.status.value  # the error clears once the value is fixed

    lab.controls["batch_size"].value = 100_000
    lab.buttons["start"].click()
    assert lab.wait(60)
    assert lab.runner.state == "error" and lab.trainer is None
    assert "`batch_size`" in lab.status.value
    assert not any(w.disabled for w in lab.controls.values())  # fix the value and start again


def test_exception_in_training_shows_and_reset_recovers(monkeypatch, track):
    lab = track(Lab(CONFIG.replace(epochs=1)))
    original = Trainer.step
    steps = collections.Counter()  # per Trainer of this lab: no other run can move the count

    def flaky(trainer):
        if trainer is lab.trainer:
            steps[trainer] += 1
            if len(steps) == 1 and steps[trainer] == 3:  # the lab's first Trainer only
                raise RuntimeError("injected at the 3rd step")
        return original(trainer)

    monkeypatch.setattr(Trainer, "step", flaky)
    lab.start()
    assert lab.wait(60)
    assert lab.runner.state == "error" and "injected at the 3rd step" in lab.status.value
    assert lab.trainer.global_step == 2
    lab.reset()
    assert "injected" not in lab.status.value
    lab.start()
    assert lab.wait(60)
    assert lab.runner.state == "finished" and lab.trainer.global_step == 10
    assert list(steps.values()) == [3, 10]  # the failing step and the clean run, nothing else
    assert "val error" in lab.status.value and lab.progress.value == lab.progress.max == 10


def _assert_views_at(lab: Lab, step: int) -> None:
    trace, layer = lab.trace, lab.layer_selector.value
    shown = trace.nearest_step(step)
    _, counts = trace.histogram("real", layer, shown)
    np.testing.assert_array_equal(lab.figures["weights"].data[0].y, counts)
    _, grads = trace.histogram("grad", layer, shown)
    np.testing.assert_array_equal(lab.figures["grads"].data[0].y, grads)
    assert f"step {shown}" in lab.figures["weights"].layout.title.text


def test_history_replay_files_and_config_round_trip(tmp_path, track):
    lab = track(Lab(CONFIG))
    lab.start()
    assert lab.wait(60) and lab.runner.state == "finished"
    assert lab.history.max == 19 and lab.history.value == 19 and lab.follow.value
    assert lab.layer_selector.options == ("dense_1", "dense_out")
    _assert_views_at(lab, 19)
    lab.history.value = 5
    assert not lab.follow.value  # moving the slider leaves "follow latest"
    _assert_views_at(lab, 5)
    lab.layer_selector.value = "dense_out"
    _assert_views_at(lab, 5)
    lab.follow.value = True
    _assert_views_at(lab, 19)

    lab.save_trace(tmp_path / "trace.npz")
    lab.save_model(tmp_path / "model.keras")
    lab.save_figures(tmp_path / "figures.html")
    assert (tmp_path / "model.keras").stat().st_size > 0
    assert 'id="bclab-weights"' in (tmp_path / "figures.html").read_text()
    with pytest.raises(ValueError, match=".keras"):
        lab.save_model(tmp_path / "model.h5")
    lab.save_folder.value = str(tmp_path / "saved")
    lab.save_button.click()
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [
        "config.json",
        "figures.html",
        "model.keras",
        "trace.npz",
    ]
    assert "Saved" in lab.status.value

    text = lab.export_config()
    viewer = track(Lab())
    assert viewer.import_config(text) and viewer.config == CONFIG
    assert not viewer.import_config("{not json")
    assert "not valid JSON" in viewer.status.value
    assert not viewer.import_config('{"H": 0}') and "`H`" in viewer.status.value

    assert viewer.load_trace(tmp_path / "missing.npz") is None
    assert "Trace not loaded" in viewer.status.value
    loaded = viewer.load_trace(tmp_path / "trace.npz")
    assert viewer.trace is loaded and len(loaded) == 20 and viewer.history.max == 19
    assert viewer.config == CONFIG  # the trace's config went into the controls
    viewer.history.value = 3
    _assert_views_at(viewer, 3)
    with pytest.raises(ValueError, match="no model"):
        viewer.save_model(tmp_path / "none.keras")


def test_compare_runs_trains_each_config_and_draws_one_line_each(track):
    configs = {mode: CONFIG.replace(mode=mode, trace="scalars") for mode in ("deterministic", "stochastic", "float")}
    comparison = track(compare_runs(configs, steps=6))
    assert comparison.wait(60)
    assert comparison.runner.state == "finished"
    assert [t.global_step for t in comparison.trainers.values()] == [6, 6, 6]
    assert set(comparison.figures) == {"loss", "accuracy", "flip_ratio"}
    for scalar, fig in comparison.figures.items():
        assert [trace.name for trace in fig.data] == list(configs)
        # float has no binary weights, so no flip ratio
        expected = [6, 6, 0] if scalar == "flip_ratio" else [6, 6, 6]
        assert [len(trace.y) for trace in fig.data] == expected
    assert comparison.progress.value == comparison.progress.max == 18


def test_compare_runs_reads_counters_and_epoch_at_model_level(track):
    # Counters and the epoch are model-level scalars: read per layer they would draw empty lines.
    configs = {mode: CONFIG.replace(mode=mode, trace="scalars") for mode in ("deterministic", "float")}
    comparison = track(compare_runs(configs, steps=4, scalars=("compiled_runs", "epoch")))
    assert comparison.wait(60)
    runs = comparison.figures["compiled_runs"].data
    assert [list(trace.y) for trace in runs] == [[1, 2, 3, 4], [1, 2, 3, 4]]
    assert [len(trace.y) for trace in comparison.figures["epoch"].data] == [4, 4]


def test_nan_shows_in_the_status_line_with_its_step(track):
    lab = track(Lab(CONFIG))
    lab.buttons["step"].click()
    assert lab.wait(60)
    gamma = next(v for v in lab.trainer.model.trainable_variables if v.path.endswith("bn_out/gamma"))
    gamma.assign(np.full(gamma.shape, np.nan, np.float32))
    lab.buttons["step"].click()
    assert lab.wait(60)
    assert "NaN or Inf at step 1" in lab.status.value  # the run's own update, no redraw asked
    # on_nonfinite="stop" (the default): the run stops, and the status line says where, apart from other errors
    assert lab.runner.state == "error" and lab.trainer.global_step == 2
    status = html.unescape(lab.status.value)
    assert "Training stopped at a NaN/Inf: step 1: loss is NaN" in status and "Error:" not in status
    assert not lab.step() or (lab.wait(60) and lab.trainer.global_step == 2)  # it stays stopped
    lab.buttons["reset"].click()
    assert lab.trainer is None and "NaN" not in lab.status.value
    lab.buttons["step"].click()
    assert lab.wait(60)
    assert lab.runner.state == "paused" and lab.trainer.global_step == 1  # a fresh run: Reset recovered


def test_exceptions_in_widget_callbacks_show_in_the_status_line(tmp_path, monkeypatch, track):
    lab = track(Lab(CONFIG))

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(lab.runner, "start", boom)
    lab.buttons["start"].click()  # ipywidgets would only log this
    assert "start failed: RuntimeError: boom" in lab.status.value
    monkeypatch.setattr(lab.views, "refresh", boom)
    lab.follow.value = False
    lab.follow.value = True  # asks for a redraw
    assert "following the latest step failed: RuntimeError: boom" in lab.status.value
    (tmp_path / "file").write_text("")
    lab.save_folder.value = str(tmp_path / "file" / "sub")
    lab.save_button.click()
    assert "Not saved: [Errno 20] Not a directory" in lab.status.value

    def refuse(constant):
        raise AssertionError(f"bare {constant}")

    assert json.loads(lab.export_config(), parse_constant=refuse) == CONFIG.to_dict()  # strict JSON
