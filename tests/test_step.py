"""The instrumented step and the Trainer: summaries against NumPy, counters, timeline, NaN."""

import numpy as np
import pytest
import tensorflow as tf

from bclab.config import RunConfig
from bclab.data import load_dataset
from bclab.train.models import squared_hinge
from bclab.train.trainer import Trainer, best_epoch

TINY = dict(n_train=600, n_validation=100, n_test=200, hidden_units=24, hidden_layers=1, batch_size=50, epochs=2)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist-5k")


def np_bucket_counts(values, edges):
    """NumPy transcription of bclab.step.bin_index (float32 arithmetic, outer bins catch the rest)."""
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
    from bclab.train.step import bucket_counts, default_bin_edges

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
    layer = trainer.instrumented.layers[-1]  # 24 x 10: small enough that the subset is every weight
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


def test_explain_mode_runs_python_every_step_and_lists_phases_in_order(digits):
    trainer = Trainer(RunConfig(**TINY), digits, explain=True)
    timelines = trainer.explain_steps(3)
    assert len(timelines) == 3
    assert trainer.instrumented.counters["python_traces"] == 3
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


def test_nan_is_recorded_at_the_step_where_it_first_appears(digits):
    trainer = Trainer(RunConfig(**TINY), digits)
    trainer.step()
    trainer.step()
    gamma = next(v for v in trainer.model.trainable_variables if v.path.endswith("bn_out/gamma"))
    gamma.assign(np.full(gamma.shape, np.nan, np.float32))
    trainer.step()
    found = trainer.trace.first_nonfinite()
    assert found is not None and found["step"] == 2


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


def test_best_epoch_ties_go_to_the_later_epoch():
    from bclab.train.trainer import EpochResult

    def result(epoch, val, test):
        return EpochResult(epoch, 1e-3, 0.0, 0.0, 0.0, val, 0.0, test, 0.0)

    results = [result(1, 5.0, 9.0), result(2, 3.0, 8.0), result(3, 4.0, 7.0), result(4, 3.0, 6.0), result(5, 6.0, 5.0)]
    assert best_epoch(results).epoch == 4 and best_epoch(results).test_error == 6.0
    assert best_epoch([]) is None


def test_jit_compile_path_runs_and_summarizes(digits):
    trainer = Trainer(RunConfig(jit_compile=True, **TINY), digits)
    trainer.step()
    trainer.step()
    assert trainer.trace.counters(1)["compiled_runs"] == 2
    phases = [event["phase"] for event in trainer.trace.events(1)]
    assert any("XLA" in phase for phase in phases)


def test_bad_sizes_fail_early_with_the_argument_named(digits):
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(RunConfig(**{**TINY, "batch_size": 5000}), digits)
    with pytest.raises(ValueError, match="n_validation"):
        Trainer(RunConfig(**{**TINY, "n_validation": 600}), digits)
