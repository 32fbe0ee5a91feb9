"""Size of the 1-bit export (`bclab export`) against `model.keras`, for the paper's MNIST MLP.

Builds the paper's permutation-invariant MLP (784-2048-2048-2048-10, `RunConfig.recipe("mnist")`,
deterministic) on the embedded mnist-5k digits and trains it a few steps with `bclab.Trainer`
(the size does not depend on training; the steps make the weights and BatchNorm statistics real).
Then it writes and measures:

- `model.keras` as `bclab train` writes it (`trainer.model.save`: the Trainer keeps its optimizer
  apart, so the file holds the config and the weights only);
- `model.keras` after `model.fit` with `BinaryConnectOptimizer(Adam)`, as a Keras user writes it
  (Keras adds the optimizer's state: Adam's two moments, twice the weights again);
- the weights alone (`model.weights` in memory, float32);
- `model.bclab` (`bclab.export_packed`), and what it holds: the bits, the other floats, the header.

It checks that `bclab.load_packed` rebuilds a model whose test-time predictions on 500 test
digits equal the original's exactly (`np.array_equal`), and prints the ratios (target >= 20x
against `model.keras`, issue 13).

Usage:
  python bench/export_size.py                    # the paper's MLP
  python bench/export_size.py --size small --steps 3
  python bench/export_size.py --smoke --out /tmp/x
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.quiet_tensorflow()

TARGET_RATIO = 20.0  # .bclab at least this many times smaller than model.keras (issue 13)


def measure(size: str, steps: int, folder: Path) -> dict[str, Any]:
    import keras
    import numpy as np

    import bclab
    from bclab.data import one_hot_pm1, to_float
    from bclab.train.models import squared_hinge
    from bclab.train.trainer import Trainer

    config = bclab.RunConfig.recipe("mnist", size=size, dataset="mnist-5k", mode="deterministic", n_validation=1000)
    trainer = Trainer(config)
    for _ in range(steps):
        trainer.step()
    model, split = trainer.model, trainer.split
    model.save(folder / "model.keras")  # as `bclab train` does (bclab.cli.outputs.write_run_files)
    summary = bclab.export_packed(model, folder / "model.bclab")

    x_test = to_float(split.x_test[:500])
    rebuilt = bclab.load_packed(folder / "model.bclab")
    exact = np.array_equal(np.asarray(model(x_test, training=False)), np.asarray(rebuilt(x_test, training=False)))

    # The same network through model.fit, saved as a Keras user saves it: with the optimizer's state.
    fitted = keras.models.clone_model(model)
    fitted.set_weights(model.get_weights())
    fitted.compile(optimizer=bclab.BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)), loss=squared_hinge)
    targets = one_hot_pm1(split.y_train[:100], trainer.dataset.num_classes)
    fitted.fit(to_float(split.x_train[:100]), targets, batch_size=100, epochs=1, verbose=0)
    fitted.save(folder / "model-fit.keras")

    layers = bclab.binary_layers(model)
    return {
        "architecture": "-".join(
            str(n) for n in [layers[0].kernel.shape[0], *(layer.kernel.shape[-1] for layer in layers)]
        ),
        "steps": steps,
        "model_keras_bytes": (folder / "model.keras").stat().st_size,
        "model_fit_keras_bytes": (folder / "model-fit.keras").stat().st_size,
        "weights_bytes": summary.weights_bytes,
        "bclab_bytes": summary.file_bytes,
        "bits_bytes": sum(math.ceil(math.prod(layer.kernel.shape) / 8) for layer in layers),
        "float_bytes": summary.weights_bytes - 4 * summary.binary_weights,  # float32 kernels: 4 bytes a weight
        "binary_weights": summary.binary_weights,
        "float_values": summary.float_values,
        "exact_predictions": bool(exact),
    }


def report(result: dict[str, Any]) -> str:
    bclab_bytes = result["bclab_bytes"]
    rows = [
        ("model.keras (bclab train)", result["model_keras_bytes"], result["model_keras_bytes"] / bclab_bytes),
        (
            "model.keras (model.fit + Adam)",
            result["model_fit_keras_bytes"],
            result["model_fit_keras_bytes"] / bclab_bytes,
        ),
        ("weights alone (float32)", result["weights_bytes"], result["weights_bytes"] / bclab_bytes),
        ("model.bclab", bclab_bytes, 1.0),
        ("  of which bits", result["bits_bytes"], None),
        ("  of which floats", result["float_bytes"], None),
        ("  of which header, zip", bclab_bytes - result["bits_bytes"] - result["float_bytes"], None),
    ]
    table = _common.format_table(
        ["file", "bytes", "x .bclab"], [(name, f"{size:,}", "" if r is None else f"{r:.1f}") for name, size, r in rows]
    )
    ratio = result["model_keras_bytes"] / bclab_bytes
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    return (
        f"MLP {result['architecture']}, deterministic, {result['steps']} training steps; "
        f"{result['binary_weights']:,} binary weights, {result['float_values']:,} other values\n"
        f"{table}\n"
        f"model.keras / model.bclab = {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x: {verdict}); "
        f"test-time predictions of load_packed equal the original's: {result['exact_predictions']}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Size of the 1-bit export against model.keras (the paper's MLP).")
    parser.add_argument("--smoke", action="store_true", help="the tiny MLP and one step, for CI")
    parser.add_argument("--out", default=str(_common.DEFAULT_OUT), help="folder for export_size.json")
    parser.add_argument("--size", choices=("paper", "small", "tiny"), default="paper", help="MLP widths (paper: 2048)")
    parser.add_argument("--steps", type=int, default=3, help="training steps before the export")
    args = parser.parse_args(argv)
    size, steps = ("tiny", 1) if args.smoke else (args.size, args.steps)
    load_before = _common.load_average()
    with tempfile.TemporaryDirectory() as folder:
        result = measure(size, steps, Path(folder))
    print(report(result))
    payload = {"machine": _common.machine_info(load_before), "size": size, **result}
    path = _common.write_results("export_size", args.out, payload)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
