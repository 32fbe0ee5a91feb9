"""Peak resident memory of a training run with the lab's default settings.

Each measurement runs in a fresh subprocess (`--worker`), so the peak is the run's own:
it imports TensorFlow and bclab, builds `Trainer(RunConfig(trace=...))` (the defaults: a
small deterministic MLP on the embedded mnist-5k digits, trace "full") and runs N steps
(default: the whole default run, 10 epochs). Reported per run: VmHWM (peak resident set,
/proc/self/status; `resource.getrusage` ru_maxrss where /proc is missing) after the
imports, after building the Trainer and at the end, and the trace's own
`Trace.memory_bytes()`. A trace="off" run alongside shows what the trace costs.

Usage:
  python bench/memory.py                 # trace full and off, the whole default run
  python bench/memory.py --steps 1000 --traces full
  python bench/memory.py --smoke --out /tmp/x
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

_common.quiet_tensorflow()

MB = 1024 * 1024


def peak_rss_bytes() -> tuple[int, str]:
    """(peak resident bytes of this process, source)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024, "VmHWM"
    except OSError:
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (rss if sys.platform == "darwin" else rss * 1024), "ru_maxrss"


def current_rss_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def worker(trace: str, steps: int | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Runs in the fresh subprocess: import, build the Trainer, train, measure."""
    start = time.perf_counter()
    import keras  # noqa: F401  (counted in the import baseline)
    import tensorflow as tf  # noqa: F401

    from bclab import RunConfig, Trainer

    after_import, source = peak_rss_bytes()
    config = RunConfig(trace=trace, **overrides)
    trainer = Trainer(config)
    after_build, _ = peak_rss_bytes()
    total = trainer.steps_total if steps is None else min(steps, trainer.steps_total)
    for _ in range(total):
        trainer.step()
    peak, _ = peak_rss_bytes()
    return {
        "trace": trace,
        "steps": trainer.global_step,
        "epochs_finished": trainer.epoch,
        "source": source,
        "peak_after_import_bytes": after_import,
        "peak_after_build_bytes": after_build,
        "peak_bytes": peak,
        "rss_end_bytes": current_rss_bytes(),
        "trace_memory_bytes": trainer.trace.memory_bytes() if trainer.trace is not None else 0,
        "trace_records": len(trainer.trace) if trainer.trace is not None else 0,
        "seconds": time.perf_counter() - start,
        "config": config.to_dict(),
    }


def measure(trace: str, steps: int | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Run `worker` in a fresh Python process and return its result."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--traces",
        trace,
        "--overrides",
        json.dumps(overrides),
    ]
    if steps is not None:
        command += ["--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][2:])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Peak resident memory of a default bclab training run.")
    parser.add_argument("--smoke", action="store_true", help="a few steps of a tiny network, for CI")
    parser.add_argument("--out", default=str(_common.DEFAULT_OUT), help="folder for memory.json")
    parser.add_argument("--steps", type=int, default=None, help="steps to train (default: the whole default run)")
    parser.add_argument("--traces", default="full,off", help="comma-separated trace levels, one subprocess each")
    parser.add_argument("--overrides", default="{}", help="JSON of RunConfig fields to change (default: none)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps = args.steps or 3
        overrides = json.loads(args.overrides)
        overrides.setdefault("size", "tiny")
        args.overrides = json.dumps(overrides)
    return args


def print_table(runs: list[dict[str, Any]]) -> None:
    """One row per run: the peaks in MB after import, after build and at the end, and the trace's size."""
    rows = [
        [
            r["trace"],
            r["steps"],
            f"{r['peak_after_import_bytes'] / MB:.0f}",
            f"{r['peak_after_build_bytes'] / MB:.0f}",
            f"{r['peak_bytes'] / MB:.0f}",
            f"{(r['peak_bytes'] - r['peak_after_import_bytes']) / MB:.0f}",
            f"{r['trace_memory_bytes'] / MB:.2f}",
            r["trace_records"],
        ]
        for r in runs
    ]
    print(f"\nPeak resident memory (MB, {runs[0]['source']}), one fresh process per row")
    print(
        _common.format_table(
            [
                "trace",
                "steps",
                "after import",
                "after build",
                "peak",
                "peak - import",
                "trace.memory_bytes()",
                "trace records",
            ],
            rows,
        )
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = json.loads(args.overrides)
    if args.worker:
        result = worker(args.traces, args.steps, overrides)
        print("@@" + json.dumps(result), flush=True)
        return 0
    load_before = _common.load_average()
    traces = [t.strip() for t in args.traces.split(",") if t.strip()]
    print(
        f"bclab memory | RunConfig() defaults{' + ' + json.dumps(overrides) if overrides else ''} | "
        f"steps {args.steps or 'whole run'} | load average before {load_before}",
        flush=True,
    )
    runs = [measure(trace, args.steps, overrides) for trace in traces]
    print_table(runs)
    machine = _common.machine_info(load_before)
    payload = {"benchmark": "memory", "machine": machine, "smoke": args.smoke, "settings": vars(args), "runs": runs}
    path = _common.write_results("memory", args.out, payload)
    print(
        f"\nload average before {load_before}, after {machine['load_average_after']}; device {machine['device']}; "
        f"TF {machine['tensorflow']}, Keras {machine['keras']}\nwrote {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
