"""What the bclab train step costs on top of a plain Dense step: timed variants, side by side.

A profiling aid for `throughput.py`'s bclab/dense ratio. Variants of the paper MLP
(same data, same compiled train step, interleaved repetitions):

  dense                 keras Dense + Adam (the baseline)
  bclab                 BinaryDense + BinaryConnectOptimizer, as shipped
  bclab, no scale/clip  BinaryDense forward/backward + plain Adam, kernel constraint removed:
                        the cost of the binarization alone
  bclab, fused fwd      BinaryDense with the kernel computed as `where(W >= 0, H, -H)` and an
                        identity custom gradient (patched on the instances here, not in bclab),
                        + BinaryConnectOptimizer: what a fused forward would save
  bclab, fused fwd, no scale/clip   both of the above

Deterministic mode only: `hard_sigmoid(W/H) >= 0.5` is `W >= 0` for every float W
(also -0.0), so the fused kernel is the same tensor. Nothing here changes bclab.

Usage: python bench/profile_step.py [--size paper] [--steps 5] [--reps 5] [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from contenders import StepContender, dense_contender, mnist_batches  # noqa: E402
from timing import measure, print_group, summarize  # noqa: E402

_common.quiet_tensorflow()


def fuse_forward(model) -> None:
    """Replace each binary layer's kernel computation by one select and an identity gradient."""
    import tensorflow as tf

    from bclab.core.layers import binary_layers

    for layer in binary_layers(model):
        H = float(layer.H)

        @tf.custom_gradient
        def binary_ste(W, H=H):
            return tf.where(W >= 0, H, -H), lambda dy: dy

        # Leaves `binary_kernel_in_use` unset: only bclab's instrumented step reads it, not this train step.
        def kernel_for_call(self, training):
            return binary_ste(tf.convert_to_tensor(self.kernel))

        layer._kernel_for_call = types.MethodType(kernel_for_call, layer)


def drop_constraints(model) -> None:
    from bclab.core.layers import binary_layers

    for layer in binary_layers(model):
        layer.kernel.constraint = None


def main(argv=None) -> int:
    load_before = _common.load_average()
    parser = argparse.ArgumentParser(description="Timed variants of the bclab train step.")
    parser.add_argument("--size", choices=("paper", "small", "tiny"), default="paper")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default=str(_common.DEFAULT_OUT))
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.steps, args.reps, args.warmup = "tiny", 1, 2, 1
    import keras
    import tensorflow as tf

    from bclab import data as bcdata
    from bclab.config import RunConfig
    from bclab.core.optimizers import BinaryConnectOptimizer
    from bclab.train.models import build_model, make_optimizer

    tf.get_logger().setLevel("ERROR")
    dataset = bcdata.load_dataset("mnist-5k")
    config = RunConfig.recipe("mnist", size=args.size, mode="deterministic")
    shape, classes = dataset.image_shape, dataset.num_classes
    batches = mnist_batches(dataset, config.batch_size, 10)

    def variant(name, fused: bool, scale_and_clip: bool):
        keras.utils.set_random_seed(0)
        model = build_model(config, shape, classes)
        if fused:
            fuse_forward(model)
        if scale_and_clip:
            optimizer = BinaryConnectOptimizer(make_optimizer(config))
        else:
            drop_constraints(model)
            optimizer = make_optimizer(config)
        return StepContender(name, model, optimizer, batches)

    contenders = [
        dense_contender("dense", config, shape, classes, batches),
        variant("bclab", fused=False, scale_and_clip=True),
        variant("bclab, no scale/clip", fused=False, scale_and_clip=False),
        variant("bclab, fused fwd", fused=True, scale_and_clip=True),
        variant("bclab, fused fwd, no scale/clip", fused=True, scale_and_clip=False),
    ]
    rates = measure(contenders, args.steps, args.reps, args.warmup)
    ratios = {f"{name}/dense": (name, "dense") for name in rates if name != "dense"}
    units = config.units
    result = summarize(
        "profile",
        rates,
        ratios,
        {
            "description": f"MLP 784-{units}x3-10, batch 100, {args.steps} steps x {args.reps} reps, compiled step (no XLA)"
        },
    )
    print_group(result)
    machine = _common.machine_info(load_before)
    path = _common.write_results(
        "profile_step",
        args.out,
        {
            "benchmark": "profile_step",
            "machine": machine,
            "smoke": args.smoke,
            "settings": vars(args),
            "results": result,
        },
    )
    print(f"\nload average before {load_before}, after {machine['load_average_after']}\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
