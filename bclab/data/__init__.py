"""Data sets -> uint8 NumPy arrays -> batches for a training step.

`sources` (`load_dataset`: the embedded `mnist-5k`, the keras data sets, your own files),
`files` (`.npz` and IDX readers, which check declared sizes before reading), `dataset`
(`Dataset`, `Split` and their checks: labels, shapes, `check_fits_architecture`), `batching`
(validation split, subsets, float inputs and +-1 targets).
"""

from bclab.data.batching import batches, num_batches, one_hot_pm1, split_validation, subset, to_float
from bclab.data.dataset import MAX_CLASSES, Dataset, Split, check_fits_architecture, validate
from bclab.data.files import read_idx, read_npz
from bclab.data.sources import (
    DATASETS,
    DEFAULT_DATASET,
    FILE_SOURCES,
    DatasetUnavailableError,
    file_source,
    load_dataset,
)

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "FILE_SOURCES",
    "MAX_CLASSES",
    "Dataset",
    "DatasetUnavailableError",
    "Split",
    "batches",
    "check_fits_architecture",
    "file_source",
    "load_dataset",
    "num_batches",
    "one_hot_pm1",
    "read_idx",
    "read_npz",
    "split_validation",
    "subset",
    "to_float",
    "validate",
]
