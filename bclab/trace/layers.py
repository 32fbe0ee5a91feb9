"""What the trace knows of the model: its binary layers (`LayerInfo`) and its other parameters' names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bclab.validation import invalid_value


@dataclass(frozen=True)
class LayerInfo:
    """Static description of one binary layer: kernel shape, H, step scale and mode."""

    name: str
    shape: tuple[int, ...]
    H: float
    W_LR_scale: float
    binary: bool
    stochastic: bool

    def to_config(self) -> dict[str, Any]:
        """The JSON-able form `from_config` reads."""
        return {**vars(self), "shape": list(self.shape)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LayerInfo:
        """Reads `to_config`'s dict; bclab 0.1 files call `W_LR_scale` `lr_scale`."""
        scale = config["W_LR_scale"] if "W_LR_scale" in config else config["lr_scale"]
        keys = ("name", "H", "binary", "stochastic")
        return cls(shape=tuple(config["shape"]), W_LR_scale=scale, **{key: config[key] for key in keys})


def check_layers_and_params(
    layers: Sequence[LayerInfo], params: Sequence[str]
) -> tuple[tuple[LayerInfo, ...], tuple[str, ...]]:
    """The layers and params as tuples, checked: the trace files scalars under these names, so all must differ."""
    layers, params = tuple(layers), tuple(params)
    if not layers or not all(isinstance(li, LayerInfo) for li in layers):
        raise invalid_value("layers", layers, "a non-empty sequence of LayerInfo")
    names = [li.name for li in layers]
    if not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
        raise invalid_value("layers", layers, "LayerInfo with unique, non-empty names")
    if not all(isinstance(p, str) and p and p not in names for p in params) or len(set(params)) != len(params):
        raise invalid_value("params", params, f"unique, non-empty names, none of them a layer's ({names})")
    return layers, params
