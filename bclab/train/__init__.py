"""Training: the paper's models, the instrumented step, the Trainer and the background runner.

The one tier that uses TensorFlow directly. `models` (architectures, loss, optimizer), `step`
(`InstrumentedStep`) with `histograms` (bins, on-device counts, the subset rule), `instrument`
(the probes on `update_step` and binarization) and `timeline` (phase timestamps -> events),
`trainer` (`Trainer`: epochs and evaluation), `runner` (`BackgroundRun`: the worker thread).
"""

from bclab.train.quiet import hide_tensorflow_startup_lines

hide_tensorflow_startup_lines()  # before any module here imports Keras: see bclab.train.quiet
