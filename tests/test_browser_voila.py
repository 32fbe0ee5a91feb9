"""The lab as a Voila app in a real browser: `voila notebooks/lab.ipynb` + headless Debian Chromium.

Voila runs the notebook and shows only its outputs, as Binder's "lab as a Voila app" link does. At
1280 x 800 the page must show the lab with no notebook instructions and no raw reprs; the buttons,
the status line and two views on screen without scrolling; every view a drawn plotly figure that
fills its cell. Start must train (the status line's step grows and views redraw with the run) and
Stop must end the run. Screenshots go to test-output/browser/voila-*.png.

Known bug, outside bclab (Voila 0.5.13's widget manager with plotly 7's anywidget FigureWidget): in
most page loads the last one to four FigureWidgets to load never receive a kernel update, so those
views stay at "(no data yet)" while the others follow the run. A notebook of six bare FigureWidgets
shows it too (about half of the loads), and JupyterLab does not. The test then ends as xfail naming
the stuck views; once they all follow the run it passes.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, on_screen, playwright_or_skip, poll, settled, voila_app

# The JupyterLab test's waits and checks serve this page too.

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-output" / "browser"
NOTEBOOK = REPO / "notebooks" / "lab.ipynb"

# What a notebook says to a notebook user, its code, and reprs: none of it may show in the app.
NOTEBOOK_ONLY = re.compile(
    r"Run All|Shift\s*\+\s*Enter|run this cell|import bclab|from bclab import|RunConfig\(|<bclab\.|object at 0x",
    re.IGNORECASE,
)

# Positions of the parts that must be on screen, and each plotly figure against its view's cell.
LAYOUT = """() => {
    const box = (el) => { const r = el.getBoundingClientRect();
                          return {top: r.top, bottom: r.bottom, height: r.height, width: r.width}; };
    const one = (selector) => { const el = document.querySelector(selector); return el ? box(el) : null; };
    const cells = Array.from(document.querySelectorAll('.bclab-cell'));
    return {start: one('.bclab-start'), stop: one('.bclab-stop'), status: one('.bclab-status'),
            figures: cells.map(box), height: window.innerHeight,
            plots: cells.map((cell) => {
                const plot = cell.querySelector('.js-plotly-plot');
                const svg = plot && plot.querySelector('.main-svg');
                return {cell: box(cell).width, svg: svg ? box(svg).width : 0,
                        traces: plot && plot.data ? plot.data.length : 0};
            })};
}"""


# The status line and each view's plotly title: a view that follows the run changes its title
# ("weights: dense_1, step 69", "when does the update run? step 69 (compiled)").
READ = """() => {
    const status = document.querySelector('.bclab-status');
    const titles = {};
    for (const plot of document.querySelectorAll('.bclab-cell .js-plotly-plot')) {
        const name = [...plot.classList].find((c) => c.startsWith('bclab-fig-'));
        const title = plot.layout && plot.layout.title;
        titles[name ? name.slice(10) : '?'] = title ? (title.text || String(title)) : null;
    }
    return {status: status ? status.innerText : '', titles: titles};
}"""


def _step(status: str) -> int:
    found = re.search(r"last step (\d+)", status or "")
    return int(found.group(1)) if found else -1


def test_voila_app_renders_and_trains_in_chromium():
    """At 1280 x 800: the app shows the lab and nothing of the notebook; buttons, status and two
    views are above the fold; the figures are drawn at their cells' width; Start trains (the
    step grows, views redraw at later steps), Stop stops; then every view shows the run."""
    sync_playwright = playwright_or_skip()
    pytest.importorskip("voila", reason="voila not installed: pip install -e '.[test]'")
    SHOTS.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with voila_app(NOTEBOOK, env={"BCLAB_QUICK": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}) as server:
        timings["voila up"] = time.monotonic() - t0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = None
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(60_000)
                page.goto(server.url("/"), timeout=120_000)  # Voila runs the notebook, then sends the page
                page.locator(".bclab-start").wait_for(state="visible", timeout=120_000)
                page.locator(".bclab-cell .js-plotly-plot .main-svg").nth(5).wait_for(state="attached")
                page.wait_for_timeout(1500)  # the figures' first autosize
                timings["app rendered"] = time.monotonic() - t0
                page.screenshot(path=str(SHOTS / "voila-rendered.png"))

                text = page.locator("body").inner_text()
                assert "BinaryConnect lab" in text, text[:500]
                leaked = NOTEBOOK_ONLY.findall(text)
                assert not leaked, f"notebook instructions or reprs in the app: {leaked}"

                layout = page.evaluate(LAYOUT)
                for part in ("start", "stop", "status"):
                    assert on_screen(layout[part], layout["height"]), (part, layout)
                visible = [f for f in layout["figures"] if on_screen(f, layout["height"])]
                assert len(visible) >= 2, f"fewer than two views on screen: {layout}"
                assert len(layout["plots"]) == 6, layout["plots"]
                for plot in layout["plots"]:  # drawn, with traces, as wide as its cell (plotly autosize)
                    assert plot["traces"] > 0 and plot["svg"] >= 0.9 * plot["cell"] > 100, layout["plots"]

                def read():
                    return page.evaluate(READ)

                before = read()
                assert "state: idle" in before["status"], before
                assert len(before["titles"]) == 6, before

                def redrawn(state):  # the views whose title moved since before Start
                    return sorted(k for k, t in state["titles"].items() if t != before["titles"].get(k))

                # 50 epochs, typed into the collapsed settings, so that the run outlasts the Stop click.
                header = page.locator(".bclab-settings .jupyter-widget-Collapse-header, .bclab-settings .p-Collapse-header,"
                                      " .bclab-settings .lm-Collapse-header").first  # fmt: skip
                header.click()
                epochs = page.locator(
                    ".bclab-lab .widget-text", has=page.locator("label", has_text=re.compile("^epochs$"))
                ).locator("input")
                epochs.fill("50")
                epochs.press("Enter")
                header.click()
                poll(lambda: page.locator(".bclab-settings").inner_text(), lambda t: "50 epochs" in t, 30,
                      "the settings summary saying 50 epochs")  # fmt: skip
                page.locator(".bclab-start").click()
                first = poll(read, lambda s: _step(s["status"]) >= 0 and redrawn(s), 90, "the first step drawn")
                timings["first step drawn"] = time.monotonic() - t0
                moved = poll(
                    read,
                    lambda s: (
                        _step(s["status"]) > _step(first["status"]) and redrawn(s) and s["titles"] != first["titles"]
                    ),
                    60,
                    "the step growing and a view redrawn at a later step",
                )
                timings["step and views moved"] = time.monotonic() - t0
                assert "state: running" in moved["status"], moved
                page.screenshot(path=str(SHOTS / "voila-running.png"))

                page.locator(".bclab-stop").click(no_wait_after=True, timeout=120_000)
                poll(read, lambda s: "state: stopped" in s["status"], 120, "state 'stopped'")
                stopped = settled(read, 60)
                assert "state: stopped" in stopped["status"], stopped
                assert page.locator(".bclab-start").inner_text().strip() == "New run", "Stop ends the run"
                timings["stopped"] = time.monotonic() - t0
                page.screenshot(path=str(SHOTS / "voila-stopped.png"))
                for name in ("timeline", "grads"):  # the views below the fold, as a user scrolls
                    page.locator(f".bclab-fig-{name}").first.scroll_into_view_if_needed()
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(SHOTS / f"voila-view-{name}.png"))
                stuck = sorted(set(stopped["titles"]) - set(redrawn(stopped)))
            except BaseException:
                if page is not None:
                    page.screenshot(path=str(SHOTS / "voila-failure.png"))
                print("voila log tail:\n" + server.log()[-2000:])
                raise
            finally:
                browser.close()
    print("voila test timings (s since start):", {k: round(v, 1) for k, v in timings.items()})
    if stuck:  # see the module docstring: Voila + plotly's FigureWidget, not bclab
        pytest.xfail(
            f"Voila: views {stuck} never received an update (known Voila/FigureWidget bug); titles: {stopped['titles']}"
        )
