"""`bclab.LiveTrace` in a real browser: its views move while `model.fit` blocks the cell.

A generated notebook (a small binary MLP, `fit` for about `FIT_SECONDS` with `LiveTrace()`) runs in
JupyterLab + headless Debian Chromium (`browser_support`). While the fit cell is still running
(its prompt shows `[*]`), the LiveTrace status line, the step slider and the scalars plot must
move, and do so in real time before the kernel's `fit` ends (the page's `Date.now()` against the
kernel's `time.time()`, one clock); after it, the status says the fit finished at the trace's last
step. Screenshots go to test-output/browser/livetrace-*.png (1280 x 800).
"""

from __future__ import annotations

import re
import time
from functools import partial
from pathlib import Path

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, jupyter_lab, playwright_or_skip, poll

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-output" / "browser"
# On 2 CPU cores that training keeps busy, the page showed LiveTrace's first state about 35 s into
# `fit` and then trailed the kernel by 20-30 s; 60 s leaves room to see it move before `fit` ends.
FIT_SECONDS = 60

SETUP = """
import time

import keras

import bclab
from bclab.data import one_hot_pm1, to_float

digits = bclab.load_dataset("mnist-5k")
x = to_float(digits.x_train[:1000]).reshape(1000, -1)
y = one_hot_pm1(digits.y_train[:1000], 10)
model = keras.Sequential([
    keras.Input((784,)),
    bclab.BinaryDense(64, stochastic=False),
    keras.layers.BatchNormalization(),
    keras.layers.ReLU(),
    bclab.BinaryDense(10, stochastic=False),
    keras.layers.BatchNormalization(),
])
model.compile(optimizer=bclab.BinaryConnectOptimizer(keras.optimizers.Adamax(1e-3)), loss="squared_hinge",
              metrics=["categorical_accuracy"])


class StopAfter(keras.callbacks.Callback):
    # fit runs for about `seconds`, however fast the machine is; `began`/`ended`: the fit's
    # first batch and its end, wall clock (the browser's Date.now() reads the same clock).
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0 and not hasattr(self, "began"):
            self.began = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if time.time() > self.began + self.seconds:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.ended = time.time()
"""
FIT = f"""
live, clock = bclab.LiveTrace(), StopAfter({FIT_SECONDS})
model.fit(x, y, batch_size=50, epochs=10_000, callbacks=[clock, live], verbose=0)
"""
AFTER = "print('last step', live.trace.last_step, 'fit from', clock.began, 'to', clock.ended)"

# What the test reads from the page, in one evaluate: the LiveTrace status line, the step slider's
# readout, the points of the scalars plot, and whether a cell is still running.
READ_STATE = """() => {
    const live = document.querySelector('.bclab-live');
    const prompts = [...document.querySelectorAll('.jp-InputPrompt')].map(p => p.innerText);
    const running = prompts.some(text => text.includes('[*]'));
    const now = Date.now() / 1000;
    if (!live) return {status: null, slider: null, points: null, running: running, prompts: prompts, now: now};
    const status = live.querySelector('.widget-html-content');
    const slider = live.querySelector('.widget-slider .widget-readout');
    const plot = live.querySelector('.js-plotly-plot.bclab-fig-scalars, .bclab-fig-scalars .js-plotly-plot');
    const points = plot && plot.data ? plot.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : null;
    return {status: status ? status.innerText : null, slider: slider ? slider.innerText : null,
            points: points, running: running, prompts: prompts, now: now};
}"""


_poll = partial(poll, interval=0.25)  # read the status often: the views must be seen moving


def _notebook(folder: Path) -> str:
    nbformat = pytest.importorskip("nbformat")
    cells = [nbformat.v4.new_code_cell(source.strip()) for source in (SETUP, FIT, AFTER)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nbformat.write(nb, folder / "livetrace.ipynb")
    return "livetrace.ipynb"


def _step(state) -> int | None:
    """The step number in the LiveTrace status line ("... fit running, step 12, epoch 0; ...")."""
    match = re.search(r"step (\d+)", (state or {}).get("status") or "")
    return int(match.group(1)) if match else None


def test_livetrace_views_move_while_fit_blocks_the_cell(tmp_path):
    sync_playwright = playwright_or_skip()
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = _notebook(tmp_path)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with jupyter_lab(tmp_path, env={"TF_CPP_MIN_LOG_LEVEL": "3"}) as server:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = None
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(60_000)
                page.goto(server.url(f"lab/tree/{name}"))
                page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=90_000)
                page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle")).first.wait_for(
                    state="visible", timeout=90_000
                )
                timings["kernel idle"] = time.monotonic() - t0
                page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
                page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()

                def read():
                    return page.evaluate(READ_STATE)

                def show_live():  # the status line, the controls and the first views in the window
                    page.locator(".bclab-live").first.evaluate("element => element.scrollIntoView({block: 'start'})")

                _poll(read, lambda s: re.search(r"\[\d+\]", s["prompts"][0]) is not None, 150, "the setup cell done")
                timings["fit cell started"] = time.monotonic() - t0
                first = _poll(
                    read,
                    lambda s: s["running"] and "fit running" in (s["status"] or "") and _step(s) is not None,
                    150,
                    "LiveTrace showing a running fit",
                )
                timings["views shown"] = time.monotonic() - t0
                show_live()
                page.screenshot(path=str(SHOTS / "livetrace-running-1.png"))
                # Several refreshes later, the cell still running: the status, slider and plot moved.
                second = _poll(read, lambda s: (_step(s) or 0) >= _step(first) + 20 or not s["running"], 60, "steps")
                timings["views moved"] = time.monotonic() - t0
                assert second["running"], f"the fit cell finished before the views moved: {first} -> {second}"
                assert "fit running" in second["status"], second
                assert int(second["slider"]) > int(first["slider"]), (first, second)
                assert second["points"] > first["points"], (first, second)
                page.screenshot(path=str(SHOTS / "livetrace-running-2.png"))

                last = _poll(read, lambda s: "fit finished" in (s["status"] or ""), FIT_SECONDS + 90, "fit finished")
                output = page.locator(".jp-OutputArea-output", has_text="last step").first
                output.wait_for(state="visible", timeout=60_000)
                timings["fit finished"] = time.monotonic() - t0
                printed = re.search(r"last step (\d+) fit from ([\d.]+) to ([\d.]+)", output.inner_text())
                last_step, began, ended = int(printed.group(1)), float(printed.group(2)), float(printed.group(3))
                assert _step(last) == last_step and int(last["slider"]) == last_step, (last, last_step)
                # In real time, not only in the browser's (delayed) view: both moving states were on
                # the page before the kernel's fit ended.
                lag = {"first seen after the fit began (s)": first["now"] - began, "fit seconds": ended - began}
                print("LiveTrace in the browser:", {k: round(v, 1) for k, v in lag.items()})
                assert second["now"] < ended, f"the views moved on the page only after fit ended: {lag}, {second}"
                show_live()
                page.screenshot(path=str(SHOTS / "livetrace-finished.png"))
            except BaseException:
                if page is not None:
                    page.screenshot(path=str(SHOTS / "livetrace-failure.png"))
                print("server log tail:\n" + server.log()[-2000:])
                raise
            finally:
                browser.close()
    print("livetrace browser test timings (s since start):", {k: round(v, 1) for k, v in timings.items()})
    print("states:", first, second, last, sep="\n  ")
