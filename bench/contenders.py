"""The contenders that `throughput.py` and `profile_step.py` time: each has `name`, `run(n)` -> seconds, `close()`.

`StepContender` trains a Keras model with one compiled train step (or `model.fit`) in this
process; `TrainerContender` drives `bclab.Trainer.step()`; `LarqContender` talks to
`larq_worker.py` in `bench/.venv-larq` (Keras 2). Also: the plain-Keras twin of the bclab
architectures, and the batches every contender of a group shares.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

LARQ_VENV = _common.BENCH_DIR / ".venv-larq"
LARQ_PACKAGES = ["larq", "tf-keras", "tensorflow-cpu==2.21.*"]


# ----- contenders: name, run(n) -> seconds -----


class StepContender:
    """A model and optimizer trained by one compiled train step (or model.fit), in this process."""

    def __init__(self, name, model, optimizer, batches, *, jit_compile=False, path="step"):
        import tensorflow as tf

        from bclab import squared_hinge

        self.name, self.model, self.optimizer, self.path = name, model, optimizer, path
        self.xs = [tf.constant(x) for x, _ in batches]
        self.ys = [tf.constant(y) for _, y in batches]
        self.position = 0
        variables = model.trainable_variables
        if path == "fit":
            model.compile(optimizer=optimizer, loss=squared_hinge, jit_compile=jit_compile)
            batch = int(self.xs[0].shape[0])
            x = tf.concat(self.xs, 0)
            y = tf.concat(self.ys, 0)
            self.dataset = (
                tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).repeat().prefetch(2)
            )
        else:
            optimizer.build(variables)

            def train_step(x, y):
                with tf.GradientTape() as tape:
                    out = model(x, training=True)
                    loss = squared_hinge(y, out)
                grads = tape.gradient(loss, variables)
                optimizer.apply(grads, variables)
                return loss

            self.train_step = tf.function(train_step, jit_compile=jit_compile)

    def run(self, n: int) -> float:
        if self.path == "fit":
            clock = step_clock()
            self.model.fit(self.dataset, steps_per_epoch=n, epochs=1, verbose=0, callbacks=[clock])
            return clock.seconds
        loss = None
        start = time.perf_counter()
        for _ in range(n):
            loss = self.train_step(self.xs[self.position], self.ys[self.position])
            self.position = (self.position + 1) % len(self.xs)
        loss.numpy()  # wait for the last step
        return time.perf_counter() - start

    def close(self) -> None:
        pass


def step_clock():
    """A Keras callback timing `fit`'s steps: from the first batch's start to the end of training.

    Leaves out what a `fit` call costs around its steps, which a user's one long `fit` pays once:
    here about 0.5 s after `on_train_end` in most calls on a CPU (the same for every model), which
    would otherwise be a fixed cost added to every repetition and pull every ratio towards 1.
    TensorFlow runs each step to its end before `fit` calls the next callback (eager is synchronous).
    """
    import keras

    class _StepClock(keras.callbacks.Callback):
        seconds = float("nan")

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start

    return _StepClock()


class TrainerContender:
    """bclab.Trainer driven by step(); epoch ends (evaluation) are stepped over untimed."""

    def __init__(self, name, config, dataset):
        from bclab import Trainer

        self.name = name
        self.trainer = Trainer(config, dataset)

    def _steps_left_in_epoch(self) -> int:
        t = self.trainer
        return t.batches_per_epoch - t.global_step % t.batches_per_epoch

    def run(self, n: int) -> float:
        if self._steps_left_in_epoch() <= n:  # the last step of an epoch also evaluates
            for _ in range(self._steps_left_in_epoch()):
                self.trainer.step()
        start = time.perf_counter()
        for _ in range(n):
            self.trainer.step()  # returns after the summaries reached the host
        return time.perf_counter() - start

    def close(self) -> None:
        pass


class LarqContender:
    """One long-lived larq worker in bench/.venv-larq; runs a repetition when told."""

    def __init__(self, name, python, batches, *, units, layers, bn_alpha, warmup, xla=False, path="step"):
        import numpy as np

        self.name = name
        self._tmp = tempfile.TemporaryDirectory(prefix="bclab-larq-")
        data = Path(self._tmp.name) / "batches.npz"
        np.savez(data, x=np.stack([x for x, _ in batches]), y=np.stack([y for _, y in batches]))
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
        command = [
            str(python),
            str(_common.BENCH_DIR / "larq_worker.py"),
            "--data",
            str(data),
            "--units",
            str(units),
            "--layers",
            str(layers),
            "--bn-alpha",
            str(bn_alpha),
            "--warmup",
            str(warmup),
            "--path",
            path,
        ]
        if xla:
            command.append("--xla")
        self._stderr = open(Path(self._tmp.name) / "stderr.txt", "w+")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env
        )
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        for line in self.process.stdout:
            if line.startswith("@@"):
                message = json.loads(line[2:])
                if "error" in message:
                    raise RuntimeError(f"larq worker: {message['error']}")
                return message
        self._stderr.seek(0)
        raise RuntimeError("larq worker ended early:\n" + self._stderr.read()[-3000:])

    def run(self, n: int) -> float:
        self.process.stdin.write(f"run {n}\n")
        self.process.stdin.flush()
        return float(self._read()["seconds"])

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
        self._stderr.close()
        self._tmp.cleanup()


# ----- larq environment -----


def larq_python(create: bool) -> tuple[Path | None, str]:
    """(python of bench/.venv-larq, message); creates the venv once when `create`."""
    python = LARQ_VENV / "bin" / "python"
    check = [str(python), "-c", "import larq, tf_keras, tensorflow"]
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    if python.exists() and subprocess.run(check, env=env, capture_output=True).returncode == 0:
        return python, f"cached venv {LARQ_VENV}"
    if not create:
        return None, f"skipped: no usable {LARQ_VENV} (smoke mode creates none; run without --smoke once)"
    print(f"creating {LARQ_VENV}: pip install {' '.join(LARQ_PACKAGES)} (once; a few minutes) ...", flush=True)
    log = _common.BENCH_DIR / ".venv-larq-install.log"
    try:
        with open(log, "w") as out:
            subprocess.run([sys.executable, "-m", "venv", str(LARQ_VENV)], check=True, stdout=out, stderr=out)
            subprocess.run(
                [str(python), "-m", "pip", "install", *LARQ_PACKAGES], check=True, stdout=out, stderr=out, timeout=1800
            )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        return None, f"skipped: could not create the larq venv ({error}); see {log} (no network?)"
    if subprocess.run(check, env=env, capture_output=True).returncode != 0:
        return None, f"skipped: larq venv created but `import larq, tf_keras` fails; see {log}"
    return python, f"created venv {LARQ_VENV}"


def larq_versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
        "('larq', 'tf-keras', 'tensorflow-cpu', 'keras', 'numpy')}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


# ----- models and data -----


def plain_model(config, input_shape, num_classes):
    """The same architecture as `bclab.build_model` with plain keras Dense/Conv2D."""
    import keras

    def bn(name):
        return keras.layers.BatchNormalization(momentum=1.0 - config.bn_alpha, epsilon=config.bn_epsilon, name=name)

    layers: list = [keras.Input(input_shape)]
    if config.architecture == "mlp":
        layers.append(keras.layers.Flatten())
        for i in range(config.hidden_layers):
            layers += [keras.layers.Dense(config.units, name=f"dense_{i + 1}"), bn(f"bn_{i + 1}"), keras.layers.ReLU()]
    else:
        for block, channels in enumerate(config.channels, start=1):
            for conv in (1, 2):
                layers.append(keras.layers.Conv2D(channels, 3, padding="same", name=f"conv_{block}{conv}"))
                if conv == 2:
                    layers.append(keras.layers.MaxPooling2D(2))
                layers += [bn(f"bn_{block}{conv}"), keras.layers.ReLU()]
        layers.append(keras.layers.Flatten())
        for fc in (1, 2):
            layers += [keras.layers.Dense(config.dense_units, name=f"fc_{fc}"), bn(f"bn_fc{fc}"), keras.layers.ReLU()]
    layers += [keras.layers.Dense(num_classes, name="dense_out"), bn("bn_out")]
    return keras.Sequential(layers)


def mnist_batches(dataset, batch_size, n_batches):
    from bclab import data as bcdata

    return list(
        bcdata.batches(
            dataset.x_train[: batch_size * n_batches],
            dataset.y_train[: batch_size * n_batches],
            batch_size,
            shuffle=False,
            seed=None,
            flatten=False,
            num_classes=dataset.num_classes,
        )
    )


def random_image_batches(shape, num_classes, batch_size, n_batches, seed=0):
    import numpy as np

    from bclab import data as bcdata

    rng = np.random.default_rng(seed)
    return [
        (
            bcdata.to_float(rng.integers(0, 256, (batch_size, *shape), dtype=np.uint8)),
            bcdata.one_hot_pm1(rng.integers(0, num_classes, batch_size), num_classes),
        )
        for _ in range(n_batches)
    ]


def bclab_contender(name, config, input_shape, num_classes, batches, *, jit_compile=False, path="step", wrap=True):
    """`bclab.build_model(config)` with `BinaryConnectOptimizer` around the recipe's optimizer (`wrap=False`: none)."""
    import keras

    from bclab import BinaryConnectOptimizer, build_model
    from bclab.train.models import make_optimizer

    keras.utils.set_random_seed(config.seed)
    model = build_model(config, input_shape, num_classes)
    if not wrap:  # a profiling variant: the "W_LR_scale is not applied" warning is expected
        logging.getLogger("bclab.core.constraints").setLevel(logging.ERROR)
    optimizer = BinaryConnectOptimizer(make_optimizer(config)) if wrap else make_optimizer(config)
    return StepContender(name, model, optimizer, batches, jit_compile=jit_compile, path=path)


def dense_contender(name, config, input_shape, num_classes, batches, *, jit_compile=False, path="step"):
    """The plain-Keras twin of `bclab_contender`: same architecture, seed, optimizer and batches."""
    import keras

    from bclab.train.models import make_optimizer

    keras.utils.set_random_seed(config.seed)
    return StepContender(
        name,
        plain_model(config, input_shape, num_classes),
        make_optimizer(config),
        batches,
        jit_compile=jit_compile,
        path=path,
    )
