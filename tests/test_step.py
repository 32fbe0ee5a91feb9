"""The instrumented step and the Trainer: summaries against NumPy, counters, timeline, the non-finite
policy, the best-epoch rule and the data checks."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY

from bclab.config import RunConfig
from bclab.trace.schema import COMPILED_RUNS, PYTHON_TRACES, PYTHON_UPDATE_STEP_CALLS
from bclab.train.models import squared_hinge
from bclab.train.step import InstrumentedStep
from bclab.train.trainer import NonFiniteError, Trainer, best_epoch


def np_bucket_counts(values, edges):
    """NumPy transcription of bclab.train.histograms.bin_index (float32 arithmetic, outer bins catch the rest)."""
    v = np.nan_to_num(np.asarray(values, np.float32), nan=0.0)
    n = len(edges) - 1
    widths = np.diff(edges)
    if np.allclose(widths, widths[0], rtol=1e-9, atol=0):
        index = np.floor((v - np.float32(edges[0])) * np.float32(n / (edges[-1] - edges[0])))
        index = np.clip(index, 0, n - 1).astype(np.int64)
    else:  # symmetric log bins of default_bin_edges
        half = n // 2
        log10 = np.log(np.maximum(np.abs(v), np.float32(1e-37))) * np.float32(1 / np.log(10))
        j = np.clip(np.floor((log10 - np.float32(-10)) * np.float32((half - 1) / 11)) + 1, 0, half - 1)
        index = np.where(v >= 0, half + j, half - 1 - j).astype(np.int64)
    return np.bincount(index, minlength=n)


def searchsorted_counts(values, edges):
    """The counts the edges define: bin i holds edges[i] <= v < edges[i+1]; outer bins catch the rest."""
    index = np.searchsorted(np.asarray(edges[1:-1], np.float32), values, side="right")
    return np.bincount(index, minlength=len(edges) - 1)


def first_batch(trainer):
    # The first epoch keeps the data order (the reference shuffles at the end of each epoch).
    n = trainer.config.batch_size
    x = 2.0 * trainer.split.x_train[:n].astype(np.float32) / 255.0 - 1.0
    y = -np.ones((n, 10), np.float32)
    y[np.arange(n), trainer.split.y_train[:n]] = 1.0
    return x, y


def test_summaries_equal_numpy_from_the_same_weights(digits):
    # H = 0.5 so that the "real" bins (in units of H) are scaled back by H in the trace.
    trainer = Trainer(RunConfig(mode="deterministic", H=0.5, trace_sample=16, **TINY), digits)
    layers = trainer.instrumented.layers
    W0 = [layer.kernel.numpy().copy() for layer in layers]
    x, y = first_batch(trainer)
    with tf.GradientTape() as tape:
        loss = squared_hinge(y, trainer.model(x, training=True))
    grads = [g.numpy() for g in tape.gradient(loss, [layer.kernel for layer in layers])]
    trainer.step()
    W1 = [layer.kernel.numpy() for layer in layers]
    trace, edges = trainer.trace, trainer.instrumented.bin_edges
    for i, layer in enumerate(layers):
        name, H, k = layer.name, np.float32(layer.H), trainer.instrumented.hist_stride[i]
        w, g, u = W0[i].ravel(), grads[i].ravel(), (W1[i] - W0[i]).ravel()
        got_edges, counts = trace.histogram("real", name, 0)
        np.testing.assert_array_equal(got_edges, edges["real"] * layer.H)
        np.testing.assert_array_equal(counts, np_bucket_counts(w[::k] / H, edges["real"]))
        p = np.clip((w[::k] / H + 1) / 2, 0, 1)
        np.testing.assert_array_equal(trace.histogram("prob", name, 0)[1], np_bucket_counts(p, edges["prob"]))
        # The step's own gradient is not observable from outside; a second tape agrees except
        # for float noise (|g| ~ 1e-10 where BatchNorm cancels the gradient of constant pixels).
        # So the grad histogram is checked where the magnitude is clear of that noise.
        grad_counts = trace.histogram("grad", name, 0)[1]
        clear = np.abs(edges["grad"][:-1]) >= 1e-5
        oracle = np_bucket_counts(g[::k], edges["grad"])
        assert grad_counts.sum() == oracle.sum() == w[::k].size
        np.testing.assert_allclose(
            grad_counts[clear & (edges["grad"][:-1] < 0)].sum(),
            oracle[clear & (edges["grad"][:-1] < 0)].sum(),
            rtol=0.02,
        )
        np.testing.assert_array_equal(trace.histogram("update", name, 0)[1], np_bucket_counts(u[::k], edges["update"]))
        plus, minus = trace.binary_counts(name, 0)
        assert plus + minus == w.size
        assert plus == np.count_nonzero(np.clip((w / H + 1) / 2, 0, 1) >= 0.5)  # round half up: W = 0 -> +H
        sample = trace.sample_at(name, 0)
        index = trainer.instrumented.sample_index[i]
        np.testing.assert_array_equal(sample["W"], w[index])
        np.testing.assert_array_equal(sample["Wb"], np.where(w[index] >= 0, H, -H))
        np.testing.assert_array_equal(sample["update"], u[index])
        big = np.abs(g[index]) > 1e-5
        np.testing.assert_allclose(sample["grad"][big], g[index][big], rtol=1e-3)  # second tape: float noise
        _, update_norm = trace.scalars("update_norm", name)
        np.testing.assert_allclose(update_norm[0], np.linalg.norm(u), rtol=1e-5)  # float32 sum vs float64
        _, clipped = trace.scalars("clipped_fraction", name)
        assert clipped[0] == pytest.approx(np.mean(np.abs(W1[i].ravel()[::k]) >= H))  # over the subset


def test_bucket_counts_equal_numpy_and_the_bins_the_edges_define():
    from bclab.train.histograms import bucket_counts, default_bin_edges

    rng = np.random.default_rng(0)
    for kind, edges in default_bin_edges().items():
        scale = 1.0 if kind in ("real", "prob") else 10.0 ** rng.uniform(-12, 2, 5000)
        values = (rng.uniform(-1.5, 1.5, 5000) * scale).astype(np.float32)  # includes beyond both outer edges
        values = np.concatenate([values, [0.0, -0.0, np.nan]]).astype(np.float32)
        got = bucket_counts(tf.constant(values), edges).numpy()
        np.testing.assert_array_equal(got, np_bucket_counts(values, edges), err_msg=kind)
        # Away from the edges (relative distance > 1e-5) the arithmetic bins are the edges' bins.
        finite = values[np.isfinite(values)]
        gap = np.min(np.abs(finite[:, None] - edges[None, 1:-1]), axis=1) > 1e-5 * np.maximum(np.abs(finite), 1e-30)
        np.testing.assert_array_equal(
            bucket_counts(tf.constant(finite[gap]), edges).numpy(),
            searchsorted_counts(finite[gap], edges),
            err_msg=kind,
        )
    # uniform bins are exact at the edges too (float32 multiply of exact binary fractions)
    edges = default_bin_edges()["real"]
    at_edges = np.asarray(edges, np.float32)
    np.testing.assert_array_equal(
        bucket_counts(tf.constant(at_edges), edges).numpy(), searchsorted_counts(at_edges, edges)
    )


def test_flip_ratio_counts_sign_changes_between_steps(digits):
    trainer = Trainer(RunConfig(mode="deterministic", **TINY), digits)
    layer = trainer.instrumented.layers[-1]  # 32 x 10: small enough that the subset is every weight
    assert trainer.instrumented.hist_stride[-1] == 1
    W_init = layer.kernel.numpy().copy()
    trainer.step()  # step 0 compares with sign(W_init), which it uses itself: no flips
    assert trainer.trace.scalars("flip_ratio", layer.name)[1][0] == 0.0
    # Hand-made case: negate 10 weights (moved off zero, since sign(0) = +1), so that at
    # least those 10 binary weights flip; the update of step 0 may flip a few more.
    kernel = layer.kernel.numpy().copy()
    flat = kernel.reshape(-1)
    flat[:10] = np.where(flat[:10] == 0, 0.25, -flat[:10])
    layer.kernel.assign(kernel)
    trainer.step()
    expected = np.mean((kernel >= 0) != (W_init >= 0))  # Wb of step 1 vs Wb of step 0
    assert expected * kernel.size >= 10
    assert trainer.trace.scalars("flip_ratio", layer.name)[1][1] == pytest.approx(expected)


def test_one_trace_and_n_executions(digits):
    trainer = Trainer(RunConfig(**TINY), digits)
    for _ in range(5):
        trainer.step()
    counters = trainer.trace.counters(4)
    n_variables = len(trainer.model.trainable_variables)
    assert counters["python_traces"] == 1  # the Python body of the step ran once: tracing
    assert counters["python_update_step_calls"] == n_variables  # update_step's body: once per variable, at trace
    assert counters["compiled_runs"] == 5  # the compiled update ran every step
    _, runs = trainer.trace.scalars("compiled_runs")
    np.testing.assert_array_equal(runs, [1, 2, 3, 4, 5])


def test_eager_mode_runs_python_every_step_and_lists_phases_in_order(digits):
    trainer = Trainer(RunConfig(**TINY), digits, eager=True)
    timelines = trainer.step_timelines(3)
    assert len(timelines) == 3
    assert trainer.trace.meta["mode"] == "eager"
    assert trainer.instrumented.counters[PYTHON_TRACES] == 3
    phases = [event["phase"] for event in timelines[-1]]
    updates = [i for i, p in enumerate(phases) if ".update_step " in p]
    binarized = [f"binarize {layer.name}" for layer in trainer.instrumented.layers]
    order = [
        phases.index(p) for p in ("fetch batch", "enter step function", *binarized, "forward", "loss", "gradients")
    ]
    assert order == sorted(order)
    assert phases.index("gradients") < updates[0] and updates[-1] < phases.index("scale_and_clip")
    assert phases.index("scale_and_clip") < phases.index("summaries") < phases.index("callbacks")
    assert len(updates) == len(trainer.model.trainable_variables)
    starts = [event["start"] for event in timelines[-1]]
    assert starts == sorted(starts) and all(event["duration"] >= 0 for event in timelines[-1])


def test_explain_is_a_deprecated_alias_of_eager(digits):
    with pytest.warns(DeprecationWarning, match="eager"):
        trainer = Trainer(RunConfig(**TINY), digits, explain=True)
    assert trainer.eager and trainer.instrumented.eager
    with pytest.warns(DeprecationWarning, match="step_timelines"):
        timelines = trainer.explain_steps(2)
    assert len(timelines) == 2 and trainer.instrumented.counters[PYTHON_TRACES] == 2
    with pytest.warns(DeprecationWarning, match="eager"):
        assert trainer.explain is True


def assert_unpatched(optimizer, layers):
    """The inner optimizer's update_step and each layer's binary_kernel are the classes' own again."""
    inner = optimizer.inner_optimizer
    assert "update_step" not in vars(inner)
    assert inner.update_step.__func__ is type(inner).update_step
    for layer in layers:
        assert "binary_kernel" not in vars(layer)
        assert layer.binary_kernel.__func__ is type(layer).binary_kernel


def update_step_phases(phases):
    return [phase for phase in phases if ".update_step " in phase]


def test_two_instrumented_steps_on_one_model_do_not_stack(digits):
    trainer = Trainer(RunConfig(**TINY), digits)  # a compiled step
    eager = InstrumentedStep(trainer.model, trainer.optimizer, squared_hinge, level="scalars", eager=True)
    assert_unpatched(trainer.optimizer, eager.layers)  # building a step patches nothing
    x, y = first_batch(trainer)
    for _ in range(2):
        trainer.step()
        _, events = eager(x, y)
        assert_unpatched(trainer.optimizer, eager.layers)
    n_variables = len(trainer.model.trainable_variables)
    # Each step counts its own Python runs only: the compiled one traced once, the eager one ran twice.
    assert trainer.instrumented.counters == {PYTHON_TRACES: 1, PYTHON_UPDATE_STEP_CALLS: n_variables}
    assert eager.counters == {PYTHON_TRACES: 2, PYTHON_UPDATE_STEP_CALLS: 2 * n_variables}
    # ... and stamps its own timeline: one update_step phase per variable, once.
    assert len(update_step_phases(event["phase"] for event in events)) == n_variables
    compiled_phases = [event["phase"] for event in trainer.trace.events(1)]
    assert len(update_step_phases(compiled_phases)) == n_variables
    assert compiled_phases.count(f"binarize {eager.layers[0].name}") == 1


class InjectedFailure(Exception):
    pass


def fail(_value):
    raise InjectedFailure


@pytest.mark.parametrize("eager", [False, True], ids=["compiled", "eager"])
def test_an_exception_inside_the_step_restores_the_originals(digits, eager):
    trainer = Trainer(RunConfig(**TINY), digits, eager=eager)
    step, x_y = trainer.instrumented, first_batch(trainer)
    # A constraint runs inside the inner optimizer's apply, after every update_step: the failure
    # comes from inside the probes and the learning-rate scaling, binary kernels' clips set aside.
    gamma = next(v for v in trainer.model.trainable_variables if v.path.endswith("bn_out/gamma"))
    clips = [layer.kernel.constraint for layer in step.layers]
    gamma.constraint = fail
    with pytest.raises(InjectedFailure):
        step(*x_y)
    assert_unpatched(trainer.optimizer, step.layers)
    assert [layer.kernel.constraint for layer in step.layers] == clips
    gamma.constraint = None
    step(*x_y)  # and the step works afterwards, counting one more Python run
    assert step.counters[PYTHON_TRACES] == 2
    assert_unpatched(trainer.optimizer, step.layers)


def poison_gamma(trainer):
    """NaN into the output BatchNorm's gamma: every later output, loss and gradient is NaN."""
    gamma = next(v for v in trainer.model.trainable_variables if v.path.endswith("bn_out/gamma"))
    gamma.assign(np.full(gamma.shape, np.nan, np.float32))


def test_nan_stops_the_run_at_the_step_where_it_first_appears(digits):
    trainer = Trainer(RunConfig(**TINY), digits)  # on_nonfinite="stop" by default
    trainer.step()
    trainer.step()
    poison_gamma(trainer)
    with pytest.raises(NonFiniteError, match=r"^step 2: loss is NaN \(first non-finite model variable: ") as caught:
        trainer.step()
    assert isinstance(caught.value, FloatingPointError)
    assert (caught.value.step, caught.value.quantity, caught.value.where) == (2, "loss", None)
    # The step's record is in the trace before the error, and the trace agrees on where.
    assert len(trainer.trace) == 3 and trainer.global_step == 3
    assert np.isnan(trainer.trace.scalars("loss")[1][2]) and np.isfinite(trainer.trace.scalars("loss")[1][:2]).all()
    found = trainer.trace.first_nonfinite()
    assert found is not None and found["step"] == 2
    # The variable named holds NaN; the run stays stopped.
    named = str(caught.value).split("variable: ")[1].rstrip(")")
    variable = next(v for v in trainer.model.variables if v.path == named)
    assert not np.isfinite(variable.numpy()).all()
    with pytest.raises(NonFiniteError, match="^step 2: "):
        trainer.step()
    assert trainer.global_step == 3


def test_without_a_trace_the_loss_and_the_first_nonfinite_variable_are_named(digits):
    trainer = Trainer(RunConfig(**{**TINY, "trace": "off"}), digits)
    trainer.step()
    poison_gamma(trainer)
    with pytest.raises(NonFiniteError, match=r"^step 1: loss is NaN \(first non-finite model variable: .+\)$"):
        trainer.step()
    assert trainer.trace is None


def test_an_infinite_update_norm_is_named_with_its_variable(digits):
    # lr 1e30: Adam moves every parameter by about 1e30 at step 0, so an update norm,
    # sqrt(sum(u**2)) with u**2 ~ 1e60 > float32's 3.4e38, is Inf while the loss (from the
    # initial weights) is finite. Binary kernels are clipped to [-H, H]: their norms stay finite.
    trainer = Trainer(RunConfig(**{**TINY, "lr_start": 1e30, "lr_end": 1e30, "trace": "scalars"}), digits)
    with pytest.raises(NonFiniteError) as caught:
        trainer.step()
    error, trace = caught.value, trainer.trace
    assert (error.step, error.quantity) == (0, "update_norm") and error.where in trace.params
    assert str(error) == f"step 0: update_norm of variable {error.where} is Inf"
    assert np.isfinite(trace.scalars("loss")[1][0]) and trace.scalars("update_norm", error.where)[1][0] == np.inf
    for layer in trace.layer_names:  # nothing earlier in the checking order is non-finite
        assert np.isfinite(trace.scalars("update_norm", layer)[1][0]) and np.isfinite(
            trace.scalars("grad_norm", layer)[1][0]
        )


def test_continue_keeps_training_after_a_nan_and_warns_once(digits, caplog):
    trainer = Trainer(RunConfig(**{**TINY, "on_nonfinite": "continue"}), digits)
    trainer.step()
    poison_gamma(trainer)
    with caplog.at_level("WARNING", logger="bclab"):
        for _ in range(4):
            trainer.step()
    assert trainer.global_step == 5 and trainer.trace.first_nonfinite()["step"] == 1
    warnings = [r.getMessage() for r in caplog.records if "continue" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("step 1: loss is NaN")
    assert trainer.nonfinite is not None and trainer.nonfinite.step == 1


def test_epoch_uses_full_batches_and_reports_test_error_at_best_validation(digits):
    trainer = Trainer(RunConfig(**TINY), digits)
    results = trainer.run()
    assert trainer.global_step == 2 * (500 // 50)
    assert [r.epoch for r in results] == [1, 2]
    assert trainer.best() == best_epoch(results)
    assert all(0 <= r.test_error <= 100 for r in results)
    # after training every binary kernel lies in [-H, H]
    for layer in trainer.instrumented.layers:
        assert np.abs(layer.kernel.numpy()).max() <= layer.H


def epoch_result(epoch, val, test):
    from bclab.train.trainer import EpochResult

    return EpochResult(epoch, 1e-3, 0.0, 0.0, 0.0, val, 0.0, test, 0.0)


def test_best_epoch_ties_go_to_the_later_epoch():
    results = [(1, 5.0, 9.0), (2, 3.0, 8.0), (3, 4.0, 7.0), (4, 3.0, 6.0), (5, 6.0, 5.0)]
    results = [epoch_result(*r) for r in results]
    assert best_epoch(results).epoch == 4 and best_epoch(results).test_error == 6.0
    assert best_epoch([]) is None


@pytest.mark.parametrize(
    ("vals", "best"),
    [
        ([math.nan, 5.0, math.nan], 2),  # a missing error is worse than any number
        ([5.0, math.nan, 5.0, math.inf], 3),  # ties still go later; Inf counts as missing
        ([math.nan, math.nan, math.nan], 3),  # no validation set: the last epoch
        ([math.inf, 1e30], 2),
    ],
)
def test_best_epoch_counts_a_missing_validation_error_as_the_worst(vals, best):
    assert best_epoch([epoch_result(i + 1, v, 10.0 + i) for i, v in enumerate(vals)]).epoch == best


def test_without_a_validation_set_the_last_epoch_is_reported(digits):
    trainer = Trainer(RunConfig(**{**TINY, "n_validation": 0, "trace": "off"}), digits)
    results = trainer.run()
    assert len(trainer.split.x_train) == 600 and len(trainer.split.x_val) == 0
    assert [math.isnan(r.val_error) for r in results] == [True, True]
    assert trainer.best() is results[-1]


@pytest.fixture
def float32_matmuls():
    """Full float32 matmuls on GPUs that would use TensorFloat-32 (10-bit mantissa), restored after."""
    enabled = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    yield
    tf.config.experimental.enable_tensor_float_32_execution(enabled)


def test_jit_compile_path_summarizes_as_the_plain_compiled_path(digits, float32_matmuls):
    # Noise in every pixel: MNIST's constant border pixels make BatchNorm cancel their weights'
    # gradients down to float noise (~1e-10), which XLA computes differently, sign included.
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 64, digits.x_train.shape)
    noisy = dataclasses.replace(digits, x_train=np.clip(digits.x_train + noise, 0, 255).astype(np.uint8))
    # Deterministic: both paths then use H * sign(W), not their own random samples.
    plain, xla = (Trainer(RunConfig(mode="deterministic", jit_compile=j, **TINY), noisy) for j in (False, True))
    for a, b in zip(plain.model.variables, xla.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # same seed: the same weights
    plain.step()  # the first batch of the first epoch (data order kept): the same batch
    xla.step()
    a, b = plain.trace, xla.trace
    assert a.meta["mode"] == "compiled" and b.meta["mode"] == "compiled (XLA)"
    assert b.counters(0) == {
        PYTHON_TRACES: 1,
        PYTHON_UPDATE_STEP_CALLS: len(plain.model.trainable_variables),
        COMPILED_RUNS: 1,
    }
    # XLA fuses and reorders float32 arithmetic: sums agree to about 1e-7 relative (seen: 1.4e-7
    # for the loss, 1e-7 for the norms); RTOL = 1e-5 leaves room for other hardware.
    for name in ("loss", "lr"):
        np.testing.assert_allclose(a.scalars(name)[1], b.scalars(name)[1], rtol=RTOL)
    assert a.scalars("accuracy")[1][0] == b.scalars("accuracy")[1][0]
    for name in a.layer_names:
        assert_same_layer_summaries(a, b, name)
    for param in a.params:
        grad_norm = a.scalars("grad_norm", param)[1][0]
        if grad_norm > 1e-6:  # a bias before BatchNorm has gradient 0: float noise, not compared
            np.testing.assert_allclose(grad_norm, b.scalars("grad_norm", param)[1][0], rtol=RTOL)
            np.testing.assert_allclose(
                a.scalars("update_norm", param)[1][0], b.scalars("update_norm", param)[1][0], rtol=RTOL
            )


RTOL = 1e-5  # XLA vs plain float32 sums; see test_jit_compile_path_summarizes_as_the_plain_compiled_path


def assert_same_layer_summaries(a, b, name):
    """Step 0 of layer `name` in traces `a` and `b`, made from the same weights and batch."""
    assert a.binary_counts(name, 0) == b.binary_counts(name, 0)  # the same W: the same Wb, exactly
    for scalar in ("grad_norm", "update_norm"):
        np.testing.assert_allclose(a.scalars(scalar, name)[1], b.scalars(scalar, name)[1], rtol=RTOL)
    for scalar in ("clipped_fraction", "flip_ratio"):
        assert a.scalars(scalar, name)[1][0] == b.scalars(scalar, name)[1][0]
    for kind in ("real", "prob"):  # functions of W alone: exact
        np.testing.assert_array_equal(a.histogram(kind, name, 0)[1], b.histogram(kind, name, 0)[1])
    for kind in ("grad", "update"):
        # Only a value within a rounding (~1e-6 relative) of a bin edge may land in the
        # neighbour bin, changing the cumulative count at that edge by one. On a CPU none did
        # (12,864 values); 0.1% of the values leaves room for other hardware.
        counts_a, counts_b = a.histogram(kind, name, 0)[1], b.histogram(kind, name, 0)[1]
        assert counts_a.sum() == counts_b.sum()
        assert np.abs(np.cumsum(counts_a) - np.cumsum(counts_b)).max() <= max(2, counts_a.sum() // 1000), kind
    sample_a, sample_b = a.sample_at(name, 0), b.sample_at(name, 0)
    for field in ("W", "Wb", "p"):
        np.testing.assert_array_equal(sample_a[field], sample_b[field])
    for field in ("grad", "update"):
        # Adam's first step is lr * g / (|g| + 1e-8): relative rounding of small gradients
        # moves it by up to ~1e-3 of the largest step (seen: 4e-4).
        scale = np.abs(sample_a[field]).max()
        np.testing.assert_allclose(sample_a[field], sample_b[field], rtol=0, atol=2e-3 * scale)


def test_bad_sizes_fail_early_with_the_argument_named(digits):
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(RunConfig(**{**TINY, "batch_size": 5000}), digits)
    with pytest.raises(ValueError, match="n_validation"):
        Trainer(RunConfig(**{**TINY, "n_validation": 600}), digits)
    # Fewer validation examples than one batch would give no validation error at all.
    with pytest.raises(ValueError, match=r"`n_validation`, expected 0 \(no validation set\) or at least batch_size=50"):
        Trainer(RunConfig(**{**TINY, "n_validation": 49}), digits)


def test_a_declared_number_of_classes_sizes_the_output_and_checks_the_labels(digits):
    trainer = Trainer(RunConfig(**{**TINY, "num_classes": 12, "trace": "off"}), digits)
    assert trainer.dataset.num_classes == 12 and trainer.model.output_shape[-1] == 12
    first_nine = int(np.flatnonzero(digits.y_train == 9)[0])  # the first label outside 0..8
    with pytest.raises(ValueError, match=rf"y_train\[{first_nine}\]=9"):
        Trainer(RunConfig(**{**TINY, "num_classes": 9}), digits)


@pytest.mark.parametrize("architecture", ["mlp", "cnn"])
def test_the_model_size_check_counts_the_kernel_weights_the_model_builds(architecture):
    from bclab.core.layers import binary_layers
    from bclab.train.models import build_model
    from bclab.train.plan import check_model_size

    config = RunConfig(architecture=architecture, size="tiny", hidden_layers=2)
    model = build_model(config, (16, 16, 3), 7)
    built = sum(int(np.prod(layer.kernel.shape)) for layer in binary_layers(model))
    assert check_model_size(config, (16, 16, 3), 7) == built


def test_a_trace_without_tracked_weights_records_histograms_only(digits):
    trainer = Trainer(RunConfig(**{**TINY, "trace_sample": 0}), digits)
    trainer.step()
    assert trainer.instrumented.sample_size == 0 and len(trainer.trace) == 1
    name = trainer.trace.layer_names[0]
    assert trainer.trace.histogram("real", name, 0)[1].sum() > 0
