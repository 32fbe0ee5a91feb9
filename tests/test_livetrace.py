"""`bclab.LiveTrace`: the step trace of a user's own `model.fit`, on any compiled model.

Values are checked against what the test computes itself on the same weights and batch (the
loss, the gradient norm, the applied update, the +H/-H counts), not against the probe's own
arithmetic; counters against the number of steps and variables.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import bclab
from bclab.trace.schema import COMPILED_RUNS, GRAD_NORM, PYTHON_TRACES, PYTHON_UPDATE_STEP_CALLS, UPDATE_NORM
from bclab.train.backend import BackendError
from bclab.train.modelrun import ModelRun


def digits_xy(digits, n=400, flat=True, one_hot=True):
    x = digits.x_train[:n].astype("float32") / 127.5 - 1
    x = x.reshape(n, -1) if flat else x.reshape(n, 28, 28, 1)
    y = digits.y_train[:n]
    return x, (2 * keras.utils.to_categorical(y, 10) - 1 if one_hot else y)


def mixed_functional(seed=1):
    """A functional model mixing BinaryDense and plain Dense, deterministic (exact checks)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((784,))
    h = bclab.BinaryDense(64, stochastic=False, name="bin1")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Dense(32, activation="relu", name="float1")(h)
    outputs = bclab.BinaryDense(10, stochastic=False, name="bin2")(h)
    return keras.Model(inputs, outputs)


def custom_loss(y_true, y_pred):
    """Squared hinge written by hand: a loss Keras does not know by name."""
    return ops.mean(ops.square(ops.maximum(0.0, 1.0 - y_true * y_pred)), axis=-1)


def counters(trace):
    return trace.counters(trace.last_step)


def test_functional_mixed_model_with_custom_loss_matches_a_hand_made_step(digits):
    model = mixed_functional()
    model.compile(optimizer=bclab.BinaryConnectOptimizer(keras.optimizers.Adamax(1e-3)), loss=custom_loss)
    x, y = digits_xy(digits, n=100)
    # What the test expects of the first step, computed on the same weights and batch.
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(custom_loss(y, model(x, training=True)))
    grads = dict(zip([v.path for v in model.trainable_variables], tape.gradient(loss, model.trainable_variables)))
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    expected_plus = int((before["bin1/kernel"] >= 0).sum())  # deterministic: +H where W >= 0

    callback = bclab.LiveTrace(show=False)
    model.fit(x, y, batch_size=100, epochs=1, callbacks=[callback], verbose=0)

    trace = callback.trace
    assert len(trace) == 1 and trace.last_step == 0
    assert [(li.name, li.binary) for li in trace.layers] == [("bin1", True), ("float1", False), ("bin2", True)]
    assert trace.scalars("loss")[1][0] == pytest.approx(float(loss), rel=1e-5)
    for name, path in (("bin1", "bin1/kernel"), ("float1", "float1/kernel")):
        after = model.get_layer(name).kernel.numpy()
        assert trace.scalars(GRAD_NORM, name)[1][0] == pytest.approx(np.linalg.norm(grads[path]), rel=1e-4)
        assert trace.scalars(UPDATE_NORM, name)[1][0] == pytest.approx(np.linalg.norm(after - before[path]), rel=1e-4)
    assert trace.binary_counts("bin1", 0) == (expected_plus, before["bin1/kernel"].size - expected_plus)
    assert trace.params == tuple(v.path for v in model.trainable_variables if not v.path.endswith("kernel"))
    # Histograms: the float layer has real, grad and update, but no hard-sigmoid probabilities.
    assert trace.histogram("real", "float1", 0)[1].sum() > 0
    with pytest.raises(LookupError):
        trace.histogram("prob", "float1", 0)
    n_variables = len(model.trainable_variables)
    assert counters(trace) == {PYTHON_TRACES: 2, PYTHON_UPDATE_STEP_CALLS: 2 * n_variables, COMPILED_RUNS: 1}


def test_sequential_records_every_batch_and_the_call_timeline(digits):
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(32, kernel_initializer=keras.initializers.RandomUniform(-1, 1)),
            bclab.BinaryDense(10, stochastic=True),
        ]
    )
    model.compile(bclab.BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)), "squared_hinge", metrics=["accuracy"])
    x, y = digits_xy(digits, n=300)
    callback = bclab.LiveTrace("scalars", show=False)
    model.fit(x, y, batch_size=50, epochs=2, callbacks=[callback], validation_data=(x[:100], y[:100]), verbose=0)
    trace = callback.trace
    assert trace.steps().tolist() == list(range(12))
    assert trace.scalars("epoch")[1].tolist() == [0.0] * 6 + [1.0] * 6
    assert counters(trace)[COMPILED_RUNS] == 12
    accuracy = trace.scalars("accuracy")[1]
    assert np.all((accuracy >= 0) & (accuracy <= 1))
    phases = [e["phase"] for e in trace.events(trace.last_step)]
    order = ["enter step function", f"binarize {model.layers[1].name}", "forward and loss", "gradients"]
    assert phases[:4] == order and phases.index("apply_gradients") > phases.index("gradients")
    assert sum(".update_step " in p for p in phases) == len(model.trainable_variables)
    assert [set(h) >= {"loss", "val_loss"} for h in callback.history] == [True, True]
    with pytest.raises(LookupError):  # "scalars": no histograms
        trace.histogram("real", model.layers[1].name, 0)


def test_convnet_and_tf_data_input(digits):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            bclab.BinaryConv2D(8, 3, stochastic=False),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(8, 3),
            keras.layers.Flatten(),
            bclab.BinaryDense(10, stochastic=False),
        ]
    )
    model.compile(bclab.BinaryConnectOptimizer(keras.optimizers.SGD(0.01)), "squared_hinge")
    x, y = digits_xy(digits, n=200, flat=False)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(50)
    callback = bclab.LiveTrace(show=False)
    model.fit(data, epochs=1, callbacks=[callback], verbose=0, shuffle=False)
    trace = callback.trace
    assert len(trace) == 4 and [li.binary for li in trace.layers] == [True, False, True]
    conv = trace.layers[0]
    assert conv.shape == (3, 3, 1, 8)
    plus, minus = trace.binary_counts(conv.name, trace.last_step)
    assert plus + minus == 72


def test_two_fits_in_a_row_continue_one_trace_and_plain_fit_is_restored(digits, tmp_path):
    model = mixed_functional(seed=4)
    model.compile(bclab.BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)), "squared_hinge")
    x, y = digits_xy(digits, n=200)
    path = tmp_path / "fit.npz"
    callback = bclab.LiveTrace(show=False, save_to=path)
    model.fit(x, y, batch_size=50, epochs=1, callbacks=[callback], verbose=0)
    assert bclab.Trace.load(path).last_step == 3
    model.fit(x, y, batch_size=50, epochs=3, initial_epoch=1, callbacks=[callback], verbose=0)
    trace = callback.trace
    assert trace.steps().tolist() == list(range(12))
    assert trace.scalars("epoch")[1].tolist() == [0.0] * 4 + [1.0] * 4 + [2.0] * 4
    # The first fit traces twice: its first trace builds the optimizer's variables, and TensorFlow
    # traces a function that created variables once more. The second fit traces once.
    assert counters(trace)[COMPILED_RUNS] == 12 and counters(trace)[PYTHON_TRACES] == 3
    saved = bclab.Trace.load(path)
    assert saved.steps().tolist() == trace.steps().tolist()
    np.testing.assert_array_equal(saved.scalars("loss")[1], trace.scalars("loss")[1])
    # The probe is gone: a plain fit uses the class's train_step and records nothing more.
    assert "train_step" not in vars(model)
    model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    assert len(trace) == 12


def test_a_float_model_and_a_protocol_layer(digits):
    class MyBinaryDense(keras.layers.Dense):
        """A user's own binary Dense following bclab's protocol (bclab.core.protocol)."""

        H = 1.0
        binary_kernel_in_use = None

        def call(self, inputs, training=None):
            Wb = bclab.binarization(self.kernel, self.H, deterministic=True)
            self.binary_kernel_in_use = Wb
            return ops.matmul(inputs, bclab.straight_through(self.kernel, Wb)) + self.bias

    keras.utils.set_random_seed(5)
    x, y = digits_xy(digits, n=100, one_hot=False)
    for binary in (False, True):
        first = MyBinaryDense(16, name="mine") if binary else keras.layers.Dense(16, name="mine")
        model = keras.Sequential([keras.Input((784,)), first, keras.layers.Dense(10, name="out")])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        callback = bclab.LiveTrace(show=False)
        model.fit(x, y, batch_size=50, epochs=1, callbacks=[callback], verbose=0)
        trace = callback.trace
        assert [li.binary for li in trace.layers] == [binary, False]
        if binary:
            plus, minus = trace.binary_counts("mine", 1)
            assert plus + minus == 784 * 16 and plus > 0 and minus > 0
            assert "flip_ratio" in trace.scalar_names("mine")
        else:
            assert "flip_ratio" not in trace.scalar_names("mine")
            assert trace.layers[0].H == pytest.approx(float(np.abs(model.layers[0].kernel.numpy()).max()), rel=0.5)


@pytest.mark.parametrize(
    "compile_args,fit_args,traces",
    [
        ({"run_eagerly": True}, {}, 4),  # Python runs every step
        ({"jit_compile": True}, {}, 2),  # XLA: no device timestamps
        ({"steps_per_execution": 2}, {}, 2),  # one record per call of two steps
    ],
    ids=["eager", "xla", "steps_per_execution"],
)
def test_execution_modes(digits, compile_args, fit_args, traces):
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((784,)), bclab.BinaryDense(16, stochastic=False), keras.layers.Dense(10)])
    model.compile(bclab.BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)), "squared_hinge", **compile_args)
    x, y = digits_xy(digits, n=200)
    callback = bclab.LiveTrace(show=False)
    model.fit(x, y, batch_size=50, epochs=1, callbacks=[callback], verbose=0, **fit_args)
    trace = callback.trace
    assert counters(trace)[COMPILED_RUNS] == 4 and counters(trace)[PYTHON_TRACES] == traces
    assert trace.last_step == 3
    if "steps_per_execution" in compile_args:
        assert trace.steps().tolist() == [1, 3]
    phases = [e["phase"] for e in trace.events(trace.last_step)]
    if compile_args.get("jit_compile"):
        assert len(phases) == 1 and "XLA" in phases[0]
        assert trace.meta["mode"] == "compiled (XLA)"
    else:
        assert "gradients" in phases


def test_live_views_show_the_trace_headless(digits):
    model = mixed_functional(seed=7)
    model.compile(bclab.BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)), "squared_hinge")
    x, y = digits_xy(digits, n=100)
    callback = bclab.LiveTrace(show=True)
    model.fit(x, y, batch_size=50, epochs=1, callbacks=[callback], verbose=0)
    assert callback.widget is not None and "fit finished" in callback._status.value
    assert callback.views.history.max == 1
    weights = callback.views.figures["weights"]
    assert any(t.y is not None and len(t.y) for t in weights.data)


def test_model_run_drives_a_compiled_model_batch_by_batch(digits):
    model = mixed_functional(seed=8)
    model.compile(bclab.BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)), "squared_hinge")
    x, y = digits_xy(digits, n=300)
    run = ModelRun(model, (x[:200], y[:200]), (x[200:], y[200:]), epochs=2, batch_size=50)
    results = []
    while not run.done:
        result = run.step()
        if result is not None:
            results.append(result)
    assert [r.epoch for r in results] == [1, 2] and run.global_step == run.steps_total == 8
    assert all(0 <= r.val_error <= 100 and math.isfinite(r.val_loss) for r in results)
    assert math.isnan(results[0].test_error) and run.config is None
    assert run.trace.last_step == 7
    run.close()
    assert "train_step" not in vars(model)


def test_a_new_trace_removes_a_probe_left_by_an_interrupted_fit(digits):
    model = mixed_functional(seed=9)
    model.compile(bclab.BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)), "squared_hinge")
    x, y = digits_xy(digits, n=100)

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise KeyboardInterrupt

    first = bclab.LiveTrace(show=False)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=50, epochs=1, callbacks=[first, Interrupt()], verbose=0)
    assert "train_step" in vars(model)  # fit did not reach on_train_end
    second = bclab.LiveTrace(show=False)
    model.fit(x, y, batch_size=50, epochs=1, callbacks=[second], verbose=0)
    assert len(second.trace) == 2 and len(first.trace) == 1
    assert counters(second.trace)[COMPILED_RUNS] == 2
    assert "train_step" not in vars(model)


# ----- bad input: (what, call, the words the error must contain) -----


def _compiled(**kwargs):
    model = keras.Sequential([keras.Input((4,)), bclab.BinaryDense(3, stochastic=False)])
    model.compile("sgd", "mse", **kwargs)
    return model


BAD_INPUT = [
    ("level", lambda tmp: bclab.LiveTrace("everything"), "level"),
    ("level off", lambda tmp: bclab.LiveTrace("off"), "level"),
    ("show", lambda tmp: bclab.LiveTrace(show="yes"), "show"),
    ("save_to folder", lambda tmp: bclab.LiveTrace(save_to=tmp), "not a folder"),
    ("save_to no folder", lambda tmp: bclab.LiveTrace(save_to=tmp / "nope" / "t.npz"), "existing folder"),
    ("save_to type", lambda tmp: bclab.LiveTrace(save_to=3), "save_to"),
    ("sample_size", lambda tmp: bclab.LiveTrace(sample_size=-1), "sample_size"),
    ("seed", lambda tmp: bclab.LiveTrace(seed=1.5), "seed"),
    ("ModelRun model", lambda tmp: ModelRun("model", ([[0]], [[0]])), "keras.Model"),
    (
        "ModelRun uncompiled",
        lambda tmp: ModelRun(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), (np.zeros((4, 4)),) * 2),
        "compiled",
    ),
    ("ModelRun data", lambda tmp: ModelRun(_compiled(), np.zeros((4, 4))), "pair (x, y)"),
    ("ModelRun rows", lambda tmp: ModelRun(_compiled(), (np.zeros((4, 4)), np.zeros((3, 3)))), "same number of rows"),
    ("ModelRun strings", lambda tmp: ModelRun(_compiled(), (np.array([["a"] * 4] * 4), np.zeros((4, 3)))), "numbers"),
    ("ModelRun batch", lambda tmp: ModelRun(_compiled(), (np.zeros((4, 4)), np.zeros((4, 3))), batch_size=8), "rows"),
    ("ModelRun epochs", lambda tmp: ModelRun(_compiled(), (np.zeros((4, 4)), np.zeros((4, 3))), epochs=0), "epochs"),
]


@pytest.mark.parametrize("what,call,words", BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_named(tmp_path, what, call, words):
    with pytest.raises(ValueError, match="Received") as error:
        call(tmp_path)
    assert words in str(error.value)


def test_one_livetrace_follows_one_model(digits):
    x, y = np.zeros((8, 4), "float32"), np.zeros((8, 3), "float32")
    callback = bclab.LiveTrace(show=False)
    _compiled().fit(x, y, batch_size=4, callbacks=[callback], verbose=0)
    with pytest.raises(ValueError, match="new LiveTrace per model"):
        _compiled().fit(x, y, batch_size=4, callbacks=[callback], verbose=0)


def test_a_model_without_kernels_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="trainable layer with a kernel"):
        model.fit(np.zeros((8, 4)), np.zeros((8, 4)), batch_size=4, callbacks=[bclab.LiveTrace(show=False)], verbose=0)


def test_another_backend_gets_a_clear_error(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(BackendError, match="TensorFlow backend.*'jax'"):
        bclab.LiveTrace(show=False)
