"""Data-parallel training on `tf.distribute`: N replicas give the run of one device.

TensorFlow splits the CPU into logical devices only before its runtime starts, and this test
process has started it, so the checks run in one fresh subprocess (`CHECKS`) that prints its
findings as JSON; each test below asserts one of them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

CHECKS = r"""
import json, sys
import numpy as np
from bclab.train.devices import split_cpu
split_cpu(2)
import keras, tensorflow as tf, bclab
from bclab.train.devices import strategy_for

found = {}
TINY = dict(n_train=600, n_validation=100, n_test=200, hidden_units=32, hidden_layers=2, batch_size=50, epochs=1)

def trained(devices, steps, **overrides):
    trainer = bclab.Trainer(bclab.RunConfig(devices=devices, **TINY, **overrides))
    for _ in range(steps):
        trainer.step()
    return trainer

# 1. Deterministic: two replicas give one device's weights (SGD: linear in the gradients).
one, two = trained(1, 5, optimizer="sgd"), trained(2, 5, optimizer="sgd")
weights = lambda t: [v.numpy() for v in t.model.weights]
found["weights_max_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(weights(one), weights(two)))
found["trainable_max_diff"] = max(
    float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(one.model.trainable_variables, two.model.trainable_variables)
)
found["loss_max_diff"] = float(np.abs(one.trace.scalars("loss")[1] - two.trace.scalars("loss")[1]).max())
found["records"] = two.trace.steps().tolist()
found["device"] = two.device
found["bn_synchronized"] = sorted({l.synchronized for l in two.model.layers if isinstance(l, keras.layers.BatchNormalization)})
found["bn_one_device"] = sorted({l.synchronized for l in one.model.layers if isinstance(l, keras.layers.BatchNormalization)})
found["update_steps_per_variable"] = two.trace.counters(4)["python_update_step_calls"] / len(two.model.trainable_variables)
found["events"] = [e["phase"] for e in two.trace.events(4)]
# Adam too: the same first step (Adam's step is lr * sign-like, so later steps amplify rounding).
a1, a2 = trained(1, 1), trained(2, 1)
found["adam_first_step_update_norm"] = [float(t.trace.scalars("update_norm", "dense_1")[1][0]) for t in (a1, a2)]

# 2. Stochastic: every replica uses the same sample Wb, and the next step draws a new one.
st = trained(2, 1, mode="stochastic")
layers = st.instrumented.binary_layers

@tf.function
def draw():  # what each replica's forward pass draws: binary_kernel(training=True)
    return st.strategy.run(lambda: [layer.binary_kernel(True) for layer in layers])

def binary_per_replica():
    return [[r.numpy() for r in st.strategy.experimental_local_results(b)] for b in draw()]

first, second = binary_per_replica(), binary_per_replica()
found["replicas"] = [len(r) for r in first]
found["replicas_same_Wb"] = all(np.array_equal(r[0], r[1]) for r in first)
found["next_draw_differs"] = any(not np.array_equal(a[0], b[0]) for a, b in zip(first, second))

# 3. model.fit under a user's strategy.scope(): the same weights as fit on one device.
def fit(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(3)
        model = keras.Sequential([
            keras.Input((784,)),
            bclab.BinaryDense(32, stochastic=False),
            keras.layers.BatchNormalization(synchronized=True),
            keras.layers.ReLU(),
            bclab.BinaryDense(10, stochastic=False),
        ])
        model.compile(bclab.BinaryConnectOptimizer(keras.optimizers.SGD(0.01)), "squared_hinge")
    w0 = model.layers[0].kernel.numpy().copy()
    digits = bclab.load_dataset("mnist-5k")
    xs = digits.x_train[:200].reshape(200, -1) / 127.5 - 1
    ys = 2 * keras.utils.to_categorical(digits.y_train[:200], 10) - 1
    model.fit(xs, ys, batch_size=50, epochs=1, shuffle=False, verbose=0)
    return model, w0

single, w0 = fit(tf.distribute.get_strategy())
mirrored, _ = fit(strategy_for(2))
found["fit_max_diff"] = float(np.abs(single.layers[0].kernel.numpy() - mirrored.layers[0].kernel.numpy()).max())
found["fit_moved"] = float(np.abs(mirrored.layers[0].kernel.numpy() - w0).max())

# LiveTrace records single-device fits only, and says so.
try:
    mirrored.fit(np.zeros((4, 784)), np.zeros((4, 10)), batch_size=2, callbacks=[bclab.LiveTrace(show=False)], verbose=0)
except ValueError as error:
    found["livetrace_refused"] = str(error)

# 4. More replicas than the started runtime has: a clear error.
try:
    bclab.Trainer(bclab.RunConfig(devices=4, **{**TINY, "batch_size": 52}))
except ValueError as error:
    found["too_many"] = str(error)
print("FOUND" + json.dumps(found))
"""


@pytest.fixture(scope="module")
def found():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", CHECKS], capture_output=True, text=True, timeout=600, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("FOUND")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    return json.loads(lines[-1][len("FOUND") :])


def test_two_replicas_train_the_weights_of_one_device(found):
    assert found["device"] == "2 x CPU (logical devices)"
    assert found["trainable_max_diff"] < 1e-6
    assert found["loss_max_diff"] < 1e-6
    # BatchNorm's moving statistics: the synchronized variance sums squares in another order.
    assert found["weights_max_diff"] < 1e-2
    one, two = found["adam_first_step_update_norm"]
    assert two == pytest.approx(one, rel=1e-4)  # W_LR_scale applied to every replica's copy


def test_batch_norm_statistics_are_the_whole_batchs(found):
    assert found["bn_synchronized"] == [True] and found["bn_one_device"] == [False]


def test_the_trace_records_each_step_once(found):
    assert found["records"] == [0, 1, 2, 3, 4]
    assert found["update_steps_per_variable"] == 2  # once per replica's copy, at trace time
    assert any("distributed step on 2 replicas" in phase for phase in found["events"])


def test_stochastic_replicas_share_one_sample_per_step(found):
    assert found["replicas"] == [2, 2, 2]
    assert found["replicas_same_Wb"] and found["next_draw_differs"]


def test_fit_under_a_users_strategy_scope(found):
    assert found["fit_moved"] > 1e-3  # it trained
    assert found["fit_max_diff"] < 1e-6


def test_livetrace_refuses_a_data_parallel_fit_clearly(found):
    assert "2 replicas" in found["livetrace_refused"] and "devices=N" in found["livetrace_refused"]


def test_more_devices_than_the_runtime_has_is_named(found):
    assert "Received: devices=4" in found["too_many"] and "before it starts" in found["too_many"]


def test_the_cli_trains_on_two_replicas(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-m", "bclab.cli", "train", "--devices", "2", "--epochs", "1", "--n-train", "700"]
        + ["--hidden-units", "32", "--quiet", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "device 2 x CPU (logical devices)" in out.stdout + out.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["devices"] == 2


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_local_workers_train_one_model(tmp_path):
    """MultiWorkerMirroredStrategy: two `bclab train` processes on 127.0.0.1, one cluster."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CONFIG": json.dumps(tf_config),
        }
        command = [sys.executable, "-m", "bclab.cli", "train", "--epochs", "1", "--n-train", "900"]
        command += ["--hidden-units", "32", "--quiet", "--out", str(tmp_path / f"worker{index}")]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in processes]
    for p, (out, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-2000:]
        assert "multi-worker cluster" in out + err
    import keras

    import bclab  # noqa: F401  (registers the layers)

    models = [keras.models.load_model(tmp_path / f"worker{i}" / "model.keras") for i in range(2)]
    for a, b in zip(models[0].weights, models[1].weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # one model, synchronized every step
    results = [json.loads((tmp_path / f"worker{i}" / "result.json").read_text()) for i in range(2)]
    assert results[0]["test_error_at_best_val"] == results[1]["test_error_at_best_val"]
