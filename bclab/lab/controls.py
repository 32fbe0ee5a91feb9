"""The lab's settings form: one ipywidget per RunConfig field the lab lets you change.

`ConfigControls` reads a `RunConfig` from the widgets (fields without a widget keep the value
of a base config) and writes one into them. Reading raises the ValueError of a `bclab.validation`
check (the text boxes' or `RunConfig`'s), which names the field, the value and what was expected;
the lab shows it in its status line.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from bclab.config import ARCHITECTURES, MODES, OPTIMIZERS, SIZES, TRACE_LEVELS, RunConfig
from bclab.data import DATASETS, DEFAULT_DATASET, FILE_SOURCES
from bclab.validation import check_glorot_or_positive

__all__ = ["ConfigControls"]

_MODE_LABELS = {"deterministic": "deterministic", "stochastic": "stochastic", "float": "float (binary off)"}
_OPTIMIZER_LABELS = {"adam": "Adam", "adamax": "Adamax", "sgd": "SGD"}
_STYLE = {"description_width": "110px"}
_LAYOUT = {"width": "250px"}


def _dropdown(label: str, options: Any, value: str) -> widgets.Dropdown:
    return widgets.Dropdown(description=label, options=options, value=value, style=_STYLE, layout=_LAYOUT)


def _format(value: float | str | None) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, (int, float)) else str(value)


class ConfigControls:
    """The settings widgets, keyed by RunConfig field name (`widgets`), laid out in `box`."""

    def __init__(self, config: RunConfig):
        datasets = list(DATASETS)
        datasets.remove(DEFAULT_DATASET)
        datasets.insert(0, DEFAULT_DATASET)  # the embedded set first: it needs no download
        if config.dataset not in datasets:
            datasets.append(config.dataset)  # "npz"/"idx" from a config with a data_path
        self.base = config
        self.widgets: dict[str, widgets.Widget] = {
            "dataset": _dropdown("data set", datasets, config.dataset),
            "architecture": _dropdown("architecture", list(ARCHITECTURES), config.architecture),
            "size": _dropdown("size", list(SIZES), config.size),
            "mode": _dropdown("mode", [(_MODE_LABELS[m], m) for m in MODES], config.mode),
            "H": widgets.Text(description="H", style=_STYLE, layout=_LAYOUT, placeholder='number or "glorot"'),
            "W_LR_scale": widgets.Text(
                description="W_LR_scale", style=_STYLE, layout=_LAYOUT, placeholder='number, "glorot" or "none"'
            ),
            "optimizer": _dropdown("optimizer", [(_OPTIMIZER_LABELS[o], o) for o in OPTIMIZERS], config.optimizer),
            "lr_start": widgets.FloatText(description="LR start", style=_STYLE, layout=_LAYOUT),
            "lr_end": widgets.FloatText(description="LR end", style=_STYLE, layout=_LAYOUT),
            "batch_size": widgets.IntText(description="batch size", style=_STYLE, layout=_LAYOUT),
            "epochs": widgets.IntText(description="epochs", style=_STYLE, layout=_LAYOUT),
            "seed": widgets.IntText(description="seed", style=_STYLE, layout=_LAYOUT),
            "trace": _dropdown("tracing detail", list(TRACE_LEVELS), config.trace),
        }
        self.set(config)
        names = list(self.widgets)
        columns = [names[0:4], names[4:8], names[8:]]
        self.box = widgets.HBox([widgets.VBox([self.widgets[n] for n in column]) for column in columns])

    def read(self) -> RunConfig:
        """The config the controls describe (the base config for fields without a control).

        Raises:
            ValueError: A value is invalid (the message names the field and the value).
        """
        values = {name: w.value for name, w in self.widgets.items()}
        values["H"] = check_glorot_or_positive("H", values["H"])
        values["W_LR_scale"] = check_glorot_or_positive("W_LR_scale", values["W_LR_scale"], allow_none=True)
        data_path = self.base.data_path if values["dataset"] in FILE_SOURCES else None
        return self.base.replace(data_path=data_path, **values)

    def set(self, config: RunConfig) -> None:
        """Shows `config` in the controls and makes it the base for fields without a control."""
        if config.dataset not in self.widgets["dataset"].options:
            self.widgets["dataset"].options = [*self.widgets["dataset"].options, config.dataset]
        self.base = config
        for name, w in self.widgets.items():
            value = getattr(config, name)
            w.value = _format(value) if name in ("H", "W_LR_scale") else value

    def observe(self, handler: Any) -> None:
        for w in self.widgets.values():
            w.observe(handler, names="value")

    def disable(self, disabled: bool) -> None:
        for w in self.widgets.values():
            w.disabled = disabled
