"""Replace an attribute of one live object for the length of a `with` block, then put it back.

The one way bclab patches live objects (`BinaryConnectOptimizer`'s learning-rate scaling, the
instrumented step's probes in `bclab.train.instrument`): only while a step's Python body runs
(once, at trace time, when the step is compiled) and restored on exit, exceptions included.
Restoring puts back exactly what was there: the instance's own attribute if it had one, else
nothing, so that lookups reach the class again. Blocks may nest (each wraps what the one
outside installed) as long as they exit in reverse order, as `with` blocks do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_ABSENT = object()


@contextlib.contextmanager
def replaced_attribute(obj: Any, name: str, value: Any) -> Iterator[None]:
    """`obj.name = value` inside the block; on exit, `obj.name` is what it was before."""
    saved = vars(obj).get(name, _ABSENT)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if saved is _ABSENT:
            delattr(obj, name)
        else:
            setattr(obj, name, saved)
