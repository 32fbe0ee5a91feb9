"""What the records appended so far add up to, besides the tables: counts, last step, counters, first NaN/Inf."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bclab.trace.records import Record
from bclab.validation import check_int, invalid_value


@dataclass
class Progress:
    """What every record adds, light or heavy, kept whole: thinning never drops any of it.

    Not thread-safe: `bclab.trace.store.Trace` holds its lock around every call.
    """

    STATE_KEYS: ClassVar[tuple[str, ...]] = (
        "n_appended",
        "last_step",
        "last_epoch",
        "counter_names",
        "latest_counters",
        "first_nonfinite",
    )

    n_appended: int = 0
    last_step: int | None = None  # of the last record of any kind
    last_epoch: int | None = None
    counter_names: list[str] = field(default_factory=list)  # in order of first appearance
    latest_counters: list | None = None  # [step, {name: value}] of the last record with counters
    first_nonfinite: dict[str, Any] | None = None  # see `Record.nonfinite`

    def check_step(self, step: int) -> None:
        """Raises ValueError unless `step` comes after the last one."""
        if self.last_step is not None and step <= self.last_step:
            raise invalid_value("step", step, f"steps to be strictly increasing (last step: {self.last_step})")

    def add(self, record: Record, nonfinite: dict[str, Any] | None) -> None:
        """Counts one record (checked by `check_step`); `nonfinite` is its `record.nonfinite()`."""
        self.n_appended += 1
        self.last_step = record.step
        if record.epoch is not None:
            self.last_epoch = record.epoch
        self.counter_names += [name for name in record.counters if name not in self.counter_names]
        if record.counters:
            self.latest_counters = [record.step, record.counters]
        if self.first_nonfinite is None:
            self.first_nonfinite = nonfinite

    def to_state(self) -> dict[str, Any]:
        """The `STATE_KEYS` header entries. Only `counter_names` grows in place, so only it is copied."""
        return {**{key: getattr(self, key) for key in self.STATE_KEYS}, "counter_names": list(self.counter_names)}

    @classmethod
    def from_state(cls, header: Mapping[str, Any]) -> Progress:
        """Reads `to_state`'s entries. Raises ValueError (and others) if they are malformed."""
        latest, bad = header["latest_counters"], header["first_nonfinite"]
        if latest is not None:
            latest = [check_int("latest_counters", latest[0]), dict(latest[1])]
        return cls(
            n_appended=check_int("n_appended", header["n_appended"], 0),
            last_step=_optional_int("last_step", header["last_step"]),
            last_epoch=_optional_int("last_epoch", header["last_epoch"]),
            counter_names=[str(name) for name in header["counter_names"]],
            latest_counters=latest,
            first_nonfinite=None if bad is None else dict(bad),
        )


def _optional_int(name: str, value: Any) -> int | None:
    return None if value is None else check_int(name, value, 0)
