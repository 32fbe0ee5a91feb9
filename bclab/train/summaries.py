"""What a step reports of each kernel layer and parameter, computed on the device.

Shared by the Trainer's instrumented step (`bclab.train.step`) and the `fit` probe
(`bclab.train.probe`), so a run of either gives the same trace. Per kernel layer
(`bclab.core.protocol`: binary or float):

- exact over the whole kernel (`level="scalars"` and `"full"`): the gradient norm and the norm
  of the update actually applied (`W_after - W_before`: after the step scale and the clip); for a
  binary layer also the +H/-H counts of the binary kernel used in this step;
- over a fixed subset (`bclab.train.histograms`), binary layers only: the flip ratio (fraction of
  binary weights that differ from the previous step's; step 0 compares with `sign(W_init)`) and
  the clipped fraction (weights at the bound `|W| = H` after the update);
- with `level="full"`: histograms on fixed bins of the real weights W used in the forward pass (in
  units of the layer's scale), of the gradient and of the update, and for binary layers of
  `p = hard_sigmoid(W/H)`; and W, gradient and update (binary layers: also Wb and p) of
  `sample_size` tracked weights chosen by seed.

The scale of a binary layer is its H. A float layer has none: its scale is its `H` attribute when
it has one (a bclab layer with `binary=False`), else the largest |W| of its kernel when the
summaries are made, so its histogram spans [-1, 1] of that range (larger weights fall in the
outer bins). Every other trainable variable (biases, BatchNorm) gets gradient and update norms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from bclab.config import TRACE_LEVELS
from bclab.core.binarize import hard_sigmoid
from bclab.core.protocol import KernelLayer
from bclab.trace.layers import LayerInfo
from bclab.trace.schema import CLIPPED_FRACTION, FLIP_RATIO, GRAD_NORM, LAYER_SCALARS, PARAM_SCALARS, UPDATE_NORM
from bclab.train.histograms import HIST_SUBSET, bucket_counts, default_bin_edges, subset_stride
from bclab.validation import check_choice, check_int

__all__ = ["StepSummaries", "layer_scale"]


def layer_scale(layer: Any, binary: bool) -> float:
    """The unit of a layer's weight histogram: H (module docstring)."""
    H = getattr(layer, "H", None)
    if isinstance(H, (int, float)) and not isinstance(H, bool) and math.isfinite(H) and H > 0:
        return float(H)
    if binary:
        raise ValueError(f"binary layer {layer.name!r} has no positive H")
    largest = float(np.max(np.abs(np.asarray(layer.kernel.numpy())))) if layer.kernel.shape.num_elements() else 0.0
    return largest if math.isfinite(largest) and largest > 0 else 1.0


class StepSummaries:
    """The device-side summaries of one step for `layers` (`KernelLayer`s) and `params`.

    Args:
        layers: the traced kernel layers, binary or float.
        params: the other trainable variables (norms only).
        level: "off", "scalars" or "full" (`bclab.config.TRACE_LEVELS`).
        sample_size: tracked weights per layer (level "full"); capped by the smallest kernel.
        seed: chooses the tracked weights.
        bin_edges: histogram edges per kind (default: `default_bin_edges()`).
        hist_subset: at most this many weights per layer in the subset (`bclab.train.histograms`).
        xla: the summaries are compiled with XLA (`bclab.train.histograms.bucket_counts`).
    """

    def __init__(
        self,
        layers: Sequence[KernelLayer],
        params: Sequence[Any],
        *,
        level: str = "full",
        sample_size: int = 256,
        seed: int = 0,
        bin_edges: dict[str, np.ndarray] | None = None,
        hist_subset: int = HIST_SUBSET,
        xla: bool = False,
    ):
        self.xla = xla
        self.level = check_choice("level", level, TRACE_LEVELS)
        self.layers, self.params = list(layers), list(params)
        self.scales = [layer_scale(layer, binary) for layer, binary in self.layers]
        self.bin_edges = bin_edges or default_bin_edges()
        sizes = [int(np.prod(layer.kernel.shape)) for layer, _ in self.layers]
        self.hist_stride = [subset_stride(size, hist_subset) for size in sizes]
        # One sample size for all layers (the trace stores a fixed-width row), capped by the smallest.
        wanted = check_int("sample_size", sample_size, 0)
        self.sample_size = min([wanted, *sizes]) if level == "full" and sizes else 0
        rng = np.random.default_rng(seed)
        self.sample_index = [np.sort(rng.choice(size, self.sample_size, replace=False)) for size in sizes]
        # The binary weights (on the subset) of the previous step, for the flip ratio.
        self.previous_plus = [
            tf.Variable(
                tf.reshape(layer.kernel.value >= 0, [-1])[::k],
                trainable=False,
                name=f"{layer.name}_previous_plus",
            )
            if binary
            else None
            for (layer, binary), k in zip(self.layers, self.hist_stride)
        ]

    @property
    def tracing(self) -> bool:
        return self.level != "off"

    def layer_infos(self) -> list[LayerInfo]:
        """What the trace knows of each traced layer; a float layer's H is its histogram scale."""
        return [
            LayerInfo(
                name=layer.name,
                shape=tuple(int(d) for d in layer.kernel.shape),
                H=scale,
                W_LR_scale=float(getattr(layer, "W_LR_scale", 1.0) or 1.0),
                binary=binary,
                stochastic=binary and bool(getattr(layer, "stochastic", False)),
            )
            for (layer, binary), scale in zip(self.layers, self.scales)
        ]

    def param_names(self) -> list[str]:
        return [getattr(v, "path", None) or v.name for v in self.params]

    def records(self, host: dict[str, Any]) -> dict[str, Any]:
        """The `layers` and `params` entries of a trace record (`bclab.trace.store.Trace.append`)
        from the host copy of `compute`'s output."""
        layers = {}
        for (layer, _), summary in zip(self.layers, host["layers"]):
            entry: dict[str, Any] = {
                "scalars": {name: float(summary[name]) for name in LAYER_SCALARS if name in summary}
            }
            if "plus" in summary:
                entry["plus"], entry["minus"] = int(summary["plus"]), int(summary["minus"])
            for key in ("hist", "sample"):
                if key in summary:
                    entry[key] = summary[key]
            layers[layer.name] = entry
        params = {
            name: {key: float(s[key]) for key in PARAM_SCALARS} for name, s in zip(self.param_names(), host["params"])
        }
        return {"layers": layers, "params": params}

    def before(self) -> tuple[list, list]:
        """Copies of the kernels and params before the update (empty when not tracing)."""
        if not self.tracing:
            return [], []
        kernels = [tf.identity(layer.kernel.value) for layer, _ in self.layers]
        return kernels, [tf.identity(v.value) for v in self.params]

    def compute(self, binary, kernels_before, kernel_grads, params_before, param_grads) -> dict[str, Any]:
        """`{"layers": [...], "params": [...]}` of the step just applied; `binary[i]` is layer i's
        binary kernel in use (None for a float layer)."""
        layers = [
            self._layer_summary(i, binary[i], kernels_before[i], kernel_grads[i]) for i in range(len(self.layers))
        ]
        params = [
            {GRAD_NORM: _norm(g), UPDATE_NORM: _norm(v.value - before)}
            for v, before, g in zip(self.params, params_before, param_grads)
        ]
        return {"layers": layers, "params": params}

    def _layer_summary(self, i, Wb, W_before, grad) -> dict[str, Any]:
        layer, is_binary = self.layers[i]
        H, k = tf.constant(self.scales[i], tf.float32), self.hist_stride[i]
        W_after = tf.reshape(layer.kernel.value, [-1])
        W, grad = tf.reshape(W_before, [-1]), tf.reshape(tf.cast(grad, W_before.dtype), [-1])
        summary: dict[str, Any] = {GRAD_NORM: _norm(grad), UPDATE_NORM: _norm(W_after - W)}
        if is_binary:
            # Exact over the whole kernel, one or two passes (l2_loss is one fused kernel).
            Wb = tf.reshape(tf.cast(Wb, W.dtype), [-1])
            n_plus = _count_plus(Wb, self.scales[i], int(np.prod(layer.kernel.shape)))
            summary["plus"], summary["minus"] = n_plus, tf.size(W, out_type=tf.int64) - n_plus
            # Over the subset (`bclab.train.histograms`).
            plus_sub = Wb[::k] > 0
            flips = tf.reduce_sum(tf.cast(tf.not_equal(plus_sub, self.previous_plus[i]), tf.float32))
            self.previous_plus[i].assign(plus_sub)
            summary[FLIP_RATIO] = flips / tf.cast(tf.size(plus_sub), tf.float32)
            summary[CLIPPED_FRACTION] = tf.reduce_mean(tf.cast(tf.abs(W_after[::k]) >= H, tf.float32))
        if self.level == "full":
            summary["hist"] = self._histograms(H, W[::k], W_after[::k], grad[::k], is_binary)
            if self.sample_size:
                summary["sample"] = self._sample(self.sample_index[i], H, W, Wb if is_binary else None, W_after, grad)
        return summary

    def _histograms(self, H, W, W_after, grad, is_binary: bool) -> dict[str, Any]:
        hist = {
            "real": bucket_counts(W / H, self.bin_edges["real"], self.xla),
            "grad": bucket_counts(grad, self.bin_edges["grad"], self.xla),
            "update": bucket_counts(W_after - W, self.bin_edges["update"], self.xla),
        }
        if is_binary:
            hist["prob"] = bucket_counts(hard_sigmoid(W / H), self.bin_edges["prob"], self.xla)
        return hist

    @staticmethod
    def _sample(index, H, W, Wb, W_after, grad) -> dict[str, Any]:
        W_s = tf.gather(W, index)
        sample = {"W": W_s, "grad": tf.gather(grad, index), "update": tf.gather(W_after, index) - W_s}
        if Wb is not None:
            sample["Wb"], sample["p"] = tf.gather(Wb, index), hard_sigmoid(W_s / H)
        return sample


def _norm(t):
    return tf.sqrt(2.0 * tf.nn.l2_loss(tf.cast(t, tf.float32)))


def _count_plus(Wb, H: float, size: int):
    """The number of +H entries of a flat binary kernel of `size` entries, exactly."""
    if size <= 2**24:
        # Wb/H is +-1: every partial sum is an integer below 2**24, which float32 holds
        # exactly, so the float sum (vectorized; integer and count_nonzero reductions are
        # 3-15x slower on CPU) is exact.
        signs = Wb if H == 1.0 else Wb / tf.constant(H, Wb.dtype)
        return tf.cast((size + tf.reduce_sum(signs)) / 2, tf.int64)
    return tf.reduce_sum(tf.cast(Wb > 0, tf.int64))
