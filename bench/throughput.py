"""Training throughput (steps per second) of bclab against plain Keras, larq and itself.

Every comparison runs side by side in ONE process with interleaved repetitions: after a
warm-up, each repetition times N steps of every contender in turn (the order rotates
from one repetition to the next), so load from other processes hits all contenders
alike. Reported: the median and best steps/s per contender, and ratios as the median of
the per-repetition ratios (paired, so a slow patch of the machine cancels out).

Groups:
  mlp    the paper's MNIST MLP (784-2048-2048-2048-10, BatchNorm, batch 100, Adam):
         bclab BinaryDense + BinaryConnectOptimizer vs keras Dense + Adam, same data, same
         compiled train step (or both through model.fit with --path fit); plus larq
         QuantDense (Keras 2, in bench/.venv-larq) when available.
  trace  bclab Trainer.step() with trace "full" / "scalars" vs "off", same config.
  cnn    the CIFAR-10 convnet (2xC3-MP2-2xC3-MP2-2xC3-MP2-FC-FC-10, batch 50) at --cnn-size.
  xla    the mlp comparison again with jit_compile=True and False (automatic when
         TensorFlow sees a GPU; --xla forces it on CPU).

Usage:
  python bench/throughput.py                      # full run (a few minutes on 2 CPU cores)
  python bench/throughput.py --smoke --out /tmp/x # tiny sizes, seconds, for CI
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.quiet_tensorflow()

LARQ_VENV = _common.BENCH_DIR / ".venv-larq"
LARQ_PACKAGES = ["larq", "tf-keras", "tensorflow-cpu==2.21.*"]
TARGETS = {
    "bclab/dense": ">= 0.95",
    "bclab/larq": "> 1.0",
    "trace full/off": ">= 0.90",
    "trace scalars/off": ">= 0.90",
}


# ----- contenders: name, run(n) -> seconds -----


class StepContender:
    """A model and optimizer trained by one compiled train step (or model.fit), in this process."""

    def __init__(self, name, model, optimizer, batches, *, jit_compile=False, path="step"):
        import tensorflow as tf

        from bclab.train.models import squared_hinge

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
            start = time.perf_counter()
            self.model.fit(self.dataset, steps_per_epoch=n, epochs=1, verbose=0)
            return time.perf_counter() - start
        loss = None
        start = time.perf_counter()
        for _ in range(n):
            loss = self.train_step(self.xs[self.position], self.ys[self.position])
            self.position = (self.position + 1) % len(self.xs)
        loss.numpy()  # wait for the last step
        return time.perf_counter() - start

    def close(self) -> None:
        pass


class TrainerContender:
    """bclab.Trainer driven by step(); epoch ends (evaluation) are stepped over untimed."""

    def __init__(self, name, config, dataset):
        from bclab.train.trainer import Trainer

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

    def __init__(self, name, python, batches, *, units, layers, bn_alpha, warmup, xla=False):
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
    """(python of bench/.venv-larq, message); creates the venv once when ``create``."""
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
    """The same architecture as bclab.models.build_model with plain keras Dense/Conv2D."""
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
    import keras

    from bclab.core.optimizers import BinaryConnectOptimizer
    from bclab.train.models import build_model, make_optimizer

    keras.utils.set_random_seed(config.seed)
    model = build_model(config, input_shape, num_classes)
    if not wrap:  # a profiling variant: the "W_LR_scale is not applied" warning is expected
        logging.getLogger("bclab.core.constraints").setLevel(logging.ERROR)
    optimizer = BinaryConnectOptimizer(make_optimizer(config)) if wrap else make_optimizer(config)
    return StepContender(name, model, optimizer, batches, jit_compile=jit_compile, path=path)


def dense_contender(name, config, input_shape, num_classes, batches, *, jit_compile=False, path="step"):
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


# ----- measurement -----


def measure(contenders, steps: int, reps: int, warmup: int) -> dict[str, list[float]]:
    """Steps/s of every contender per repetition, interleaved, order rotating each repetition."""
    for c in contenders:
        c.run(warmup)
    rates: dict[str, list[float]] = {c.name: [] for c in contenders}
    for rep in range(reps):
        order = contenders[rep % len(contenders) :] + contenders[: rep % len(contenders)]
        for c in order:
            rates[c.name].append(steps / c.run(steps))
    return rates


def summarize(group: str, rates: dict[str, list[float]], ratios: dict[str, tuple[str, str]], extra=None):
    """Per contender median/best; per ratio the median of per-repetition ratios."""
    contenders = {
        name: {"median_steps_per_s": _common.median(r), "best_steps_per_s": max(r), "per_rep": r}
        for name, r in rates.items()
    }
    ratio_out = {}
    for label, (num, den) in ratios.items():
        if num in rates and den in rates:
            paired = [a / b for a, b in zip(rates[num], rates[den])]
            target = TARGETS.get(label.split(" (")[0], "")
            ratio_out[label] = {
                "median_paired": _common.median(paired),
                "of_medians": contenders[num]["median_steps_per_s"] / contenders[den]["median_steps_per_s"],
                "of_bests": contenders[num]["best_steps_per_s"] / contenders[den]["best_steps_per_s"],
                "per_rep": paired,
                "target": target,
                "met": _meets(_common.median(paired), target),
            }
    return {"group": group, "contenders": contenders, "ratios": ratio_out, **(extra or {})}


def _meets(value: float, target: str) -> bool | None:
    if not target:
        return None
    op, threshold = target.split()
    return value >= float(threshold) if op == ">=" else value > float(threshold)


def print_group(result: dict[str, Any]) -> None:
    print(f"\n[{result['group']}] {result.get('description', '')}")
    rows = [
        [name, c["median_steps_per_s"], c["best_steps_per_s"], len(c["per_rep"])]
        for name, c in result["contenders"].items()
    ]
    print(_common.format_table(["contender", "median steps/s", "best steps/s", "reps"], rows))
    if result["ratios"]:
        rows = [
            [
                label,
                r["median_paired"],
                r["of_bests"],
                r["target"] or "-",
                {True: "yes", False: "NO", None: "-"}[r["met"]],
            ]
            for label, r in result["ratios"].items()
        ]
        print(_common.format_table(["ratio", "median paired", "of bests", "target", "met"], rows))
    for note in result.get("notes", []):
        print(f"  note: {note}")
    print(f"  load average now: {_common.load_average()}", flush=True)


# ----- groups -----


def run_mlp(args, dataset, larq_py, larq_note):
    from bclab.config import RunConfig

    config = RunConfig.recipe("mnist", size=args.mlp_size, mode="deterministic")
    shape, classes = dataset.image_shape, dataset.num_classes
    batches = mnist_batches(dataset, config.batch_size, args.n_batches)
    contenders = [
        dense_contender("keras Dense + Adam", config, shape, classes, batches, path=args.path),
        bclab_contender("bclab BinaryDense + BinaryConnectOptimizer", config, shape, classes, batches, path=args.path),
    ]
    ratios = {"bclab/dense": ("bclab BinaryDense + BinaryConnectOptimizer", "keras Dense + Adam")}
    if args.variants:
        stoch = config.replace(mode="stochastic")
        contenders += [
            bclab_contender("bclab stochastic", stoch, shape, classes, batches, path=args.path),
            bclab_contender(
                "bclab BinaryDense + plain Adam (clip only)",
                config,
                shape,
                classes,
                batches,
                path=args.path,
                wrap=False,
            ),
            bclab_contender(
                "bclab binary=False + BinaryConnectOptimizer",
                config.replace(mode="float"),
                shape,
                classes,
                batches,
                path=args.path,
            ),
        ]
        ratios.update(
            {
                "stochastic/dense (info)": ("bclab stochastic", "keras Dense + Adam"),
                "BinaryDense, plain Adam/dense (info)": (
                    "bclab BinaryDense + plain Adam (clip only)",
                    "keras Dense + Adam",
                ),
                "binary=False, wrapped/dense (info)": (
                    "bclab binary=False + BinaryConnectOptimizer",
                    "keras Dense + Adam",
                ),
            }
        )
    notes = [larq_note]
    larq = None
    if larq_py is not None:
        try:
            larq = LarqContender(
                "larq QuantDense (Keras 2)",
                larq_py,
                batches,
                units=config.units,
                layers=config.hidden_layers,
                bn_alpha=config.bn_alpha,
                warmup=args.warmup,
            )
            contenders.append(larq)
            ratios["bclab/larq"] = ("bclab BinaryDense + BinaryConnectOptimizer", "larq QuantDense (Keras 2)")
            notes.append(f"larq worker: {larq.info}")
            if args.path == "fit":
                notes.append("larq always runs a manual compiled train step (no fit path in the worker)")
        except RuntimeError as error:
            notes.append(f"larq skipped: {error}")
    try:
        rates = measure(contenders, args.steps, args.reps, args.warmup)
    finally:
        if larq is not None:
            larq.close()
    units = config.units
    description = (
        f"MNIST MLP 784-{units}-{units}-{units}-10 + BatchNorm, batch {config.batch_size}, Adam, "
        f"deterministic, {args.steps} steps x {args.reps} reps, path={args.path}, data={dataset.name}"
    )
    return summarize("mlp", rates, ratios, {"description": description, "size": args.mlp_size, "notes": notes})


def run_trace(args, dataset):
    from bclab.config import RunConfig

    base = RunConfig.recipe("mnist", size=args.mlp_size, dataset="mnist-5k", n_validation=500, epochs=1000)
    contenders = [
        TrainerContender(f"Trainer trace={level}", base.replace(trace=level), dataset)
        for level in ("off", "scalars", "full")
    ]
    steps = min(args.trace_steps, contenders[0].trainer.batches_per_epoch - 1)
    rates = measure(contenders, steps, args.reps, args.warmup)
    units = base.units
    description = (
        f"bclab Trainer.step(), MNIST MLP 784-{units}-{units}-{units}-10, batch {base.batch_size}, "
        f"mnist-5k, {steps} steps x {args.reps} reps (epoch-end evaluation stepped over, untimed)"
    )
    ratios = {
        "trace full/off": ("Trainer trace=full", "Trainer trace=off"),
        "trace scalars/off": ("Trainer trace=scalars", "Trainer trace=off"),
    }
    return summarize("trace", rates, ratios, {"description": description, "size": args.mlp_size})


def run_cnn(args):
    from bclab.config import RunConfig

    config = RunConfig.recipe("cifar10", size=args.cnn_size, mode="deterministic")
    shape, classes = (32, 32, 3), 10
    batches = random_image_batches(shape, classes, config.batch_size, args.n_batches)
    contenders = [
        dense_contender("keras Conv2D/Dense + Adam", config, shape, classes, batches, path=args.path),
        bclab_contender(
            "bclab BinaryConv2D/BinaryDense + BinaryConnectOptimizer", config, shape, classes, batches, path=args.path
        ),
    ]
    rates = measure(contenders, args.cnn_steps, args.reps, args.warmup)
    c1, c2, c3 = config.channels
    fc = config.dense_units
    description = (
        f"CIFAR-10 convnet, size={args.cnn_size}: 2x{c1}C3-MP2-2x{c2}C3-MP2-2x{c3}C3-MP2-{fc}FC-{fc}FC-10 "
        f"(paper: 128/256/512, 1024), batch {config.batch_size}, random 32x32x3 data, "
        f"{args.cnn_steps} steps x {args.reps} reps, path={args.path}"
    )
    ratios = {"bclab/dense": ("bclab BinaryConv2D/BinaryDense + BinaryConnectOptimizer", "keras Conv2D/Dense + Adam")}
    return summarize("cnn", rates, ratios, {"description": description, "size": args.cnn_size})


def run_xla(args, dataset):
    from bclab.config import RunConfig

    config = RunConfig.recipe("mnist", size=args.mlp_size, mode="deterministic")
    shape, classes = dataset.image_shape, dataset.num_classes
    batches = mnist_batches(dataset, config.batch_size, args.n_batches)
    contenders = []
    for jit in (True,) if args.smoke else (False, True):  # smoke: the XLA code path only, to stay fast
        tag = "XLA" if jit else "no XLA"
        contenders += [
            dense_contender(f"keras Dense, {tag}", config, shape, classes, batches, jit_compile=jit, path=args.path),
            bclab_contender(f"bclab, {tag}", config, shape, classes, batches, jit_compile=jit, path=args.path),
        ]
    rates = measure(contenders, args.steps, args.reps, args.warmup)
    ratios = {
        "bclab/dense (XLA)": ("bclab, XLA", "keras Dense, XLA"),
        "bclab/dense (no XLA)": ("bclab, no XLA", "keras Dense, no XLA"),
        "bclab XLA/no XLA (info)": ("bclab, XLA", "bclab, no XLA"),
        "dense XLA/no XLA (info)": ("keras Dense, XLA", "keras Dense, no XLA"),
    }
    description = f"the mlp comparison with jit_compile on and off, size={args.mlp_size}, path={args.path}"
    return summarize("xla", rates, ratios, {"description": description, "size": args.mlp_size})


# ----- main -----


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="bclab training throughput, side by side in one run.")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1-2 steps per measurement, for CI")
    parser.add_argument("--out", default=str(_common.DEFAULT_OUT), help="folder for throughput.json")
    parser.add_argument("--mlp-size", choices=("paper", "small", "tiny"), default=None, help="default: paper")
    parser.add_argument("--cnn-size", choices=("paper", "small", "tiny"), default=None, help="default: small")
    parser.add_argument("--steps", type=int, default=None, help="steps per repetition, mlp/xla (default 10)")
    parser.add_argument("--trace-steps", type=int, default=None, help="steps per repetition, trace (default 10)")
    parser.add_argument("--cnn-steps", type=int, default=None, help="steps per repetition, cnn (default 5)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per contender first (default 3)")
    parser.add_argument("--n-batches", type=int, default=20, help="distinct batches cycled through")
    parser.add_argument(
        "--path",
        choices=("step", "fit"),
        default="step",
        help="manual compiled train step (default) or model.fit on a tf.data pipeline",
    )
    parser.add_argument("--groups", default="mlp,trace,cnn,xla", help="comma-separated subset of mlp,trace,cnn,xla")
    parser.add_argument("--xla", action="store_true", help="run the xla group on CPU too (on by default with a GPU)")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="mlp: add profiling variants (stochastic, no optimizer wrapper, binary=False)",
    )
    parser.add_argument("--no-larq", action="store_true", help="skip the larq comparison")
    args = parser.parse_args(argv)
    smoke = args.smoke
    defaults = {
        "mlp_size": "tiny" if smoke else "paper",
        "cnn_size": "tiny" if smoke else "small",
        "steps": 2 if smoke else 10,
        "trace_steps": 2 if smoke else 10,
        "cnn_steps": 1 if smoke else 5,
        "reps": 2 if smoke else 5,
        "warmup": 1 if smoke else 3,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if smoke:
        args.n_batches = min(args.n_batches, 3)
        args.xla = True  # exercise the XLA code path on CPU
    return args


def main(argv=None) -> int:
    load_before = _common.load_average()
    args = parse_args(argv)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    import tensorflow as tf

    from bclab import data as bcdata

    tf.get_logger().setLevel("ERROR")  # one tf.function per contender trips the "retracing" warning
    gpu = bool(tf.config.list_physical_devices("GPU"))
    dataset = bcdata.load_dataset("mnist-5k")
    results: dict[str, Any] = {}
    larq_py, larq_note = (None, "skipped: --no-larq")
    if "mlp" in groups and not args.no_larq:
        larq_py, larq_note = larq_python(create=not args.smoke)
    print(
        f"bclab throughput | device {'GPU' if gpu else 'CPU'} | {os.cpu_count()} CPUs | "
        f"load average before {load_before} | smoke={args.smoke}",
        flush=True,
    )
    if "mlp" in groups:
        results["mlp"] = run_mlp(args, dataset, larq_py, larq_note)
        if larq_py is not None:
            results["mlp"]["larq_versions"] = larq_versions(larq_py)
        print_group(results["mlp"])
    if "trace" in groups:
        results["trace"] = run_trace(args, dataset)
        print_group(results["trace"])
    if "cnn" in groups:
        results["cnn"] = run_cnn(args)
        print_group(results["cnn"])
    if "xla" in groups:
        if gpu or args.xla:
            results["xla"] = run_xla(args, dataset)
            print_group(results["xla"])
        else:
            results["xla"] = {"group": "xla", "skipped": "no GPU; pass --xla to force XLA on CPU"}
            print("\n[xla] skipped: no GPU; pass --xla to force XLA on CPU")
    machine = _common.machine_info(load_before)
    machine["intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
    machine["inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    payload = {
        "benchmark": "throughput",
        "machine": machine,
        "smoke": args.smoke,
        "settings": {k: v for k, v in vars(args).items()},
        "results": results,
    }
    path = _common.write_results("throughput", args.out, payload)
    print(
        f"\nload average before {load_before}, after {machine['load_average_after']}; device {machine['device']}; "
        f"TF {machine['tensorflow']}, Keras {machine['keras']}\nwrote {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
