"""1-bit export of a Keras model with bclab binary layers, and the inference model rebuilt from it.

`export_packed(model, path)` writes a `.bclab` file (`bclab.export.fileformat`): the model's Keras
config, each binary kernel (`binary=True`) as 1 bit per weight plus `H` and its shape
(`bclab.export.bits`), and every other weight (biases, BatchNorm, plain layers) as the float
array it is. `load_packed(path)` rebuilds the model from its config and sets each binary kernel
to `+-H`; the rebuilt model's test-time predictions (`training=False`) equal the original's
bit for bit.

Why it is exact: the bits are those of the original's test-time kernel, computed by the layers'
own rule (`binarization(W, H, deterministic=True)`: `+H` unless `fl(W / H) < -eps/4`, so
`W == 0`, a tiny negative `W` and a NaN give `+H`; `bclab.core.binarize`). The rebuilt layer
has the same `H` (checked) and a kernel of `+-H` with the original's signs, which it binarizes
to the original's `Wb` (the magnitude comes from its own cast of `H`, the signs from the kernel's);
so both forward passes run the same ops on the same values.

Rules (choices, each tested):
- A stochastic binary layer's test-time kernel is its real-valued `W` (the reference evaluates
  stochastic nets with real weights), which 1 bit cannot hold: export refuses it, naming the
  layers, unless `as_deterministic=True`, which packs `H * sign(W)` (the deterministic rule) and
  rebuilds those layers with `stochastic=False`; predictions then differ from the stochastic net's.
- A model with no binary layer is refused: there is nothing to pack, and `model.save` keeps it.
- Only `model.weights` are kept: no optimizer state and no sampler state (`SeedGenerator`), which
  only training uses. The rebuilt model is not compiled; its real-valued `W` is gone (`+-H` stand
  in), so it is for inference, not for resuming training.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from bclab.core.binarize import binarization
from bclab.core.layers import BinaryKernelMixin, binary_layers
from bclab.export.bits import KERNEL_DTYPES, pack_signs, unpack_signs
from bclab.export.fileformat import file_error, read_file, write_file
from bclab.validation import check_flag, invalid_value

_BINARY_CLASSES = ("bclab>BinaryDense", "bclab>BinaryConv2D")  # registered names in a Keras config


@dataclass(frozen=True)
class ExportSummary:
    """What `export_packed` wrote: the file and its size, and what went into it."""

    path: str
    file_bytes: int
    packed_layers: tuple[str, ...]  # binary layers stored at 1 bit per weight
    as_deterministic: tuple[str, ...]  # the stochastic ones among them, packed as deterministic
    binary_weights: int  # weights stored as bits
    float_values: int  # other values stored as floats
    weights_bytes: int  # what `model.weights` take in memory (float32: 4 bytes a weight)

    @property
    def weights_ratio(self) -> float:
        """How many times smaller the file is than the model's weights in memory."""
        return self.weights_bytes / self.file_bytes


def stochastic_layers(model: keras.Model) -> list[str]:
    """The names of the model's stochastic binary layers (those `export_packed` refuses by default)."""
    return [layer.name for layer in binary_layers(model) if layer.stochastic]


def export_packed(model: keras.Model, path: str | os.PathLike, *, as_deterministic: bool = False) -> ExportSummary:
    """Writes `model` to `path` with each binary kernel at 1 bit per weight (the module docstring).

    Args:
        model: a built `keras.Model` with at least one bclab binary layer (`binary=True`).
        path: the file to write (atomically; an existing file is replaced, as `model.save` does).
        as_deterministic: pack stochastic binary layers as deterministic ones (`H * sign(W)`).

    Raises:
        ValueError: `model` is not a built keras.Model, has no binary layer, has stochastic layers
            without `as_deterministic=True`, or a weight of a dtype NumPy cannot store.
    """
    as_deterministic = check_flag("as_deterministic", as_deterministic)
    layers = binary_layers(model)
    _check_exportable(model, layers, as_deterministic)
    kernels = {id(layer.kernel): layer for layer in layers}
    entries, arrays = [], []
    for variable in model.weights:
        layer = kernels.get(id(variable))
        entry, array = _packed(variable, layer) if layer is not None else _float(variable)
        entries.append(entry)
        arrays.append(array)
    converted = [layer.name for layer in layers if layer.stochastic]
    header = {
        "keras_version": keras.__version__,
        "bclab_version": sys.modules["bclab"].__version__,  # loaded before any of its modules
        "model": _deterministic_config(json.loads(model.to_json()), converted),
        "variables": entries,
        "as_deterministic": converted,
    }
    write_file(path, header, arrays)
    bits = sum(math.prod(entry["shape"]) for entry in entries if entry["kind"] == "bits")
    return ExportSummary(
        path=os.fspath(path),
        file_bytes=os.path.getsize(path),
        packed_layers=tuple(layer.name for layer in layers),
        as_deterministic=tuple(converted),
        binary_weights=bits,
        float_values=sum(math.prod(entry["shape"]) for entry in entries if entry["kind"] == "float"),
        weights_bytes=sum(
            math.prod(v.shape) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize for v in model.weights
        ),
    )


def _check_exportable(model: keras.Model, layers: list[BinaryKernelMixin], as_deterministic: bool) -> None:
    if not model.built or any(not layer.built for layer in layers):
        raise invalid_value("model", model, "a built model (call it on a batch, or give it an Input, first)")
    if not layers:
        raise invalid_value(
            "model",
            model,
            "a model with at least one bclab binary layer (binary=True): this one has none, so there is no "
            "kernel to pack into bits; `model.save` keeps it as it is",
        )
    stochastic = [layer.name for layer in layers if layer.stochastic]
    if stochastic and not as_deterministic:
        raise invalid_value(
            "as_deterministic",
            as_deterministic,
            f"True for a model with stochastic binary layers ({stochastic}): at test time they use the "
            "real-valued W (the reference's semantics), which 1 bit cannot hold. as_deterministic=True packs "
            "H * sign(W) and rebuilds them as deterministic layers, whose predictions differ from these",
        )


def _packed(variable, layer: BinaryKernelMixin) -> tuple[dict[str, Any], np.ndarray]:
    """A binary kernel's entry and bits: its deterministic test-time kernel, by the layers' own rule."""
    dtype = keras.backend.standardize_dtype(variable.dtype)
    if dtype not in KERNEL_DTYPES:
        raise invalid_value(f"{layer.name}.kernel.dtype", dtype, f"one of {list(KERNEL_DTYPES)} (NumPy holds those)")
    Wb = ops.convert_to_numpy(binarization(variable, layer.H, binary=True, deterministic=True, stochastic=False))
    entry = {"path": variable.path, "name": variable.name, "kind": "bits", "shape": list(variable.shape)}
    return {**entry, "dtype": dtype, "layer": layer.name, "H": float(layer.H)}, pack_signs(Wb)


def _float(variable) -> tuple[dict[str, Any], np.ndarray]:
    array = np.asarray(ops.convert_to_numpy(variable))
    if array.dtype.kind not in "biuf":
        raise invalid_value(f"{variable.path}.dtype", str(array.dtype), "a dtype NumPy stores (float, int or bool)")
    entry = {"path": variable.path, "name": variable.name, "kind": "float", "shape": list(array.shape)}
    return {**entry, "dtype": array.dtype.name}, array


def _deterministic_config(config: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """`config` with `stochastic: false` for the binary layers named (each found exactly once)."""
    found = {name: [] for name in names}
    _collect_binary_configs(config, found)
    for name, configs in found.items():
        if len(configs) != 1:
            raise invalid_value(
                "model", name, f"a binary layer named once in the model's config (found {len(configs)})"
            )
        configs[0]["stochastic"] = False
    return config


def _collect_binary_configs(node: Any, found: dict[str, list]) -> None:
    if isinstance(node, dict):
        inner = node.get("config")
        if node.get("registered_name") in _BINARY_CLASSES and isinstance(inner, dict) and inner.get("name") in found:
            found[inner["name"]].append(inner)
        for value in node.values():
            _collect_binary_configs(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect_binary_configs(value, found)


def load_packed(path: str | os.PathLike) -> keras.Model:
    """The inference model a `.bclab` file holds (not compiled; binary kernels set to `+-H`).

    Raises:
        PackedFileError: the file is not a valid `.bclab` file (`bclab.export.fileformat`), its
            config does not rebuild a built model, or its variables do not fit that model (count,
            names, shapes, dtypes, which are binary kernels, `H`); the message names the file.
    """
    path = os.fspath(path)
    header, arrays = read_file(path)
    model = _rebuilt(path, header["model"])
    kernels = {id(layer.kernel): layer for layer in binary_layers(model)}
    variables = model.weights
    if len(variables) != len(header["variables"]):
        raise file_error(path, f"its model has {len(variables)} variables, the file holds {len(header['variables'])}.")
    for index, (variable, entry, array) in enumerate(zip(variables, header["variables"], arrays)):
        layer = kernels.get(id(variable))
        _check_fits(path, index, variable, entry, layer)
        if layer is not None:
            array = unpack_signs(array, tuple(entry["shape"]), entry["H"], entry["dtype"])
        variable.assign(array)
    return model


def _rebuilt(path: str, config: dict[str, Any]) -> keras.Model:
    try:
        # safe_mode: a file from elsewhere must not run code (a Lambda layer's bytecode).
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a config it cannot follow
        raise file_error(
            path, f"its model config does not rebuild a Keras model: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(model, keras.Model) or not model.built:
        raise file_error(path, f"its model config rebuilds {type(model).__name__}, not a built keras.Model.")
    return model


def _check_fits(path: str, index: int, variable, entry: dict[str, Any], layer: BinaryKernelMixin | None) -> None:
    """The file's entry `index` describes `variable` of the rebuilt model, else PackedFileError."""
    where = f"variable {index} ({entry['path']!r})"
    dtype = keras.backend.standardize_dtype(variable.dtype)
    if (entry["name"], tuple(entry["shape"]), entry["dtype"]) != (variable.name, tuple(variable.shape), dtype):
        raise file_error(
            path,
            f"{where} is {entry['name']!r} {tuple(entry['shape'])} {entry['dtype']}, but the rebuilt model's "
            f"variable {index} is {variable.name!r} {tuple(variable.shape)} {dtype} ({variable.path!r}).",
        )
    if (entry["kind"] == "bits") != (layer is not None):
        what = "bits, but the rebuilt model's variable is not a binary kernel" if layer is None else "floats"
        raise file_error(path, f"{where} is stored as {what}{'' if layer is None else ' for a binary kernel'}.")
    if layer is None:
        return
    if layer.stochastic:
        raise file_error(
            path, f"{where}: layer {layer.name!r} is stochastic in the config; packed layers are deterministic."
        )
    if entry["layer"] != layer.name or entry["H"] != layer.H:
        raise file_error(
            path,
            f"{where} belongs to layer {entry['layer']!r} with H={entry['H']!r}; the rebuilt layer is "
            f"{layer.name!r} with H={layer.H!r}.",
        )
