"""The README's Keras example runs as written."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_keras_example_runs_and_trains():
    text = README.read_text()
    section = text[text.index("## Use it from Keras") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    history = namespace["model"].history.history
    assert history["loss"][-1] < history["loss"][0]
    for W, Wb in namespace["weights"].values():
        assert np.abs(W).max() <= 1.0 and set(np.unique(Wb)) <= {-1.0, 1.0}
