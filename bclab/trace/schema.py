"""The names in a step record: one place for every scalar, counter, histogram kind and sample field.

The instrumented step writes these names, the store keeps them, and the figures, the comparison
and the TensorBoard export read them; spell them here, import them everywhere else.
"""

from __future__ import annotations

# Model-level scalars, one value per step.
LOSS = "loss"
ACCURACY = "accuracy"
LR = "lr"
EPOCH = "epoch"  # the store also keeps each record's epoch as a model-level scalar
MODEL_SCALARS = (LOSS, ACCURACY, LR)
MODEL_SCOPE = ""  # the scope of model-level scalars in the store and its files; layer and param names are non-empty

# Per-layer scalars of a binary layer (see `bclab.train.step` for how each is computed).
GRAD_NORM = "grad_norm"
UPDATE_NORM = "update_norm"
CLIPPED_FRACTION = "clipped_fraction"
FLIP_RATIO = "flip_ratio"
LAYER_SCALARS = (GRAD_NORM, UPDATE_NORM, CLIPPED_FRACTION, FLIP_RATIO)
PARAM_SCALARS = (GRAD_NORM, UPDATE_NORM)  # non-binary parameters

# Counters that answer "when does the optimizer run?" (model-level scalars too).
PYTHON_TRACES = "python_traces"
PYTHON_UPDATE_STEP_CALLS = "python_update_step_calls"
COMPILED_RUNS = "compiled_runs"
COUNTERS = (PYTHON_TRACES, PYTHON_UPDATE_STEP_CALLS, COMPILED_RUNS)

# Histogram kinds (fixed bins, one set of edges each) and tracked-weight fields.
KINDS = ("real", "prob", "grad", "update")
SAMPLE_FIELDS = ("W", "Wb", "p", "grad", "update")


def is_model_level(name: str) -> bool:
    """Scalars kept once per step for the whole model, not per layer: the model scalars, the
    counters and the epoch."""
    return name in MODEL_SCALARS or name in COUNTERS or name == EPOCH


def is_watched_for_nonfinite(name: str) -> bool:
    """The scalars whose first NaN/Inf the store reports: the loss and every norm."""
    return name == LOSS or name.endswith("_norm")
