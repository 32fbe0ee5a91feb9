"""The lab in a real browser: JupyterLab + headless Debian Chromium, driven by Playwright.

Opens notebooks/lab.ipynb, runs all cells, waits for the lab's widgets, clicks Start, waits
until the progress bar and the scalars plot moved, clicks Stop and checks that training stopped.
Screenshots go to test-output/browser/ (gitignored); the last, lab_1280x800.png, shows the lab
in a 1280 x 800 window.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, jupyter_lab, on_screen, playwright_or_skip, poll, settled
from conftest import stays

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-output" / "browser"
NOTEBOOK = "notebooks/lab.ipynb"

# Everything the test reads from the page, in one evaluate: the scalars plot's points, the
# progress bar and the status line.
READ_STATE = """() => {
    // The FigureWidget's own element carries the lab's class (and plotly's js-plotly-plot).
    const plot = document.querySelector('.js-plotly-plot.bclab-fig-scalars, .bclab-fig-scalars .js-plotly-plot');
    const points = plot && plot.data ? plot.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) : null;
    const bar = document.querySelector('.bclab-progress .progress-bar');
    const status = document.querySelector('.bclab-status');
    return {points: points, progress: bar ? parseFloat(bar.style.width || bar.style.height || '0') : null,
            status: status ? status.innerText : null};
}"""


try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the test skips in playwright_or_skip()
    PlaywrightTimeout = TimeoutError


def _run_all_cells(page) -> None:
    """Run -> Run All Cells from JupyterLab's main menu, until a cell shows it ran or is queued
    (a click that lands while JupyterLab is still settling can be lost, so it is retried)."""
    ran = page.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    for _ in range(4):
        page.keyboard.press("Escape")  # close any open menu
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()
        try:
            ran.first.wait_for(state="attached", timeout=15_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError("Run -> Run All Cells did not run the notebook")


# The dashboard's parts that must be on screen at 1280 x 800 right after Run All, by position.
ABOVE_THE_FOLD = """() => {
    const box = (el) => { const r = el.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, height: r.height}; };
    const one = (selector) => { const el = document.querySelector(selector); return el ? box(el) : null; };
    const figures = Array.from(document.querySelectorAll('.bclab-cell')).map(box);
    return {start: one('.bclab-start'), stop: one('.bclab-stop'), status: one('.bclab-status'),
            // the notebook's visible bottom: the top of JupyterLab's status bar (the window's, without one)
            figures: figures, height: (one('#jp-main-statusbar') || {top: window.innerHeight}).top};
}"""


def test_lab_starts_updates_and_stops_in_chromium():
    """At 1280 x 800 in JupyterLab: Run All, then the buttons, the status line and two views are
    on screen without scrolling; Start moves the progress and the plots; Stop ends the run and
    Start becomes New run; Reset then Start trains a new run that the views follow."""
    sync_playwright = playwright_or_skip()
    SHOTS.mkdir(parents=True, exist_ok=True)
    committed = (REPO / NOTEBOOK).read_bytes()
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with jupyter_lab(REPO, env={"BCLAB_QUICK": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}) as server:
        timings["server up"] = time.monotonic() - t0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = None
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(60_000)
                page.goto(server.url(f"lab/tree/{NOTEBOOK}"))
                page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=90_000)
                # The kernel must be up (started without a dialog, thanks to the settings) first.
                page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle")).first.wait_for(
                    state="visible", timeout=90_000
                )
                timings["notebook open, kernel idle"] = time.monotonic() - t0
                _run_all_cells(page)
                lab = page.locator(".bclab-lab")
                page.locator(".bclab-start").wait_for(state="visible", timeout=150_000)
                page.locator(".js-plotly-plot.bclab-fig-scalars, .bclab-fig-scalars .js-plotly-plot").first.wait_for(
                    state="attached", timeout=60_000
                )
                timings["lab rendered"] = time.monotonic() - t0
                page.wait_for_timeout(1500)  # the figures' first autosize

                fold = page.evaluate(ABOVE_THE_FOLD)
                page.screenshot(path=str(SHOTS / "lab_1280x800_after_run_all.png"))
                for part in ("start", "stop", "status"):
                    assert on_screen(fold[part], fold["height"]), (part, fold)
                visible = [f for f in fold["figures"] if on_screen(f, fold["height"])]
                assert len(visible) >= 2, f"fewer than two views on screen after Run All: {fold}"

                def read():
                    return page.evaluate(READ_STATE)

                before = read()
                assert before["points"] is not None, "the scalars view has no plotly graph"
                assert "state: idle" in before["status"], before

                # 50 epochs (1,750 steps), typed into the (collapsed) settings: the run must outlast
                # the Stop click, which a busy headless Chromium can take tens of seconds to deliver.
                page.locator(".bclab-settings .jupyter-widget-Collapse-header, .bclab-settings .p-Collapse-header,"
                             " .bclab-settings .lm-Collapse-header").first.click()  # fmt: skip
                epochs = lab.locator(".widget-text", has=page.locator("label", has_text=re.compile("^epochs$")))
                epochs.locator("input").fill("50")
                epochs.locator("input").press("Enter")
                page.screenshot(path=str(SHOTS / "lab_settings_open.png"))
                page.locator(".bclab-settings .jupyter-widget-Collapse-header, .bclab-settings .p-Collapse-header,"
                             " .bclab-settings .lm-Collapse-header").first.click()  # fmt: skip
                page.locator(".bclab-start").click()
                moved = poll(
                    read,
                    lambda s: (
                        s["progress"] and s["progress"] > (before["progress"] or 0) and s["points"] > before["points"]
                    ),
                    120,
                    "progress and plot moving",
                )
                timings["progress and plot moved"] = time.monotonic() - t0
                assert "state: running" in moved["status"] or "state: building" in moved["status"], moved
                page.screenshot(path=str(SHOTS / "lab_running.png"))

                # While training, the page re-renders six plotly figures once a second; with software
                # rendering on a small machine the click and its message can lag by 20-60 s.
                page.locator(".bclab-stop").click(no_wait_after=True, timeout=120_000)
                timings["stop clicked"] = time.monotonic() - t0
                stopped = poll(
                    read,
                    lambda s: "state: stopped" in s["status"] or "state: finished" in s["status"],
                    150,
                    "state 'stopped'",
                )
                timings["stopped"] = time.monotonic() - t0
                assert "state: stopped" in stopped["status"], f"the run finished before Stop arrived: {stopped}"
                # The run's last progress message (and redraw) follows the state change: wait
                # until two reads agree, then nothing may change for 3 s.
                quiet = settled(read, 60)
                assert stays(read, quiet, 3.0), (quiet, read())
                assert "state: stopped" in quiet["status"], quiet
                assert quiet["progress"] < 100, quiet
                assert page.locator(".bclab-start").inner_text().strip() == "New run", "Stop ends the run"
                assert "New run starts over" in page.locator(".bclab-hint").inner_text()
                page.screenshot(path=str(SHOTS / "lab_stopped.png"))

                # Move the slider away from the latest step, then Reset and Start: the views follow the new run.
                page.locator(".bclab-navigation button").first.click()  # one step back: not following
                poll(lambda: page.locator(".bclab-position").inner_text(), lambda t: "not following" in t, 60,
                      "'not following' shown")  # fmt: skip
                page.screenshot(path=str(SHOTS / "lab_not_following.png"))
                page.locator(".bclab-reset").click()
                poll(read, lambda s: "state: idle" in s["status"], 60, "state 'idle' after Reset")
                page.locator(".bclab-start").click()
                poll(read, lambda s: "state: running" in s["status"] and (s["points"] or 0) > 20, 120,
                      "the new run drawn")  # fmt: skip
                position = page.locator(".bclab-position").inner_text()
                assert "following the run" in position and "not following" not in position, position
                page.screenshot(path=str(SHOTS / "lab_new_run_followed.png"))
                page.locator(".bclab-stop").click(no_wait_after=True, timeout=120_000)
                poll(read, lambda s: "state: stopped" in s["status"], 150, "the new run stopped")
                settled(read, 60)
                page.screenshot(path=str(SHOTS / "lab_1280x800.png"))
                for name in ("scalars", "timeline", "grads"):  # the views below the fold, as a user scrolls
                    page.locator(f".bclab-fig-{name}").first.scroll_into_view_if_needed()
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(SHOTS / f"lab_view_{name}.png"))
            except BaseException:
                if page is not None:
                    page.screenshot(path=str(SHOTS / "failure.png"))
                print("server log tail:\n" + server.log()[-2000:])
                raise
            finally:
                browser.close()
    assert (REPO / NOTEBOOK).read_bytes() == committed, f"{NOTEBOOK} was modified (autosave must stay off)"
    print("browser test timings (s since start):", {k: round(v, 1) for k, v in timings.items()})
