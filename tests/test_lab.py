"""The lab, driven headless the way a user drives it: set control values, click buttons, wait."""

from __future__ import annotations

import collections
import html
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY, stays, wait_until

import bclab
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

    lab.buttons["pause"].click()  # Resume continues the same run
    wait_until(lambda: trainer.global_step > paused_at + 3)
    assert lab.trainer is trainer
    lab.buttons["stop"].click()  # Stop ends the run: the views stay, the settings unlock
    assert lab.wait(10)
    assert lab.runner.state == "stopped" and len(trainer.trace) == trainer.global_step
    assert not any(w.disabled for w in lab.controls.values())
    assert lab.buttons["start"].description == "New run" and lab.buttons["pause"].disabled
    assert lab.buttons["step"].disabled and "New run</b> starts over" in lab.hint.value
    assert f"last step <b>{trainer.global_step - 1}</b>" in lab.status.value  # the views' numbering
    assert lab.figures["scalars"].data[0].x[-1] == trainer.global_step - 1

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

    # Two devices: the CPU is split if TensorFlow has not started in this process yet (this test
    # may run first); once it has, the error names the setting and what to do.
    lab.controls["batch_size"].value = 50
    lab.controls["devices"].value = 2
    lab.buttons["reset"].click()
    lab.buttons["start"].click()
    assert lab.wait(120)
    if lab.runner.state == "finished":
        assert lab.trainer.device.startswith("2 x ") and lab.trainer.instrumented.replicas == 2
    else:
        assert (
            lab.runner.state == "error" and "`devices`" in lab.status.value and "before it starts" in lab.status.value
        )


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
    np.testing.assert_allclose(lab.figures["weights"].data[0].y, counts / counts.sum())  # fractions of the sample
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
        "model.bclab",
        "model.keras",
        "trace.npz",
    ]
    assert f"Saved into {tmp_path / 'saved'}" in lab.status.value
    # Both model sizes, and the 1-bit file predicts what the model predicts.
    assert re.search(r"model\.keras [\d.]+ MB, model\.bclab [\d.]+ MB, [\d.]+x smaller", lab.status.value)
    packed = bclab.load_packed(tmp_path / "saved" / "model.bclab")
    batch = np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(packed(batch, training=False), lab.trainer.model(batch, training=False))

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


def test_views_follow_every_new_run_and_say_when_they_do_not(track):
    """Issue 12, problem 1: a slider moved in one run must not freeze the views of the next."""
    lab = track(Lab(CONFIG))
    lab.start()
    assert lab.wait(60)
    lab.views.back.click()  # one step back: not following any more, and the lab says so
    assert not lab.follow.value and lab.history.value == 18
    assert "viewing step <b>18</b> of 19" in lab.views.position.value and "not following" in lab.views.position.value
    _assert_views_at(lab, 18)
    lab.views.forward.click()
    assert lab.history.value == 19 and "not following" in lab.views.position.value
    lab.history.value = 4
    lab.buttons["start"].click()  # "New run": the old run is released, the new one is followed
    assert lab.wait(60) and lab.runner.state == "finished"
    assert lab.follow.value and lab.history.value == 19 and "following the run" in lab.views.position.value
    _assert_views_at(lab, 19)
    lab.history.value = 2
    lab.buttons["reset"].click()
    lab.buttons["step"].click()
    assert lab.wait(60)
    assert lab.follow.value and lab.history.max == 0 and "step 0" in lab.figures["weights"].layout.title.text


def test_save_asks_before_overwriting_and_load_before_discarding_a_run(tmp_path, track):
    lab = track(Lab(CONFIG.replace(epochs=1)))
    lab.start()
    assert lab.wait(60)
    lab.save_folder.value = str(tmp_path / "run")
    lab.save_button.click()
    assert f"Saved into {tmp_path / 'run'}" in lab.status.value  # absolute paths in messages
    (tmp_path / "run" / "config.json").write_text("{}")
    lab.save_button.click()  # the folder holds files now: asked, nothing written yet
    assert lab.files.asking and "overwrite" in lab.files.question.value
    assert (tmp_path / "run" / "config.json").read_text() == "{}"
    lab.files.no.click()
    assert not lab.files.asking and (tmp_path / "run" / "config.json").read_text() == "{}"
    lab.save_button.click()
    lab.files.yes.click()
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == CONFIG.replace(epochs=1).to_dict()

    trainer = lab.trainer
    lab.load_button.click()  # the folder's trace.npz; a run exists: asked first
    assert lab.files.asking and "discards the current run" in lab.files.question.value
    lab.files.no.click()
    assert lab.trainer is trainer and lab.trace is trainer.trace
    assert lab.load_trace(tmp_path / "run" / "trace.npz") is None and "Reset it first" in lab.status.value
    lab.load_button.click()
    lab.files.yes.click()
    assert lab.trainer is None and len(lab.trace) == 10 and str(tmp_path / "run" / "trace.npz") in lab.status.value
    assert "loaded trace: 10 steps, last step 9" in lab.status.value
    assert "Trace: 10 steps (last step 9)" in repr(lab.trace)  # a summary, not an opaque object


def test_float_mode_says_there_is_no_binary_kernel(track):
    lab = track(Lab(CONFIG.replace(mode="float", epochs=1)))
    lab.buttons["step"].click()
    assert lab.wait(60)
    notes = lab.figures["weights"].layout.annotations
    assert notes[2].visible and "no binary kernel" in notes[2].text
    assert len(lab.figures["weights"].data[1].y) == 0


@pytest.fixture
def own_model():
    """A small compiled Sequential mixing BinaryDense and Dense, on 300 random digits-like rows."""
    import keras

    import bclab

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), bclab.BinaryDense(32, H=1.0), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer=bclab.BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (300, 64)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 10, 300), 10)
    return model, (x, y), (x[:100], y[:100])


def test_the_lab_drives_your_own_compiled_model(own_model, track):
    model, data, validation = own_model
    lab = track(Lab(model=model, data=data, validation_data=validation, epochs=2, batch_size=50))
    assert set(lab.controls) == {"epochs", "batch_size", "seed", "trace"}  # no architecture, mode, H, optimizer...
    assert "BinaryConnectOptimizer" in lab._form.model_text and "categorical_crossentropy" in lab._form.model_text
    lab.buttons["start"].click()
    assert lab.wait(120) and lab.runner.state == "finished", lab.status.value
    assert lab.trainer.global_step == 12 and lab.progress.value == 12  # 2 epochs x 6 batches
    assert lab.history.max == 11 and scalar_points(lab) == 12
    assert len(lab.figures["scalars"].data[6].y) == 2  # the validation loss at each epoch's end
    assert len(lab.figures["weights"].data[0].y) > 0 and len(lab.figures["weights"].data[1].y) == 2  # W and Wb shown
    assert "epoch 2/2" in lab.status.value
    first = lab.trainer
    lab.buttons["start"].click()  # a new run, from the weights the lab was given
    assert lab.wait(120) and lab.trainer is not first and lab.trainer.global_step == 12


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"model": "not a model", "data": None}, "model"),
        ({"data": "x"}, "data"),
        ({"data": ("only x",)}, "data"),
        ({"data": (np.zeros((5, 64)), np.zeros((4, 10)))}, "data"),
        ({"validation_data": (np.zeros((5, 64)), np.zeros((4, 10)))}, "validation_data"),
        ({"config": CONFIG}, "config"),
        ({"dataset": object()}, "dataset"),
    ],
)
def test_bad_arguments_for_your_own_model_name_the_argument(own_model, kwargs, name):
    model, data, _ = own_model
    arguments = {"model": model, "data": data, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        Lab(**arguments)


def test_data_without_a_model_is_refused():
    with pytest.raises(ValueError, match="`data`"):
        Lab(data=(np.zeros((2, 2)), np.zeros(2)))


RESET_CYCLES, RESET_PEAK_MB = 10, 1200  # Binder gives about 2 GB; the browser needs the rest

_CYCLES = """
import sys, time
# Binder installs no JAX (binder/requirements.txt); where JAX is installed (the test extra), TensorFlow's
# own import loads it (tf.lite's util), about 120 MB that a Binder kernel does not have.
sys.modules["jax"] = None
from bclab.lab import Lab
lab = Lab()  # the default run: RunConfig(), 350 steps of a 3 x 256 MLP, traced "full"
start = time.monotonic()
for cycle in range(int(sys.argv[1])):
    lab.buttons["reset"].click()
    lab.buttons["start"].click()
    assert lab.wait(600) and lab.runner.state == "finished", lab.status.value
    assert lab.trainer.global_step == 350
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child started by a big test
# process would report the parent's resident size; VmHWM belongs to this process's own memory.
peak_kb = int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])
print(peak_kb // 1024, round(time.monotonic() - start))
"""


def test_ten_reset_start_cycles_of_the_default_run_stay_within_binder_memory():
    """Issue 12, problem 5: Reset releases the run's model, trace and graphs. Ten full default
    runs (about 5 s each here) in a fresh process; its peak resident memory (VmHWM) must stay
    at or under 1.2 GB. Before the fix each cycle kept about 45 MB (1.6 GB after nine runs)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", _CYCLES, str(RESET_CYCLES)], capture_output=True, text=True, timeout=900, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    peak_mb, seconds = (int(v) for v in done.stdout.split()[-2:])
    print(f"{RESET_CYCLES} Reset -> Start cycles of the default run: peak resident {peak_mb} MB, {seconds} s")
    assert peak_mb <= RESET_PEAK_MB, f"peak resident memory {peak_mb} MB after {RESET_CYCLES} cycles"
