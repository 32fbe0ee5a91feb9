"""BackgroundRun: the state machine on a fake trainer, commands from many threads, and stop() on a real one."""

from __future__ import annotations

import logging
import random
import threading
import time

import pytest
from conftest import TINY, stays, wait_until

from bclab.train.runner import WORKER_NAME, BackgroundRun


class FakeTrainer:
    """Counts steps; an epoch is `per_epoch` steps; optionally fails at step `fail_at` (1-based)."""

    def __init__(
        self, steps_total: int = 10_000, delay: float = 0.002, per_epoch: int = 10, fail_at: int | None = None
    ):
        self.steps_total, self.delay, self.per_epoch, self.fail_at = steps_total, delay, per_epoch, fail_at
        self.global_step = 0
        self.calls = 0

    @property
    def done(self) -> bool:
        return self.global_step >= self.steps_total

    def step(self):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("injected failure")
        time.sleep(self.delay)
        self.global_step += 1
        return self.global_step // self.per_epoch if self.global_step % self.per_epoch == 0 else None


class Recorder:
    def __init__(self, **trainer_args):
        self.trainer_args = trainer_args
        self.made: list[FakeTrainer] = []
        self.states: list[str] = []
        self.progress: list[int] = []
        self.epochs: list[int] = []

    def make(self) -> FakeTrainer:
        self.made.append(FakeTrainer(**self.trainer_args))
        return self.made[-1]

    def runner(self, **kwargs) -> BackgroundRun:
        return BackgroundRun(
            self.make,
            on_state=self.states.append,
            on_progress=lambda t: self.progress.append(t.global_step),
            on_epoch=self.epochs.append,
            **kwargs,
        )


def test_runs_to_the_end_with_states_epochs_and_a_final_progress():
    rec = Recorder(steps_total=50, delay=0.0)
    run = rec.runner()
    assert run.state == "idle" and run.trainer is None
    assert run.start()
    assert run.wait(10)
    assert run.state == "finished" and not run.active
    assert rec.states == ["building", "running", "finished"]
    assert rec.epochs == [1, 2, 3, 4, 5]  # 50 steps / 10 per epoch
    assert rec.progress[-1] == 50
    assert not run.start()  # a finished run does not start again
    assert not run.step_once()


def test_progress_is_throttled_but_every_epoch_end_reports():
    rec = Recorder(steps_total=300, delay=0.001, per_epoch=100)
    run = rec.runner(min_interval=10.0)
    run.start()
    run.wait(10)
    # build, the three epoch ends (100, 200, 300) and the finish; nothing in between.
    assert rec.progress == [0, 100, 200, 300, 300]


def test_pause_resume_stop_and_start_continue_the_same_trainer():
    rec = Recorder(delay=0.005)
    run = rec.runner()
    run.start()
    wait_until(lambda: run.trainer is not None and run.trainer.global_step > 3)
    assert run.state == "running"
    assert run.pause()
    assert run.wait(5)
    trainer, paused_at = run.trainer, run.trainer.global_step
    assert run.state == "paused" and rec.progress[-1] == paused_at
    assert stays(lambda: trainer.global_step, paused_at, 0.05)  # the pause took effect within one step
    assert run.resume()
    wait_until(lambda: trainer.global_step > paused_at + 3)
    assert run.stop()
    assert run.wait(5) and not run.active
    assert run.state == "stopped"
    stopped_at = trainer.global_step
    assert stays(lambda: trainer.global_step, stopped_at, 0.05)
    assert run.start()
    wait_until(lambda: trainer.global_step > stopped_at + 3)
    assert run.trainer is trainer and len(rec.made) == 1  # resumed, not rebuilt
    run.stop()
    run.wait(5)


def test_step_once_before_start_while_paused_and_not_while_running():
    rec = Recorder(delay=0.005)
    run = rec.runner()
    assert run.step_once()
    assert run.wait(5)
    assert run.state == "paused" and run.trainer.global_step == 1
    assert run.step_once() and run.wait(5)
    assert run.trainer.global_step == 2
    run.stop()
    assert run.state == "stopped"  # stopping a paused run is immediate
    assert run.step_once() and run.wait(5)
    assert run.trainer.global_step == 3 and run.state == "paused"
    run.start()
    assert not run.step_once()  # a run is going: refused
    run.stop()
    run.wait(5)


def test_pause_during_build_pauses_before_the_first_step():
    gate = threading.Event()
    rec = Recorder()

    def slow_make():
        gate.wait(5)
        return rec.make()

    run = BackgroundRun(slow_make, on_state=rec.states.append)
    run.start()
    assert run.state == "building"
    assert run.pause()
    gate.set()
    assert run.wait(5)
    assert run.state == "paused" and run.trainer.global_step == 0


def test_reset_drops_the_trainer_and_the_next_start_builds_a_new_one():
    rec = Recorder(delay=0.002)
    run = rec.runner()
    run.start()
    wait_until(lambda: run.trainer is not None and run.trainer.global_step > 2)
    run.reset()
    assert run.state == "idle" and run.trainer is None and not run.active
    assert rec.states[-1] == "idle"
    run.step_once()
    run.wait(5)
    assert len(rec.made) == 2 and run.trainer is rec.made[1] and run.trainer.global_step == 1


def test_exception_in_a_step_sets_error_and_reset_then_start_works(caplog):
    rec = Recorder(steps_total=20, delay=0.0, fail_at=3)
    run = rec.runner()
    with caplog.at_level(logging.ERROR, logger="bclab.train.runner"):
        run.start()
        run.wait(5)
    assert run.state == "error" and not run.active
    assert run.error == "RuntimeError: injected failure"
    assert run.trainer.global_step == 2  # the two steps before the failure stand
    assert "injected failure" in caplog.text and "Traceback" in caplog.text
    run.reset()
    assert run.error is None
    rec.trainer_args["fail_at"] = None
    run.start()
    run.wait(5)
    assert run.state == "finished" and run.trainer.global_step == 20


def test_exception_while_building_leaves_no_trainer():
    def broken():
        raise ValueError("Received an invalid value for `batch_size`")

    run = BackgroundRun(broken)
    run.start()
    run.wait(5)
    assert run.state == "error" and run.trainer is None
    assert run.error.startswith("ValueError: Received an invalid value for `batch_size`")


def test_a_failing_callback_is_logged_and_training_goes_on(caplog):
    def bad_progress(_trainer):
        raise KeyError("callback bug")

    run = BackgroundRun(lambda: FakeTrainer(steps_total=30, delay=0.0), on_progress=bad_progress, min_interval=0)
    with caplog.at_level(logging.ERROR, logger="bclab.train.runner"):
        run.start()
        run.wait(5)
    assert run.state == "finished" and "callback bug" in caplog.text


def test_hold_keeps_the_next_step_from_running():
    run = BackgroundRun(lambda: FakeTrainer(delay=0.001))
    run.start()
    wait_until(lambda: run.trainer is not None and run.trainer.global_step > 2)
    with run.hold() as trainer:
        held_at = trainer.global_step
        assert stays(lambda: trainer.global_step, held_at, 0.05)
    run.stop()
    run.wait(5)


@pytest.mark.parametrize("bad", [-1, True, "1", float("nan"), float("inf")])
def test_bad_min_interval_is_rejected(bad):
    with pytest.raises(ValueError, match="min_interval"):
        BackgroundRun(FakeTrainer, min_interval=bad)


def test_stop_leaves_the_trace_consistent_with_the_trainer():
    from bclab.config import RunConfig
    from bclab.train.trainer import Trainer

    config = RunConfig(**{**TINY, "epochs": 50})
    run = BackgroundRun(lambda: Trainer(config))
    run.start()
    wait_until(lambda: run.trainer is not None and run.trainer.global_step >= 5, timeout=60)
    run.stop()
    assert run.wait(30)
    trainer = run.trainer
    assert run.state == "stopped"
    assert len(trainer.trace) == trainer.global_step
    assert trainer.trace.last_step == trainer.global_step - 1
    stopped_at = trainer.global_step
    run.start()
    wait_until(lambda: trainer.global_step >= stopped_at + 3, timeout=30)
    run.stop()
    run.wait(30)
    assert run.trainer is trainer and len(trainer.trace) == trainer.global_step


# ---------------------------------------------------------------------- several threads


def new_workers(before: set[threading.Thread]) -> list[threading.Thread]:
    """The runner worker threads alive now that were not alive at `before`."""
    return [t for t in threading.enumerate() if t.name == WORKER_NAME and t not in before]


class OneStepAtATime(FakeTrainer):
    """A FakeTrainer that records the most steps (of any trainer of one test) running at once."""

    guard = threading.Lock()
    inside = 0
    most = 0

    def step(self):
        with OneStepAtATime.guard:
            OneStepAtATime.inside += 1
            OneStepAtATime.most = max(OneStepAtATime.most, OneStepAtATime.inside)
        try:
            return super().step()
        finally:
            with OneStepAtATime.guard:
                OneStepAtATime.inside -= 1


def test_commands_from_many_threads_keep_one_worker_and_a_consistent_state():
    before = set(threading.enumerate())
    OneStepAtATime.most = 0
    seen_alive: list[int] = []
    made: list[FakeTrainer] = []

    def make():
        made.append(OneStepAtATime(steps_total=400, delay=0.0002, per_epoch=50))
        return made[-1]

    def on_state(_state):
        seen_alive.append(len(new_workers(before)))

    run = BackgroundRun(make, on_state=on_state, on_progress=lambda _t: None, min_interval=0)
    commands = [
        run.start,
        run.resume,
        run.step_once,
        run.pause,
        run.stop,
        lambda: run.reset(timeout=10),
        lambda: run.wait(0.005),
        lambda: (run.state, run.trainer, run.error, run.active),
    ]
    failures: list[BaseException] = []
    gate = threading.Barrier(8)

    def hammer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            gate.wait(10)
            for _ in range(120):
                rng.choice(commands)()
                seen_alive.append(len(new_workers(before)))
        except BaseException as exc:  # reported below, with the command's traceback
            failures.append(exc)

    threads = [threading.Thread(target=hammer, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a command hung"
    assert not failures, failures
    assert max(seen_alive) <= 1  # never two workers alive, sampled after every command and state change
    assert OneStepAtATime.most == 1  # never two steps at once, whichever trainer
    run.stop()
    assert run.wait(10) and not run.active
    assert new_workers(before) == []
    # Consistent: "idle" exactly when there is no trainer, and the runner still works.
    assert (run.state == "idle") == (run.trainer is None)
    assert run.state in ("idle", "paused", "stopped", "finished", "error") and run.error is None
    run.reset(timeout=10)
    assert run.state == "idle" and run.trainer is None
    assert run.step_once() and run.wait(10)
    assert run.state == "paused" and run.trainer is made[-1] and run.trainer.global_step == 1


def test_reset_and_start_wait_for_a_long_step_at_most_their_timeout():
    release = threading.Event()

    class Stuck(FakeTrainer):
        def step(self):
            release.wait(30)
            return super().step()

    run = BackgroundRun(lambda: Stuck(delay=0.0))
    assert run.start()
    wait_until(lambda: run.trainer is not None)
    assert run.pause()  # the worker winds down, but only after the stuck step
    with pytest.raises(TimeoutError, match=r"did not finish its step within 0\.05 s"):
        run.start(timeout=0.05)
    with pytest.raises(TimeoutError, match=r"did not stop within 0\.05 s; call reset\(\) again"):
        run.reset(timeout=0.05)
    assert run.active and run.trainer is not None  # nothing was dropped while the step goes on
    release.set()
    run.reset(timeout=10)
    assert run.state == "idle" and run.trainer is None and not run.active


def test_reset_from_a_state_callback_is_refused_not_a_deadlock():
    outcomes: list[str] = []
    run = None

    def on_state(state):
        if state in ("building", "finished"):  # the announcing caller's thread, then the worker's
            try:
                run.reset(timeout=5)
            except RuntimeError as exc:
                outcomes.append(f"{state}: {exc}")

    run = BackgroundRun(lambda: FakeTrainer(steps_total=3, delay=0.0), on_state=on_state)
    assert run.start() and run.wait(10)
    assert run.state == "finished"
    assert len(outcomes) == 2 and all("own thread (a callback)" in text for text in outcomes)


def test_a_nonfinite_error_from_the_trainer_becomes_the_error_state_with_its_text():
    from bclab.train.trainer import NonFiniteError

    class Diverging(FakeTrainer):
        def step(self):
            if self.global_step == 12:
                raise NonFiniteError(12, "grad_norm", "dense_1", "step 12: grad_norm of layer dense_1 is Inf")
            return super().step()

    run = BackgroundRun(lambda: Diverging(delay=0.0))
    assert run.start() and run.wait(10)
    assert run.state == "error" and run.trainer.global_step == 12
    assert run.error == "NonFiniteError: step 12: grad_norm of layer dense_1 is Inf"


def test_a_real_run_that_diverges_stops_in_the_error_state_naming_the_step():
    from bclab.config import RunConfig
    from bclab.train.trainer import Trainer

    config = RunConfig(**{**TINY, "lr_start": 1e30, "lr_end": 1e30, "on_nonfinite": "stop"})
    run = BackgroundRun(lambda: Trainer(config))
    assert run.start() and run.wait(60)
    assert run.state == "error", run.error
    assert run.error.startswith("NonFiniteError: step ")
    step = int(run.error.split()[2].rstrip(":"))
    assert step < run.trainer.steps_total and ("NaN" in run.error or "Inf" in run.error)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"make_trainer": "Trainer"}, "make_trainer"),
        ({"make_trainer": FakeTrainer, "on_state": "print"}, "on_state"),
        ({"make_trainer": FakeTrainer, "on_progress": 3}, "on_progress"),
    ],
)
def test_arguments_that_are_not_callables_are_rejected(kwargs, name):
    with pytest.raises(ValueError, match=f"Received an invalid value for `{name}`"):
        BackgroundRun(**kwargs)


@pytest.mark.parametrize("command", ["reset", "wait", "start"])
@pytest.mark.parametrize("bad", [-1, "soon", float("nan")])
def test_bad_timeouts_are_rejected(command, bad):
    run = BackgroundRun(FakeTrainer)
    with pytest.raises(ValueError, match="`timeout`, expected None or a non-negative number of seconds"):
        getattr(run, command)(timeout=bad)
    assert run.state == "idle" and not run.active
