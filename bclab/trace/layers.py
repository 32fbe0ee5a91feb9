"""What the trace knows of the model: its binary layers (`LayerInfo`) and its other parameters' names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bclab.validation import check_flag, check_int, check_mapping, check_positive_float, invalid_value

_MAX_RANK = 8  # a kernel has 2 (dense) or 4 (conv) dimensions


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
    def from_config(cls, config: Mapping[str, Any], name: str = "layer") -> LayerInfo:
        """Reads `to_config`'s dict, checking every value's type (`name` names it in errors);
        bclab 0.1 files call `W_LR_scale` `lr_scale`."""
        scale_key = "W_LR_scale" if "W_LR_scale" in check_mapping(name, config) else "lr_scale"
        keys = ("name", "shape", "H", scale_key, "binary", "stochastic")
        check_mapping(name, config, keys)
        if any(key not in config for key in keys):
            raise invalid_value(name, config, f"a mapping with the keys {list(keys)}")
        shape = config["shape"]
        if not isinstance(shape, list) or not 1 <= len(shape) <= _MAX_RANK:
            raise invalid_value(f"{name}['shape']", shape, f"a list of 1 to {_MAX_RANK} sizes")
        return cls(
            name=check_name(f"{name}['name']", config["name"]),
            shape=tuple(check_int(f"{name}['shape'][{i}]", d, 0) for i, d in enumerate(shape)),
            H=check_positive_float(f"{name}['H']", config["H"]),
            W_LR_scale=check_positive_float(f"{name}[{scale_key!r}]", config[scale_key]),
            binary=check_flag(f"{name}['binary']", config["binary"]),
            stochastic=check_flag(f"{name}['stochastic']", config["stochastic"]),
        )


def check_name(name: str, value: Any) -> str:
    """A non-empty string: the name of a layer, a parameter or a scalar."""
    if not isinstance(value, str) or not value:
        raise invalid_value(name, value, "a non-empty string")
    return value


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
