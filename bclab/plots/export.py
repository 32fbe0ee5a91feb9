"""`figures_to_html`: several figures in one self-contained HTML page that works offline."""

from __future__ import annotations

import os
from collections.abc import Mapping
from html import escape

import plotly.graph_objects as go
import plotly.io as pio

from bclab.atomic import atomic_write
from bclab.validation import invalid_value

__all__ = ["figures_to_html"]


def figures_to_html(figs: Mapping[str, go.Figure], path: str | os.PathLike, title: str = "bclab") -> None:
    """Writes all figures to one self-contained HTML file that works offline.

    plotly.js is embedded once (with the first figure); each figure's div has id
    `bclab-<key>`. The page is written whole (see `bclab.atomic.atomic_write`): readers see the
    old file or the new one, never half of one.
    """
    if not figs:
        raise invalid_value("figs", figs, "a non-empty mapping of name -> Figure")
    parts = [
        f"<h2>{escape(str(key))}</h2>\n"
        + pio.to_html(fig, full_html=False, include_plotlyjs=(i == 0), div_id=f"bclab-{key}")
        for i, (key, fig) in enumerate(figs.items())
    ]
    html = (
        f'<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>{escape(title)}</title></head>\n'
        "<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n"
    )
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(html)
