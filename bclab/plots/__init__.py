"""Figure builders: a `bclab.Trace` in, a plotly figure out (no Keras, no widgets)."""

from bclab.plots.figures import *  # noqa: F403
from bclab.plots.figures import __all__  # noqa: F401
