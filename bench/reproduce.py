"""Reproduce the paper's MNIST result (Table 2) with bclab.Trainer.

For each mode (deterministic, stochastic, float = "no regularizer") and seed, trains
`RunConfig.recipe("mnist", size=..., dataset=..., epochs=...)` and reports the test
error at the epoch with the best validation error (ties go to the later epoch), as the
reference scripts do; then mean +- std over seeds next to the paper's figures.

The paper's run is the full recipe: real MNIST (train 50k / validation 10k / test 10k),
the 784-2048-2048-2048-10 network, 250 epochs; that needs `--dataset mnist` (downloaded
once by keras.datasets, then cached) and a GPU (hours on a CPU). On a CPU, a reduced run
(`--dataset mnist-5k --size small --epochs 20`: 3,000 train / 1,000 validation /
1,000 test digits) finishes in minutes; its errors are not comparable with the paper's
(far less data, a smaller network, a shorter schedule), it checks that the pipeline
trains and ranks the modes.

Usage:
  python bench/reproduce.py --dataset mnist-5k --size small --epochs 20 --seeds 0 1
  python bench/reproduce.py --dataset mnist --size paper --epochs 250 --seeds 0 1 2 3 4   # GPU
  python bench/reproduce.py --smoke --out /tmp/x
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.quiet_tensorflow()

# Paper, Table 2, MNIST test error in percent (mean, std over runs): docs/binaryconnect-reference.md, section 5.
PAPER_MNIST = {
    "deterministic": (1.29, 0.08),
    "stochastic": (1.18, 0.04),
    "float": (1.30, 0.04),
}
MODE_LABELS = {
    "deterministic": "BinaryConnect det.",
    "stochastic": "BinaryConnect stoch.",
    "float": "no regularizer (float)",
}
PAPER_LENGTH = "real MNIST 50k/10k/10k, 784-2048x3-10, 250 epochs"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="The paper's MNIST recipe with bclab.Trainer.")
    parser.add_argument("--smoke", action="store_true", help="tiny network, 1 epoch on 600 digits, for CI")
    parser.add_argument("--out", default=str(_common.DEFAULT_OUT), help="folder for reproduce.json")
    parser.add_argument("--dataset", default="mnist-5k", help="mnist-5k (embedded) or mnist (keras.datasets)")
    parser.add_argument("--size", choices=("paper", "small", "tiny"), default="small")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--modes", nargs="+", choices=tuple(PAPER_MNIST), default=list(PAPER_MNIST))
    parser.add_argument(
        "--n-validation",
        type=int,
        default=None,
        help="last n training examples validate (default: 10000 for mnist, 1000 for mnist-5k)",
    )
    parser.add_argument("--n-train", type=int, default=None, help="keep the first n training examples")
    parser.add_argument("--n-test", type=int, default=None, help="keep the first n test examples")
    parser.add_argument("--jit-compile", action="store_true", help="XLA (worth it on a GPU)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.epochs, args.seeds = "tiny", 1, [0]
        args.n_train, args.n_test = args.n_train or 600, args.n_test or 200
        args.n_validation = args.n_validation or 200
    if args.n_validation is None:
        args.n_validation = 10_000 if args.dataset == "mnist" else 1_000
    return args


def run_one(args, mode: str, seed: int, dataset) -> dict[str, Any]:
    from bclab import RunConfig, Trainer
    from bclab.train.trainer import best_epoch

    config = RunConfig.recipe(
        "mnist",
        size=args.size,
        dataset=args.dataset,
        epochs=args.epochs,
        mode=mode,
        seed=seed,
        n_validation=args.n_validation,
        n_train=args.n_train,
        n_test=args.n_test,
        trace="off",
        jit_compile=args.jit_compile,
    )
    start = time.perf_counter()
    trainer = Trainer(config, dataset)
    history = trainer.run()
    best = best_epoch(history)
    return {
        "mode": mode,
        "seed": seed,
        "best_epoch": best.epoch,
        "best_val_error": best.val_error,
        "test_error_at_best_val": best.test_error,
        "last_test_error": history[-1].test_error,
        "seconds": time.perf_counter() - start,
        "steps": trainer.global_step,
        "split": {
            "train": len(trainer.split.x_train),
            "validation": len(trainer.split.x_val),
            "test": len(trainer.split.x_test),
        },
        "history": trainer.history_dicts(),
        "config": config.to_dict(),
    }


def summarize(runs: list[dict[str, Any]], modes: list[str]) -> dict[str, Any]:
    """Per mode: mean and std over seeds of the test error at the best validation epoch, and the paper's."""
    summary = {}
    for mode in modes:
        errors = [r["test_error_at_best_val"] for r in runs if r["mode"] == mode]
        summary[mode] = {
            "test_error_mean": statistics.fmean(errors),
            "test_error_std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
            "per_seed": errors,
            "best_epochs": [r["best_epoch"] for r in runs if r["mode"] == mode],
            "paper_mean": PAPER_MNIST[mode][0],
            "paper_std": PAPER_MNIST[mode][1],
        }
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    """The table: the paper's figure and ours per mode, with the per-seed errors and best epochs."""
    rows = [
        [
            MODE_LABELS[m],
            f"{s['paper_mean']:.2f} +- {s['paper_std']:.2f}",
            f"{s['test_error_mean']:.2f} +- {s['test_error_std']:.2f}",
            len(s["per_seed"]),
            " ".join(f"{e:.2f}" for e in s["per_seed"]),
            " ".join(map(str, s["best_epochs"])),
        ]
        for m, s in summary.items()
    ]
    print("\nTest error (%) at the best validation epoch, mean +- std over seeds")
    print(_common.format_table(["method", "paper (Table 2)", "bclab", "seeds", "per seed", "best epochs"], rows))


def length_note(args, split: dict[str, int], full: bool) -> str:
    """Whether the run is comparable with the paper's, and the command for the full length if not."""
    return (
        "full-length run: comparable with the paper"
        if full
        else f"REDUCED run ({args.dataset}: {split['train']} train / {split['validation']} validation / "
        f"{split['test']} test, size {args.size}, {args.epochs} epochs): not comparable with the paper's "
        f"figures ({PAPER_LENGTH}). The full length needs real MNIST (--dataset mnist, keras.datasets, "
        "downloaded once then cached) and a GPU: --dataset mnist --size paper --epochs 250 --seeds 0 1 2 3 4."
    )


def main(argv=None) -> int:
    load_before = _common.load_average()
    args = parse_args(argv)
    from bclab import load_dataset

    dataset = load_dataset(args.dataset)
    print(
        f"bclab reproduce (MNIST, Table 2) | dataset {args.dataset} ({dataset.source}) | size {args.size} | "
        f"epochs {args.epochs} | seeds {args.seeds} | load average before {load_before}",
        flush=True,
    )
    runs = []
    for seed in args.seeds:
        for mode in args.modes:
            run = run_one(args, mode, seed, dataset)
            runs.append(run)
            print(
                f"  {mode:13s} seed {seed}: test error {run['test_error_at_best_val']:.2f} % at best validation "
                f"epoch {run['best_epoch']}/{args.epochs} (val {run['best_val_error']:.2f} %), "
                f"{run['seconds']:.0f} s, load {_common.load_average()}",
                flush=True,
            )
    summary = summarize(runs, args.modes)
    full = args.dataset == "mnist" and args.size == "paper" and args.epochs >= 250
    print_summary(summary)
    note = length_note(args, runs[0]["split"], full)
    print(f"  note: {note}")
    machine = _common.machine_info(load_before)
    payload = {
        "benchmark": "reproduce",
        "machine": machine,
        "smoke": args.smoke,
        "settings": vars(args),
        "full_length": full,
        "note": note,
        "summary": summary,
        "runs": runs,
        "paper": {m: list(v) for m, v in PAPER_MNIST.items()},
    }
    path = _common.write_results("reproduce", args.out, payload)
    print(
        f"\nload average before {load_before}, after {machine['load_average_after']}; device {machine['device']}; "
        f"TF {machine['tensorflow']}, Keras {machine['keras']}\nwrote {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
