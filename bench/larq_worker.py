"""larq side of `bench/throughput.py`: runs inside `bench/.venv-larq` (Keras 2, tf-keras).

Trains the paper's MNIST MLP shape with `larq.layers.QuantDense` (`ste_sign` kernel
quantizer, `weight_clip` constraint, no input quantizer) + BatchNorm + ReLU, Adam, the
squared hinge loss, through a manual compiled train step or `model.fit` on a tf.data pipeline
(`--path`, the same two paths as the bclab side), on the batches that `throughput.py` saved to
`--data`.

Protocol (one long-lived process, so the parent can alternate bclab and larq
repetitions): after building and warming up it prints `@@{"ready": true, ...}`; then
for every stdin line `run N` it times N steps and prints
`@@{"steps": N, "seconds": s, "steps_per_second": N / s}`; `quit` ends it.
Lines without the `@@` prefix are not part of the protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _say(payload: dict) -> None:
    sys.stdout.write("@@" + json.dumps(payload) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz with x (n_batches, B, ...) and y (n_batches, B, classes)")
    parser.add_argument("--units", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--bn-alpha", type=float, default=0.15)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--xla", action="store_true", help="jit_compile=True on the train step")
    parser.add_argument("--path", choices=("step", "fit"), default="step", help="manual compiled step or model.fit")
    args = parser.parse_args()

    from importlib.metadata import version

    import larq as lq
    import numpy as np
    import tensorflow as tf

    keras = tf.keras  # tf_keras under TF_USE_LEGACY_KERAS=1
    data = np.load(args.data)
    xs = [tf.constant(x) for x in data["x"]]
    ys = [tf.constant(y) for y in data["y"]]
    num_classes = int(data["y"].shape[-1])

    def quant_dense(units: int, name: str):
        return lq.layers.QuantDense(
            units, kernel_quantizer="ste_sign", kernel_constraint="weight_clip", input_quantizer=None, name=name
        )

    def batch_norm(name: str):
        return keras.layers.BatchNormalization(momentum=1.0 - args.bn_alpha, epsilon=1e-4, name=name)

    layers = [keras.Input(tuple(data["x"].shape[2:])), keras.layers.Flatten()]
    for i in range(args.layers):
        layers += [quant_dense(args.units, f"dense_{i + 1}"), batch_norm(f"bn_{i + 1}"), keras.layers.ReLU()]
    layers += [quant_dense(num_classes, "dense_out"), batch_norm("bn_out")]
    model = keras.Sequential(layers)
    optimizer = keras.optimizers.Adam(args.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8)

    def squared_hinge(y, out):
        return tf.reduce_mean(tf.square(tf.maximum(0.0, 1.0 - y * out)))

    @tf.function(jit_compile=args.xla)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = squared_hinge(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    position = 0

    def run_steps(n: int) -> float:
        nonlocal position
        loss = None
        start = time.perf_counter()
        for _ in range(n):
            loss = train_step(xs[position], ys[position])
            position = (position + 1) % len(xs)
        loss.numpy()  # wait for the last step
        return time.perf_counter() - start

    # The fit path: the same pipeline as the bclab side's (bench/contenders.py, StepContender).
    dataset = tf.data.Dataset.from_tensor_slices((tf.concat(xs, 0), tf.concat(ys, 0)))
    dataset = dataset.batch(int(xs[0].shape[0]), drop_remainder=True).repeat().prefetch(2)
    if args.path == "fit":
        model.compile(optimizer=optimizer, loss=squared_hinge, jit_compile=args.xla)

    class StepClock(keras.callbacks.Callback):
        """From the first batch's start to the end of training, as bench/contenders.py's step_clock."""

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start

    def run_fit(n: int) -> float:
        clock = StepClock()
        model.fit(dataset, steps_per_epoch=n, epochs=1, verbose=0, callbacks=[clock])
        return clock.seconds

    run = run_fit if args.path == "fit" else run_steps

    run(max(1, args.warmup))
    _say(
        {
            "ready": True,
            "larq": version("larq"),
            "tensorflow": tf.__version__,
            "tf_keras": version("tf-keras"),
            "keras_module": keras.__name__,
            "params": int(model.count_params()),
            "xla": args.xla,
            "path": args.path,
        }
    )
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "quit":
            break
        if command[0] == "run":
            n = int(command[1])
            seconds = run(n)
            _say({"steps": n, "seconds": seconds, "steps_per_second": n / seconds})
        else:
            _say({"error": f"unknown command {line.strip()!r}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
