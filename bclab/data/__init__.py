"""Data sets -> uint8 NumPy arrays -> batches for a training step.

`sources` (`load_dataset`: the embedded `mnist-5k`, the keras data sets, your own files),
`files` (`.npz` and IDX readers), `dataset` (`Dataset`, `Split` and their checks), `batching`
(validation split, subsets, float inputs and +-1 targets).
"""

from bclab.data.batching import batches, num_batches, one_hot_pm1, split_validation, subset, to_float
from bclab.data.dataset import Dataset, Split, validate
from bclab.data.files import read_idx
from bclab.data.sources import DATASETS, DEFAULT_DATASET, FILE_SOURCES, DatasetUnavailableError, load_dataset

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "FILE_SOURCES",
    "Dataset",
    "DatasetUnavailableError",
    "Split",
    "batches",
    "load_dataset",
    "num_batches",
    "one_hot_pm1",
    "read_idx",
    "split_validation",
    "subset",
    "to_float",
    "validate",
]
