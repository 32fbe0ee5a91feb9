"""The step trace: what happened in every training step (NumPy and the standard library only).

`schema` names the record's entries, `records` checks one record, `rows` and `tables` hold the
thinned data, `store` is the `Trace` itself, `fileformat` its files, `statecheck` checks a saved
state before a trace is built from it, `summary` its text and `tensorboard` the export of its scalars.
"""

from bclab.trace.fileformat import TraceFileError
from bclab.trace.schema import KINDS, SAMPLE_FIELDS
from bclab.trace.store import LayerInfo, Trace, TraceLookupError

__all__ = ["KINDS", "SAMPLE_FIELDS", "LayerInfo", "Trace", "TraceFileError", "TraceLookupError"]
