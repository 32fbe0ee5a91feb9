"""The step trace: what happened in every training step (NumPy and the standard library only)."""

from bclab.trace.store import KINDS, SAMPLE_FIELDS, LayerInfo, Trace, TraceFileError, TraceLookupError

__all__ = ["KINDS", "SAMPLE_FIELDS", "LayerInfo", "Trace", "TraceFileError", "TraceLookupError"]
