"""What the bclab train step costs on top of a plain Dense step, and where the stochastic path spends it.

A profiling aid for `throughput.py`'s ratios, in three parts (one run, one JSON file):

1. Timed variants of the paper MLP (same data, same path, interleaved repetitions):

     dense                          keras Dense + Adam (the baseline)
     bclab                          BinaryDense + BinaryConnectOptimizer, deterministic, as shipped
     bclab stochastic               the same, stochastic, as shipped
     bclab stochastic, ref sampler  the stochastic layers with the reference's form of the draw
                                    (`p = hard_sigmoid(W / H)`, `u ~ U[0, 1)`, `u < p`), patched on the
                                    instances here, not in bclab: what the earlier sampler cost
     bclab, no scale/clip           deterministic BinaryDense + plain Adam, constraint removed:
                                    the binarization alone

2. The sampler alone on one 2048x2048 kernel (ms per call, compiled, no XLA): each form of the
   draw, the draw alone and one element-wise pass for scale.

3. Passes over the kernel, read from the traced graph: the ops whose output has the shape of the
   2048x2048 kernel, in the train step (forward, backward, optimizer) of each model, and in each form
   of the sampler. Bytes moved are about (passes x 4 bytes x kernel size) written plus as much read.

Usage: python bench/profile_step.py [--size paper] [--path fit] [--steps 5] [--reps 5] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from contenders import bclab_contender, dense_contender, mnist_batches  # noqa: E402
from timing import measure, print_group, summarize  # noqa: E402

_common.quiet_tensorflow()


# ----- the forms of the stochastic draw -----


def sampler_forms(H: float, seed):
    """{name: f(W) -> Wb}: the forms of one stochastic binarization, each with its own SeedGenerator."""
    import keras
    from keras import ops

    from bclab.core.binarize import binarization, hard_sigmoid

    def draw(W, **kwargs):
        return keras.random.uniform(ops.shape(W), dtype=W.dtype, seed=seed, **kwargs)

    def reference(W):  # Theano's binomial: u < p, p = hard_sigmoid(W / H)
        return ops.where(ops.less(draw(W), hard_sigmoid(W / H)), H, -H)

    def unit_interval(W):  # u ~ U[-1, 1) against W / H: the division stays
        return ops.where(ops.less(draw(W, minval=-1.0, maxval=1.0), W / H), H, -H)

    def two_per_draw(W):  # one 32-bit draw for two weights at 16-bit resolution
        n = int(ops.size(W))
        bits = keras.random.randint((n // 2,), 0, 2**31 - 1, dtype="int32", seed=seed)
        k = ops.reshape(ops.concatenate([ops.right_shift(bits, 15), ops.bitwise_and(bits, 65535)]), ops.shape(W))
        return ops.where(ops.less(ops.cast(k, W.dtype), W * (32768.0 / H) + 32768.0), H, -H)

    return {
        "reference form: u < hard_sigmoid(W/H)": reference,
        "bclab: U[-H,H) < W": lambda W: binarization(W, H, stochastic=True, srng=seed),
        "U[-1,1) < W/H": unit_interval,
        "two 16-bit draws per int32": two_per_draw,
        "draw alone: U[0,1)": lambda W: draw(W),
        "one pass: W + 1": lambda W: W + 1.0,
        "deterministic: bclab rounding": lambda W: binarization(W, H),
    }


def time_samplers(shape, calls: int, reps: int) -> dict[str, float]:
    """Median ms per call of each sampler form on a kernel of `shape` (compiled, interleaved repetitions)."""
    import keras
    import numpy as np
    import tensorflow as tf

    H = 0.0191
    W = keras.Variable(np.random.default_rng(0).uniform(-H, H, shape).astype("float32"))
    forms = sampler_forms(H, keras.random.SeedGenerator(1))
    compiled = {name: tf.function(lambda f=f: f(W.value)) for name, f in forms.items()}
    for f in compiled.values():
        f()
    times: dict[str, list[float]] = {name: [] for name in compiled}
    for _ in range(reps):
        for name, f in compiled.items():
            start = time.perf_counter()
            for _ in range(calls):
                out = f()
            out.numpy()
            times[name].append((time.perf_counter() - start) / calls * 1000)
    return {name: _common.median(t) for name, t in times.items()}


# ----- passes over the kernel, from the graph -----


# Ops that hand a buffer on without touching it (or feed the function), left out of the count.
NO_PASS = ("Placeholder", "ReadVariableOp", "Identity", "IdentityN", "StopGradient")


def kernel_passes(concrete_function, shape) -> dict[str, int]:
    """{op type: count} of the ops that run with a `shape`-sized first output, in a traced function.

    Read before Grappler: ops with no consumer (zeros the gradient code builds and never uses) are
    left out as Grappler prunes them, and so are `NO_PASS`. Variable updates (`AssignSubVariableOp`,
    `AssignVariableOp`) have no output and are not counted: they write where an op above already wrote.
    """
    counts: dict[str, int] = {}
    for op in concrete_function.graph.get_operations():
        if not op.outputs or op.type in NO_PASS or tuple(op.outputs[0].shape) != tuple(shape):
            continue
        if not op.outputs[0].consumers():
            continue
        counts[op.type] = counts.get(op.type, 0) + 1
    return dict(sorted(counts.items()))


def step_passes(model, optimizer, batch, shape) -> dict[str, int]:
    """`kernel_passes` of one train step (forward, loss, backward, optimizer) of `model`."""
    import tensorflow as tf

    from bclab import squared_hinge

    variables = model.trainable_variables
    optimizer.build(variables)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = squared_hinge(y, model(x, training=True))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return kernel_passes(train_step.get_concrete_function(*batch), shape)


def use_reference_sampler(model) -> None:
    """Replace each stochastic layer's draw by the reference's form (`u < hard_sigmoid(W / H)`)."""
    from bclab.core.binarize import straight_through
    from bclab.core.layers import binary_layers

    for layer in binary_layers(model):
        reference = sampler_forms(float(layer.H), layer.seed_generator)["reference form: u < hard_sigmoid(W/H)"]

        def kernel_for_call(self, training, reference=reference):
            W = self.kernel.value
            return straight_through(self.kernel, reference(W) if training else self.binary_kernel(False))

        layer._kernel_for_call = types.MethodType(kernel_for_call, layer)


def drop_constraints(model) -> None:
    from bclab.core.layers import binary_layers

    for layer in binary_layers(model):
        layer.kernel.constraint = None


# ----- main -----


def variants(config, shape, classes, batches, path):
    """The timed contenders of part 1."""
    deterministic, stochastic = config.replace(mode="deterministic"), config.replace(mode="stochastic")
    reference = bclab_contender("bclab stochastic, ref sampler", stochastic, shape, classes, batches, path=path)
    use_reference_sampler(reference.model)
    clip_free = bclab_contender("bclab, no scale/clip", deterministic, shape, classes, batches, path=path, wrap=False)
    drop_constraints(clip_free.model)
    return [
        dense_contender("dense", config, shape, classes, batches, path=path),
        bclab_contender("bclab", deterministic, shape, classes, batches, path=path),
        bclab_contender("bclab stochastic", stochastic, shape, classes, batches, path=path),
        reference,
        clip_free,
    ]


def graph_passes(config, shape, classes, batch, kernel_shape) -> dict[str, dict[str, int]]:
    """Part 3: kernel-sized ops per train step of Dense, bclab deterministic and stochastic."""
    models = {}
    for mode in ("float", "deterministic", "stochastic"):
        contender = (dense_contender if mode == "float" else bclab_contender)(
            mode, config.replace(mode=mode), shape, classes, [batch]
        )
        models[mode] = step_passes(contender.model, contender.optimizer, batch, kernel_shape)
    return {
        "dense": models["float"],
        "bclab deterministic": models["deterministic"],
        "bclab stochastic": models["stochastic"],
    }


def sampler_passes(kernel_shape) -> dict[str, dict[str, int]]:
    import keras
    import tensorflow as tf

    forms = sampler_forms(0.0191, keras.random.SeedGenerator(1))
    spec = tf.TensorSpec(kernel_shape, "float32")
    return {name: kernel_passes(tf.function(f).get_concrete_function(spec), kernel_shape) for name, f in forms.items()}


def print_passes(title: str, passes: dict[str, dict[str, int]]) -> None:
    print(f"\n{title}")
    rows = [[name, sum(c.values()), " ".join(f"{op}:{n}" for op, n in c.items())] for name, c in passes.items()]
    print(_common.format_table(["", "kernel-sized ops", "by type"], rows))


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Timed variants of the bclab train step, and the sampler's cost.")
    parser.add_argument("--size", choices=("paper", "small", "tiny"), default="paper")
    parser.add_argument("--path", choices=("step", "fit"), default="fit")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.steps, args.reps, args.warmup = "tiny", 1, 2, 1
    return args


def main(argv=None) -> int:
    load_before = _common.load_average()
    args = parse_args(argv)
    import tensorflow as tf

    from bclab import data as bcdata
    from bclab.config import RunConfig

    tf.get_logger().setLevel("ERROR")
    dataset = bcdata.load_dataset("mnist-5k")
    config = RunConfig.recipe("mnist", size=args.size, mode="deterministic")
    shape, classes = dataset.image_shape, dataset.num_classes
    batches = mnist_batches(dataset, config.batch_size, 10)
    rates = measure(variants(config, shape, classes, batches, args.path), args.steps, args.reps, args.warmup)
    ratios = {f"{name}/dense": (name, "dense") for name in rates if name != "dense"}
    units = config.units
    description = f"MLP 784-{units}x3-10, batch 100, {args.steps} steps x {args.reps} reps, path={args.path} (no XLA)"
    result = summarize("profile", rates, ratios, {"description": description})
    print_group(result)

    kernel_shape = (units, units)  # the middle layers' kernel
    side = 256 if args.smoke else 2048
    result["sampler_ms"] = time_samplers((side, side), calls=2 if args.smoke else 10, reps=args.reps)
    print(f"\n[sampler] one {side}x{side} kernel, ms per call (median of {args.reps}), compiled, no XLA")
    print(_common.format_table(["form", "ms"], list(result["sampler_ms"].items())))
    result["step_passes"] = graph_passes(config, shape, classes, batches[0], kernel_shape)
    result["sampler_passes"] = sampler_passes((side, side))
    print_passes(f"[passes] ops with a {units}x{units} output in one train step (traced graph)", result["step_passes"])
    print_passes(f"[passes] ops with a {side}x{side} output in each sampler form", result["sampler_passes"])

    machine = _common.machine_info(load_before)
    payload = {"benchmark": "profile_step", "machine": machine, "smoke": args.smoke, "settings": vars(args)}
    path = _common.write_results("profile_step", args.out, {**payload, "results": result})
    print(f"\nload average before {load_before}, after {machine['load_average_after']}\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
