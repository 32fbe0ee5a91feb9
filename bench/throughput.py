"""Training throughput (steps per second) of bclab against plain Keras, larq and itself.

Every comparison runs side by side in ONE process with interleaved repetitions: after a
warm-up, each repetition times N steps of every contender in turn (the order rotates
from one repetition to the next), so load from other processes hits all contenders
alike. Reported: the median and best steps/s per contender, and ratios as the median of
the per-repetition ratios (paired, so a slow patch of the machine cancels out).

Groups:
  mlp    the paper's MNIST MLP (784-2048-2048-2048-10, BatchNorm, batch 100, Adam): keras
         Dense + Adam vs bclab BinaryDense + BinaryConnectOptimizer, deterministic and
         stochastic, all through `model.fit` on one tf.data pipeline (--path step: one manual
         compiled train step); plus larq QuantDense (Keras 2, in bench/.venv-larq, the same
         path) when available.
  cnn    the CIFAR-10 convnet (2xC3-MP2-2xC3-MP2-2xC3-MP2-FC-FC-10, batch 50) at --cnn-size,
         the same three contenders and path.
  step   the second view: the mlp comparison through one manual compiled train step.
  trace  bclab Trainer.step() with trace "full" / "scalars" vs "off", same config.
  livetrace  the mlp model (bclab, deterministic) through `model.fit` with bclab.LiveTrace
         "scalars" / "full" vs plain `fit` (bench/livetrace.py).
  xla    the deterministic mlp comparison again with jit_compile=True and False (automatic
         when TensorFlow sees a GPU; --xla forces it on CPU).

Usage:
  python bench/throughput.py                      # full run (a few minutes on 2 CPU cores)
  python bench/throughput.py --smoke --out /tmp/x # tiny sizes, seconds, for CI
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from contenders import (  # noqa: E402
    LarqContender,
    TrainerContender,
    bclab_contender,
    dense_contender,
    larq_python,
    larq_versions,
    mnist_batches,
    random_image_batches,
)
from livetrace import run_livetrace  # noqa: E402
from timing import measure, print_group, summarize  # noqa: E402

_common.quiet_tensorflow()


# ----- groups -----


MLP_DENSE = "keras Dense + Adam"
MLP_BCLAB = "bclab BinaryDense + BinaryConnectOptimizer"
MLP_STOCHASTIC = "bclab BinaryDense stochastic + BinaryConnectOptimizer"
MLP_LARQ = "larq QuantDense (Keras 2)"
CNN_DENSE = "keras Conv2D/Dense + Adam"
CNN_BCLAB = "bclab BinaryConv2D/BinaryDense + BinaryConnectOptimizer"
CNN_STOCHASTIC = "bclab BinaryConv2D/BinaryDense stochastic + BinaryConnectOptimizer"


def both_modes(names, config, shape, classes, batches, path):
    """Plain Keras, bclab deterministic and bclab stochastic on one config and path; (contenders, ratios)."""
    dense, deterministic, stochastic = names
    contenders = [
        dense_contender(dense, config, shape, classes, batches, path=path),
        bclab_contender(deterministic, config.replace(mode="deterministic"), shape, classes, batches, path=path),
        bclab_contender(stochastic, config.replace(mode="stochastic"), shape, classes, batches, path=path),
    ]
    ratios = {"bclab/dense": (deterministic, dense), "bclab stochastic/dense": (stochastic, dense)}
    return contenders, ratios


def run_mlp(args, dataset, larq_py, larq_note, path=None):
    """The paper MLP, bclab in both modes against keras Dense (and larq), through `path` (default `args.path`)."""
    from bclab import RunConfig

    path = path or args.path
    config = RunConfig.recipe("mnist", size=args.mlp_size, mode="deterministic")
    shape, classes = dataset.image_shape, dataset.num_classes
    batches = mnist_batches(dataset, config.batch_size, args.n_batches)
    names = (MLP_DENSE, MLP_BCLAB, MLP_STOCHASTIC)
    contenders, ratios = both_modes(names, config, shape, classes, batches, path)
    if args.variants:
        variants, variant_ratios = mlp_variants(config, shape, classes, batches, path)
        contenders += variants
        ratios.update(variant_ratios)
    notes = [larq_note] if larq_note else []
    larq = None
    if larq_py is not None:
        larq = larq_contender(larq_py, config, batches, args, notes, path)
    if larq is not None:
        contenders.append(larq)
        ratios["bclab/larq"] = (MLP_BCLAB, MLP_LARQ)
    try:
        rates = measure(contenders, args.steps, args.reps, args.warmup)
    finally:
        if larq is not None:
            larq.close()
    units = config.units
    description = (
        f"MNIST MLP 784-{units}-{units}-{units}-10 + BatchNorm, batch {config.batch_size}, Adam, "
        f"{args.steps} steps x {args.reps} reps, path={path}, data={dataset.name}"
    )
    group = "mlp" if path == args.path else "step"
    return summarize(group, rates, ratios, {"description": description, "size": args.mlp_size, "notes": notes})


def mlp_variants(config, shape, classes, batches, path):
    """The profiling variants of the mlp group (`--variants`): (contenders, ratios against plain Dense)."""
    names = {
        "BinaryDense, plain Adam/dense (info)": "bclab BinaryDense + plain Adam (clip only)",
        "binary=False, wrapped/dense (info)": "bclab binary=False + BinaryConnectOptimizer",
    }
    clip_only, float_wrapped = names.values()
    contenders = [
        bclab_contender(clip_only, config, shape, classes, batches, path=path, wrap=False),
        bclab_contender(float_wrapped, config.replace(mode="float"), shape, classes, batches, path=path),
    ]
    return contenders, {label: (name, MLP_DENSE) for label, name in names.items()}


def larq_contender(python, config, batches, args, notes: list[str], path: str):
    """The larq worker for the mlp group, or None; says what happened in `notes`."""
    try:
        larq = LarqContender(
            MLP_LARQ,
            python,
            batches,
            units=config.units,
            layers=config.hidden_layers,
            bn_alpha=config.bn_alpha,
            warmup=args.warmup,
            path=path,
        )
    except RuntimeError as error:
        notes.append(f"larq skipped: {error}")
        return None
    notes.append(f"larq worker: {larq.info}")
    return larq


def run_trace(args, dataset):
    from bclab import RunConfig

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
    from bclab import RunConfig

    config = RunConfig.recipe("cifar10", size=args.cnn_size, mode="deterministic")
    shape, classes = (32, 32, 3), 10
    batches = random_image_batches(shape, classes, config.batch_size, args.n_batches)
    names = (CNN_DENSE, CNN_BCLAB, CNN_STOCHASTIC)
    contenders, ratios = both_modes(names, config, shape, classes, batches, args.path)
    rates = measure(contenders, args.cnn_steps, args.reps, args.warmup)
    c1, c2, c3 = config.channels
    fc = config.dense_units
    description = (
        f"CIFAR-10 convnet, size={args.cnn_size}: 2x{c1}C3-MP2-2x{c2}C3-MP2-2x{c3}C3-MP2-{fc}FC-{fc}FC-10 "
        f"(paper: 128/256/512, 1024), batch {config.batch_size}, random 32x32x3 data, "
        f"{args.cnn_steps} steps x {args.reps} reps, path={args.path}"
    )
    return summarize("cnn", rates, ratios, {"description": description, "size": args.cnn_size})


def run_xla(args, dataset):
    from bclab import RunConfig

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
        default="fit",
        help="the path of the mlp, cnn and xla groups: model.fit on a tf.data pipeline (default) or a manual compiled step",
    )
    parser.add_argument(
        "--groups",
        default="mlp,cnn,step,trace,livetrace,xla",
        help="comma-separated subset of mlp,cnn,step,trace,livetrace,xla",
    )
    parser.add_argument("--xla", action="store_true", help="run the xla group on CPU too (on by default with a GPU)")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="mlp: add profiling variants (no optimizer wrapper, binary=False)",
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


def run_groups(args, groups: list[str], dataset, gpu: bool) -> dict[str, Any]:
    """Run and print each group asked for; {group: result}."""
    results: dict[str, Any] = {}
    if "mlp" in groups:
        larq_py, larq_note = larq_python(create=not args.smoke) if not args.no_larq else (None, "skipped: --no-larq")
        results["mlp"] = run_mlp(args, dataset, larq_py, larq_note)
        if larq_py is not None:
            results["mlp"]["larq_versions"] = larq_versions(larq_py)
        print_group(results["mlp"])
    if "cnn" in groups:
        results["cnn"] = run_cnn(args)
        print_group(results["cnn"])
    if "step" in groups:  # the second view: the mlp comparison through the manual compiled step
        if args.path == "step":
            results["step"] = {"group": "step", "skipped": "--path step: the mlp group is the manual step already"}
            print("\n[step] skipped: --path step: the mlp group is the manual step already")
        else:
            results["step"] = run_mlp(args, dataset, None, None, path="step")
            print_group(results["step"])
    if "trace" in groups:
        results["trace"] = run_trace(args, dataset)
        print_group(results["trace"])
    if "livetrace" in groups:
        results["livetrace"] = run_livetrace(args, dataset)
        print_group(results["livetrace"])
    if "xla" in groups:
        if gpu or args.xla:
            results["xla"] = run_xla(args, dataset)
            print_group(results["xla"])
        else:
            results["xla"] = {"group": "xla", "skipped": "no GPU; pass --xla to force XLA on CPU"}
            print("\n[xla] skipped: no GPU; pass --xla to force XLA on CPU")
    return results


def main(argv=None) -> int:
    load_before = _common.load_average()
    args = parse_args(argv)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    import tensorflow as tf

    from bclab import load_dataset

    tf.get_logger().setLevel("ERROR")  # one tf.function per contender trips the "retracing" warning
    gpu = bool(tf.config.list_physical_devices("GPU"))
    dataset = load_dataset("mnist-5k")
    print(
        f"bclab throughput | device {'GPU' if gpu else 'CPU'} | {os.cpu_count()} CPUs | "
        f"load average before {load_before} | smoke={args.smoke}",
        flush=True,
    )
    results = run_groups(args, groups, dataset, gpu)
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
