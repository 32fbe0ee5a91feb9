"""Fixed histogram bins, counts computed on the device, and the subset of weights they look at.

The subset rule (used by the histograms, the flip ratio and the clipped fraction of
`bclab.train.step`): every k-th weight of the flattened kernel, `k = ceil(size / hist_subset)`,
so at most `hist_subset` weights (`HIST_SUBSET` = 16,384 by default) and all of them (k = 1) for
smaller kernels. The subset is the same at every step, so its counts are comparable over time.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bclab.validation import check_positive_int, invalid_value

HIST_SUBSET = 16_384
SYMLOG_DECADES = (-10.0, 1.0)  # magnitudes of the gradient and update bins: 1e-10 .. 10


def subset_stride(size: int, hist_subset: int = HIST_SUBSET) -> int:
    """k of the subset rule (module docstring) for a kernel of `size` weights.

    A strided slice, not random indices: it costs far less than a gather (measured on a CPU:
    0.5 vs 5 ms for 16,384 / 65,536 of 4M weights).
    """
    hist_subset = check_positive_int("hist_subset", hist_subset)
    return max(1, -(-size // hist_subset))


def default_bin_edges(nbins: int = 64) -> dict[str, np.ndarray]:
    """Fixed histogram edges: W in units of H on [-1, 1]; p on [0, 1]; gradient and update
    on symmetric log bins (`nbins` even): 0, then +-m_j with m_j = 10 ** (-10 + 11 j / (nbins/2 - 1))."""
    if nbins < 4 or nbins % 2:
        raise invalid_value("nbins", nbins, "an even number >= 4")
    magnitudes = np.logspace(*SYMLOG_DECADES, nbins // 2)
    symlog = np.concatenate([-magnitudes[::-1], [0.0], magnitudes])
    return {
        "real": np.linspace(-1.0, 1.0, nbins + 1),
        "prob": np.linspace(0.0, 1.0, nbins + 1),
        "grad": symlog,
        "update": symlog.copy(),
    }


def bin_index(values, edges: np.ndarray):
    """The bin of each value, computed arithmetically (no search: a search op costs about
    ten times more on a CPU). Values beyond the outer edges go to the outer bins; NaN to
    the bin of 0.

    Uniform edges: `floor((v - e_0) * n / (e_n - e_0))` in float32. Symmetric-log edges
    (`default_bin_edges`): by the sign of v and `floor(t) + 1` with
    `t = (log10|v| + 10) * (n/2 - 1) / 11`, so `|v|` in `[m_(j-1), m_j)` is magnitude
    bin j. These are the edges' bins except, at most, for values within a rounding of an edge.
    Any other edges: an exact search (`Bucketize`).
    """
    nbins = len(edges) - 1
    values = tf.where(tf.math.is_nan(values), tf.zeros_like(values), values)
    widths = np.diff(edges)
    if np.allclose(widths, widths[0], rtol=1e-9, atol=0):
        scale = np.float32(nbins / (edges[-1] - edges[0]))
        index = tf.floor((values - np.float32(edges[0])) * scale)
        return tf.cast(tf.clip_by_value(index, 0.0, nbins - 1.0), tf.int32)
    if nbins % 2 == 0 and np.array_equal(edges, default_bin_edges(nbins)["grad"]):
        half = nbins // 2
        low, high = SYMLOG_DECADES
        per_decade = np.float32((half - 1) / (high - low))
        log10 = tf.math.log(tf.maximum(tf.abs(values), 1e-37)) * np.float32(1 / np.log(10))
        j = tf.clip_by_value(tf.floor((log10 - np.float32(low)) * per_decade) + 1.0, 0.0, half - 1.0)
        j = tf.cast(j, tf.int32)
        return tf.where(values >= 0, half + j, half - 1 - j)
    return tf.raw_ops.Bucketize(input=values, boundaries=[float(e) for e in edges[1:-1]])


def bucket_counts(values, edges: np.ndarray, xla: bool = False):
    """Counts of `values` per bin of `edges` (see `bin_index`), as int64.

    `xla=True` for a step compiled with XLA, which has no bincount kernel: a segment sum, slower
    on a CPU but compiled.
    """
    nbins = len(edges) - 1
    index = bin_index(values, edges)
    if xla:
        ones = tf.ones_like(index, dtype=tf.int64)
        return tf.ensure_shape(tf.math.unsorted_segment_sum(ones, index, nbins), [nbins])
    counts = tf.math.bincount(index, minlength=nbins, maxlength=nbins, dtype=tf.int64)
    return tf.ensure_shape(counts, [nbins])  # static, so a step can pack its summaries into one vector
