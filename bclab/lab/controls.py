"""The lab's settings form: one ipywidget per setting the lab lets you change, in a collapsible box.

`ConfigControls` reads a `RunConfig` from the widgets (fields without a widget keep the value
of a base config) and writes one into them. `ModelControls` is the form for `Lab(model=...)`:
only epochs, batch size, seed and tracing detail apply to a user's compiled model; its
optimizer and loss are shown, not edited. Reading raises the ValueError of a `bclab.validation`
check, which names the field, the value and what was expected; the lab shows it in its status
line. Both lay their widgets out in `box`, an Accordion (collapsed: its title summarises the
settings in one line), so the run buttons and the views stay on screen.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from bclab.config import ARCHITECTURES, MODES, OPTIMIZERS, SIZES, TRACE_LEVELS, RunConfig
from bclab.data import DATASETS, DEFAULT_DATASET, FILE_SOURCES
from bclab.validation import check_glorot_or_positive, check_int, check_positive_int, invalid_value

__all__ = ["ConfigControls", "ModelControls", "summary"]

_MODE_LABELS = {"deterministic": "deterministic", "stochastic": "stochastic", "float": "float (binary off)"}
_OPTIMIZER_LABELS = {"adam": "Adam", "adamax": "Adamax", "sgd": "SGD"}
_STYLE = {"description_width": "110px"}
_LAYOUT = {"width": "250px"}


def _dropdown(label: str, options: Any, value: str) -> widgets.Dropdown:
    return widgets.Dropdown(description=label, options=options, value=value, style=_STYLE, layout=_LAYOUT)


def _format(value: float | str | None) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, (int, float)) else str(value)


class _Form:
    """What both settings forms share: `widgets` (name -> widget) laid out in `box`."""

    widgets: dict[str, widgets.Widget]

    def observe(self, handler: Any) -> None:
        for w in self.widgets.values():
            w.observe(handler, names="value")

    def disable(self, disabled: bool) -> None:
        for w in self.widgets.values():
            w.disabled = disabled


class ConfigControls(_Form):
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
            # Data-parallel replicas (`bclab.train.devices`): GPUs, or the CPU split before TensorFlow starts.
            "devices": widgets.IntText(description="devices", style=_STYLE, layout=_LAYOUT),
        }
        names = list(self.widgets)
        columns = [names[0:5], names[5:10], names[10:]]
        form = widgets.HBox([widgets.VBox([self.widgets[n] for n in column]) for column in columns])
        self.box = _collapsible(form)
        self.set(config)
        self.observe(lambda _change: self._retitle())

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
        self._retitle()

    def _retitle(self) -> None:
        try:
            text = summary(self.read())
        except ValueError:
            text = "a value is invalid (see the status line)"
        self.box.set_title(0, f"Settings: {text}")


def summary(config: RunConfig) -> str:
    """The settings in one line, e.g. "mlp small, mnist-5k, deterministic, H 1, Adam 0.003→0.0003, 10 × 35 batches of 100"."""
    mode = {"float": "float (binary off)"}.get(config.mode, config.mode)
    return (
        f"{config.architecture} {config.size}, {config.dataset}, {mode}, H {_format(config.H)}, "
        f"{_OPTIMIZER_LABELS.get(config.optimizer, config.optimizer)} {config.lr_start:g}→{config.lr_end:g}, "
        f"{config.epochs} epochs, batch {config.batch_size}, trace {config.trace}"
        + (f", {config.devices} devices" if config.devices > 1 else "")
    )


def _collapsible(form: widgets.Widget) -> widgets.Accordion:
    """`form` in a one-section Accordion, collapsed (`selected_index` None), DOM class `bclab-settings`."""
    box = widgets.Accordion(children=[form], selected_index=None, layout={"width": "100%"})
    box.add_class("bclab-settings")
    return box


class ModelControls(_Form):
    """The settings of `Lab(model=...)`: epochs, batch size, seed and tracing detail; the model's
    own optimizer and loss shown beside them. `read()` returns those four as a dict."""

    def __init__(self, model: Any, *, epochs: int, batch_size: int, seed: int, trace: str):
        self.widgets: dict[str, widgets.Widget] = {
            "epochs": widgets.IntText(value=epochs, description="epochs", style=_STYLE, layout=_LAYOUT),
            "batch_size": widgets.IntText(value=batch_size, description="batch size", style=_STYLE, layout=_LAYOUT),
            "seed": widgets.IntText(value=seed, description="seed", style=_STYLE, layout=_LAYOUT),
            "trace": _dropdown("tracing detail", ["scalars", "full"], trace),
        }
        self.model_text = describe_model(model)
        about = widgets.HTML(self.model_text).add_class("bclab-model")
        names = list(self.widgets)
        form = widgets.HBox(
            [
                widgets.VBox([self.widgets[n] for n in names[:2]]),
                widgets.VBox([self.widgets[n] for n in names[2:]]),
                about,
            ]
        )
        self.box = _collapsible(form)
        self._retitle()
        self.observe(lambda _change: self._retitle())

    def read(self) -> dict[str, Any]:
        """{"epochs", "batch_size", "seed", "trace"}; ValueError naming a bad one."""
        values = {name: w.value for name, w in self.widgets.items()}
        check_positive_int("epochs", values["epochs"])
        check_positive_int("batch_size", values["batch_size"])
        check_int("seed", values["seed"], 0)
        if values["trace"] not in ("scalars", "full"):
            raise invalid_value("trace", values["trace"], 'one of "scalars", "full"')
        return values

    def _retitle(self) -> None:
        try:
            v = self.read()
            text = f"{v['epochs']} epochs of batch {v['batch_size']}, trace {v['trace']}"
        except ValueError:
            text = "a value is invalid (see the status line)"
        self.box.set_title(0, f"Settings: your model; {text}")


def describe_model(model: Any) -> str:
    """The model, its optimizer and its loss in one HTML block (the lab does not change them)."""
    optimizer = getattr(model, "optimizer", None)
    inner = getattr(optimizer, "inner", None) or getattr(optimizer, "optimizer", None)
    name = type(optimizer).__name__ + (f"({type(inner).__name__})" if inner is not None else "")
    try:
        lr = float(optimizer.learning_rate)
        name += f", learning rate {lr:g}"
    except (TypeError, ValueError, AttributeError):
        pass
    loss = getattr(model, "loss", None)
    loss_name = getattr(loss, "__name__", None) or getattr(loss, "name", None) or str(loss)
    size = f", {model.count_params():,} parameters" if getattr(model, "built", False) else ""
    return (
        f"<b>your model</b>: {html.escape(model.name)}, {len(model.layers)} layers{size}<br>"
        f"optimizer: {html.escape(name)}<br>loss: {html.escape(str(loss_name))}"
    )
