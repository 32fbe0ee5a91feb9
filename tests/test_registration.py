"""Saved models load after `import bclab`, whichever of bclab and Keras is imported first.

Each case runs in a fresh interpreter (registration happens at import time). The models: one saved
here by this bclab and one saved by bclab 0.1 (`tests/data/README.md`), each with a BinaryConv2D, a
BinaryDense, a BinaryKernelClip on a plain Dense and a compiled BinaryConnectOptimizer; and the CNN
the Trainer (and so the CLI) saves, uncompiled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import pytest

from bclab.config import RunConfig
from bclab.core.constraints import BinaryKernelClip
from bclab.core.layers import BinaryConv2D, BinaryDense
from bclab.core.optimizers import BinaryConnectOptimizer
from bclab.train.models import build_model

DATA = Path(__file__).parent / "data"

# After `imports`, loads every path given, then prints what came back: layer classes, clip,
# optimizer and the test-time predictions on the inputs saved next to each model; and the state of
# the import hook, before Keras's import and after it.
LOAD = """
import json, sys
import numpy as np
hooks = lambda: sum(bool(getattr(finder, "bclab_hook", False)) for finder in sys.meta_path)
{imports}
out = {{"before": {{"keras": "keras" in sys.modules, "tensorflow": "tensorflow" in sys.modules, "hooks": hooks()}}}}
import keras
out["after"] = {{"hooks": hooks(), "loaders": [type(keras.__loader__).__name__, type(keras.__spec__.loader).__name__]}}
for path, inputs in zip(sys.argv[1::2], sys.argv[2::2]):
    model = keras.models.load_model(path)
    clip = getattr(model.layers[-1], "kernel_constraint", None)
    out[path] = {{
        "layers": sorted({{type(layer).__name__ for layer in model.layers}}),
        "clip": [type(clip).__name__, clip.W_LR_scale] if clip is not None else None,
        "optimizer": [type(model.optimizer).__name__, type(model.optimizer.inner_optimizer).__name__,
                      int(model.optimizer.iterations.numpy())] if getattr(model, "optimizer", None) else None,
        "predictions": model.predict(np.load(inputs)["x"], verbose=0).tolist(),
    }}
print("RESULT " + json.dumps(out))
"""


def run_python(code: str, *args: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


class Saved(NamedTuple):
    path: Path
    inputs: Path  # an .npz whose `x` are inputs
    predictions: np.ndarray  # the saving process's test-time predictions on them
    loaded: dict  # what the loading process must report (LOAD's fields but the predictions)


TEST_MODEL = {
    "layers": ["BinaryConv2D", "BinaryDense", "Dense", "Flatten"],
    "clip": ["BinaryKernelClip", 2.0],  # bclab 0.1's key was `lr_scale`
    "optimizer": ["BinaryConnectOptimizer", "Adam", 1],  # its state came back: one step taken
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> list[Saved]:
    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            BinaryConv2D(2, 3, stochastic=False, H="glorot", seed=1, name="conv"),
            keras.layers.Flatten(),
            BinaryDense(3, stochastic=True, W_LR_scale=0.5, seed=2, name="dense"),
            keras.layers.Dense(2, kernel_constraint=BinaryKernelClip(0.5, 2.0, "clipped"), name="clipped"),
        ]
    )
    model.compile(optimizer=BinaryConnectOptimizer(keras.optimizers.Adam(1e-3)), loss="mse")
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    model.fit(x, np.zeros((4, 2), "float32"), epochs=1, verbose=0)
    model.save(folder / "now.keras")
    np.savez(folder / "now.npz", x=x)
    old = folder / "old.keras"  # load_model wants the .keras suffix
    shutil.copyfile(DATA / "bclab-0.1-model.zip", old)
    old_expected = np.load(DATA / "bclab-0.1-model-predictions.npz")["y"]
    cnn = build_model(RunConfig(architecture="cnn", size="tiny", mode="stochastic"), (8, 8, 1), 10)
    cnn.save(folder / "cnn.keras")
    return [
        Saved(folder / "now.keras", folder / "now.npz", model.predict(x, verbose=0), TEST_MODEL),
        Saved(old, DATA / "bclab-0.1-model-predictions.npz", old_expected, TEST_MODEL),
        Saved(
            folder / "cnn.keras",
            folder / "now.npz",
            cnn.predict(x, verbose=0),
            {"layers": CNN_LAYERS, "clip": None, "optimizer": None},
        ),
    ]


CNN_LAYERS = ["BatchNormalization", "BinaryConv2D", "BinaryDense", "Flatten", "MaxPooling2D", "ReLU"]


def check_loaded(result: dict, saved: list[Saved]) -> None:
    # The hook leaves once it fired, and Keras's module keeps its own loader.
    assert result["after"] == {"hooks": 0, "loaders": ["SourceFileLoader", "SourceFileLoader"]}
    for model in saved:
        got = dict(result[str(model.path)])
        # Test time is deterministic (a stochastic layer uses its real W): the same numbers, up to
        # float32 rounding (0.1's were computed on a CPU; a GPU's convolution sums in another order).
        # A weight not restored would change them by far more.
        predictions = np.array(got.pop("predictions"), np.float32)
        np.testing.assert_allclose(predictions, model.predictions, rtol=1e-5, atol=1e-6)
        assert got == model.loaded


def arguments(saved: list[Saved]) -> list[str]:
    return [str(item) for model in saved for item in (model.path, model.inputs)]


def test_loads_after_import_bclab_then_keras(saved):
    result = run_python(LOAD.format(imports="import bclab"), *arguments(saved))
    assert result["before"] == {"keras": False, "tensorflow": False, "hooks": 1}  # no framework yet
    check_loaded(result, saved)


def test_loads_after_import_keras_then_bclab(saved):
    result = run_python(LOAD.format(imports="import keras\nimport bclab"), *arguments(saved))
    check_loaded(result, saved)


@pytest.mark.parametrize(
    "imports",
    [
        "import bclab.core.constraints",  # Keras's import starts inside a core module
        "import bclab.train.models",
        "import bclab, importlib\nimportlib.reload(bclab)\nassert hooks() == 1\n"  # one hook, not two
        "import keras\nimportlib.reload(keras)\nimportlib.reload(bclab)",
    ],
    ids=["core-first", "train-first", "reloads"],
)
def test_loads_whichever_bclab_module_imports_keras_first(saved, imports):
    check_loaded(run_python(LOAD.format(imports=imports), *arguments(saved)), saved)
