"""`compare_runs`: several configs trained side by side in one background thread, one line each.

Used to compare deterministic vs stochastic vs float BinaryConnect on the same data; like the
lab, the worker thread updates widgets only through traits and `bclab.plots.update_comparison`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from bclab import plots
from bclab.config import RunConfig
from bclab.trace.schema import ACCURACY, FLIP_RATIO, LOSS, is_model_level
from bclab.train.runner import REFRESH_S, BackgroundRun
from bclab.validation import check_positive_int, invalid_value

__all__ = ["Comparison", "compare_runs", "load_dataset_for"]


def load_dataset_for(config: RunConfig) -> Any:
    """The config's data set, loaded by name (or from `config.data_path`), `num_classes` declared."""
    from bclab.train.plan import load_data

    return load_data(config)


class _Interleaved:
    """Steps several trainers in turn, one batch each, each up to `steps` batches."""

    def __init__(self, trainers: Mapping[str, Any], steps: int):
        self.trainers = dict(trainers)
        self.limits = {name: min(steps, t.steps_total) for name, t in self.trainers.items()}
        self._turn = 0

    @property
    def global_step(self) -> int:
        return sum(t.global_step for t in self.trainers.values())

    @property
    def steps_total(self) -> int:
        return sum(self.limits.values())

    @property
    def done(self) -> bool:
        return self.global_step >= self.steps_total

    def step(self) -> None:
        names = list(self.trainers)
        for _ in names:
            name = names[self._turn % len(names)]
            self._turn += 1
            if self.trainers[name].global_step < self.limits[name]:
                self.trainers[name].step()
                return


class Comparison(widgets.VBox):
    """The widget `compare_runs` returns: a progress bar, a status line and one comparison
    figure per scalar; `wait()`, `stop()`, `trainers`, `traces` and `figures` for code."""

    def __init__(self, trainers: Mapping[str, Any], steps: int, scalars: tuple[str, ...]):
        self.trainers = dict(trainers)
        self.traces = {name: t.trace for name, t in self.trainers.items()}
        layer = next(iter(self.traces.values())).layer_names[0]
        self._layers = {s: None if is_model_level(s) else layer for s in scalars}
        self.figures = {
            s: go.FigureWidget(
                plots.make_comparison_figure(self.traces, s, self._layers[s]).update_layout(autosize=True)
            )
            for s in scalars
        }
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="progress")
        self.status = widgets.HTML()
        super().__init__(
            [
                self.progress,
                self.status,
                widgets.GridBox(  # as many columns as fit at 360 px; each figure fills its cell (autosize)
                    [widgets.VBox([fig], layout={"min_width": "0"}) for fig in self.figures.values()],
                    layout={
                        "grid_template_columns": "repeat(auto-fit, minmax(min(360px, 100%), 1fr))",
                        "width": "100%",
                    },
                ),
            ]
        )
        self.add_class("bclab-compare")
        self.runner = BackgroundRun(
            lambda: _Interleaved(self.trainers, steps),
            on_state=self._on_state,
            on_progress=self._on_progress,
            min_interval=REFRESH_S,
        )
        self.runner.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until every run has done its steps (or `timeout` s pass); True if done."""
        return self.runner.wait(timeout)

    def stop(self) -> bool:
        return self.runner.stop()

    def _on_state(self, state: str) -> None:
        error = self.runner.error
        self.status.value = f"state: <b>{state}</b>" + (
            f'<br><span style="color:#c00">Error: {html.escape(error)}</span>' if error else ""
        )

    def _on_progress(self, driver: _Interleaved) -> None:
        self.progress.max = max(1, driver.steps_total)
        self.progress.value = driver.global_step
        for scalar, fig in self.figures.items():
            plots.update_comparison(fig, self.traces, scalar, self._layers[scalar])


def compare_runs(
    configs: Mapping[str, RunConfig],
    steps: int,
    *,
    dataset: Any = None,
    scalars: tuple[str, ...] = (LOSS, ACCURACY, FLIP_RATIO),
) -> Comparison:
    """Trains each config for `steps` batches, in turn, in one background thread, and shows
    each of `scalars` as one line per run (e.g. deterministic vs stochastic vs float).

    The Trainers are built here (a few seconds; data loaded once per data set) so the figures
    exist before training starts. A config with tracing "off" is traced at "scalars".
    `flip_ratio` and the other layer scalars are read for the first binary layer.
    """
    from bclab.train.trainer import Trainer

    if not configs:
        raise invalid_value("configs", configs, "a non-empty mapping of name -> RunConfig")
    steps = check_positive_int("steps", steps)
    loaded: dict[tuple, Any] = {}
    trainers = {}
    for name, config in configs.items():
        config = config.replace(trace="scalars") if config.trace == "off" else config
        key = (config.dataset, config.data_path)
        if key not in loaded:
            loaded[key] = dataset if dataset is not None else load_dataset_for(config)
        trainers[str(name)] = Trainer(config, dataset=loaded[key])
    return Comparison(trainers, steps, tuple(scalars))
