"""Interleaved timing of contenders, the ratios between them, their targets, and the printed table.

A contender is anything with `name` and `run(n)` -> seconds for n steps (see `contenders.py`).
"""

from __future__ import annotations

from typing import Any

import _common

# The targets documented in bench/README.md ("Targets"); tests/test_bench.py checks that they agree.
# A ratio label's part before " (" names its target: "bclab/dense (XLA)" has the "bclab/dense" one.
TARGETS = {
    "bclab/dense": ">= 0.95",
    "bclab stochastic/dense": ">= 0.85",
    "bclab/larq": ">= 1.10",
    "trace full/off": ">= 0.90",
    "trace scalars/off": ">= 0.90",
    "livetrace scalars/fit": ">= 0.90",
    "livetrace full/fit": ">= 0.85",
}


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
    """Per contender median/best steps/s; per ratio `label: (numerator, denominator)` the median of the
    per-repetition ratios (paired), the ratio of medians and of bests, and the target with whether it is met."""
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
                "numerator": num,
                "denominator": den,
                "median_paired": _common.median(paired),
                "of_medians": contenders[num]["median_steps_per_s"] / contenders[den]["median_steps_per_s"],
                "of_bests": contenders[num]["best_steps_per_s"] / contenders[den]["best_steps_per_s"],
                "per_rep": paired,
                "target": target,
                "met": _meets(_common.median(paired), target),
            }
    return {"group": group, "contenders": contenders, "ratios": ratio_out, **(extra or {})}


def _meets(value: float, target: str) -> bool | None:
    """Whether `value` meets a target such as ">= 0.95" or "> 1.0"; None without a target."""
    if not target:
        return None
    op, threshold = target.split()
    return value >= float(threshold) if op == ">=" else value > float(threshold)


def print_group(result: dict[str, Any]) -> None:
    """Print a `summarize` result: the contenders' table, then the ratios' table and the notes."""
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
