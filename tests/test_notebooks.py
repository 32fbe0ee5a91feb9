"""Every notebook in notebooks/ runs top to bottom in quick mode, and is committed clean.

Each notebook is executed with nbclient in a fresh python3 kernel, with BCLAB_QUICK=1 in the
kernel's environment, from the notebooks/ folder (as Jupyter would run it). A cell error fails
the test with the cell's source and traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat missing: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="nbclient missing: pip install -e '.[test]'")

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EXPECTED = {"lab.ipynb", "when_does_the_update_run.ipynb", "deterministic_vs_stochastic.ipynb", "paper_recipe.ipynb"}
EXPECTED |= {"port_from_theano.ipynb"}
QUICK_SWITCH = 'QUICK = os.environ.get("BCLAB_QUICK", "1") == "1"'
CELL_TIMEOUT_S = 300


def test_the_expected_notebooks_exist():
    assert EXPECTED <= {path.name for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_is_committed_clean_with_a_quick_switch(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert QUICK_SWITCH in code_cells[0].source, "the first code cell must hold the quick-mode switch"
    for cell in code_cells:
        assert cell.outputs == [] and cell.execution_count is None, f"outputs not cleared in {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_runs_without_errors(path: Path):
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, BCLAB_QUICK="1", TF_CPP_MIN_LOG_LEVEL="3")
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
        allow_errors=False,
    )
    try:
        # Keyword arguments of execute() go to the kernel manager's start_kernel.
        client.execute(env=env, cwd=str(NOTEBOOKS_DIR))
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name}: a cell raised\n{error}")


LAB_MEMORY_LIMIT_MB = 1536  # Binder gives about 2 GB; the lab must leave room for the browser side


def test_lab_notebook_trains_the_default_run_within_binder_memory():
    """The lab notebook, then its whole default run through the lab's own thread (Start button),
    stays under 1.5 GB resident (peak, VmHWM of the kernel process)."""
    nb = nbformat.read(NOTEBOOKS_DIR / "lab.ipynb", as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "lab.buttons['start'].click()\n"
            "assert lab.wait(timeout=900), 'the default run did not finish'\n"
            "assert lab.runner.state == 'finished', (lab.runner.state, lab.runner.error)\n"
            "print(lab.trainer.global_step, lab.trainer.best().test_error)"
        )
    )
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "print([line for line in open('/proc/self/status') if line.startswith('VmHWM')][0].split()[1])"
        )
    )
    env = dict(os.environ, BCLAB_QUICK="1", TF_CPP_MIN_LOG_LEVEL="3")
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=900, resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}
    )
    client.execute(env=env, cwd=str(NOTEBOOKS_DIR))
    steps, test_error = nb.cells[-2].outputs[0]["text"].split()
    peak_mb = int(nb.cells[-1].outputs[0]["text"]) / 1024
    out = Path(__file__).resolve().parent.parent / "test-output"
    out.mkdir(exist_ok=True)
    (out / "lab_memory.txt").write_text(
        f"lab.ipynb + default run ({steps} steps, test error {test_error} %): peak resident {peak_mb:.0f} MB\n"
    )
    assert int(steps) == 350
    assert peak_mb < LAB_MEMORY_LIMIT_MB, f"peak resident memory {peak_mb:.0f} MB"
