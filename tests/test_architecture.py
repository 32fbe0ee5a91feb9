"""The package's tiers and their import rules (see `bclab/__init__.py`).

Static: every `import` in every module (at any depth, lazy ones included) goes only to a tier
allowed below, and the module-level import graph has no cycle. Dynamic: in a fresh interpreter,
importing the trace store and the figure builders loads neither TensorFlow, Keras nor ipywidgets,
and importing the core loads no widget or plotting library.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bclab"
MAX_MODULE_LINES = 400

# tier -> the bclab tiers it may import (itself always allowed)
ALLOWED = {
    "validation": set(),
    "atomic": set(),
    "data": {"validation"},
    "config": {"validation", "data"},
    "core": {"validation"},
    "trace": {"validation", "atomic"},
    "train": {"validation", "data", "config", "core", "trace"},
    "plots": {"validation", "atomic", "trace"},
    "lab": {"validation", "atomic", "data", "config", "core", "train", "trace", "plots", "export"},
    "export": {"validation", "atomic", "core"},
    "cli": {"validation", "atomic", "data", "config", "train", "trace", "export"},
    "__init__": {"core", "config", "data", "train", "trace", "plots", "lab", "export"},
}
# tier -> third-party top-level packages it must never import
FORBIDDEN = {
    "validation": {"numpy", "keras", "tensorflow", "ipywidgets", "plotly"},
    "atomic": {"numpy", "keras", "tensorflow", "ipywidgets", "plotly"},
    "data": {"tensorflow", "ipywidgets", "plotly"},
    "config": {"keras", "tensorflow", "ipywidgets", "plotly"},
    "core": {"tensorflow", "ipywidgets", "plotly"},
    "trace": {"keras", "ipywidgets", "plotly"},  # tensorflow: only inside the TensorBoard export
    "train": {"ipywidgets", "plotly"},
    "plots": {"keras", "tensorflow", "ipywidgets"},
    "export": {"tensorflow", "ipywidgets", "plotly"},
    "cli": {"ipywidgets", "plotly"},
}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("bclab", *parts)).removesuffix(".__init__")
        yield name, parts[0], path


def imports(path: Path, top_level_only: bool = False):
    """(imported module, line) for each import statement; relative imports are not used here."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            if node.module == "bclab":  # from bclab import plots / data
                for alias in node.names:
                    yield f"bclab.{alias.name}", node.lineno
            else:
                yield node.module, node.lineno


def tier_of(module: str) -> str:
    parts = module.split(".")
    return parts[1].removesuffix(".py") if len(parts) > 1 else "__init__"


def test_every_module_has_a_tier():
    assert {tier for _, tier, _ in modules()} <= set(ALLOWED) | {"__init__.py"}


@pytest.mark.parametrize("name,tier,path", list(modules()), ids=lambda v: str(v) if isinstance(v, str) else "")
def test_imports_follow_the_tiers(name, tier, path):
    tier = tier.removesuffix(".py")
    for module, line in imports(path):
        top = module.split(".")[0]
        if top == "bclab":
            target = tier_of(module)
            assert target == tier or target in ALLOWED[tier], f"{path.name}:{line}: {tier} must not import {module}"
        else:
            assert top not in FORBIDDEN.get(tier, set()), f"{path.name}:{line}: {tier} must not import {module}"


def test_tensorflow_is_imported_only_by_train_and_the_tensorboard_export():
    users = {name for name, _, path in modules() for module, _ in imports(path) if module.split(".")[0] == "tensorflow"}
    assert {name for name in users if not name.startswith("bclab.train")} == {"bclab.trace.tensorboard"}


def test_no_import_cycle():
    graph = {name: set() for name, _, _ in modules()}
    for name, _, path in modules():
        for module, _ in imports(path, top_level_only=True):
            if module in graph and module != name:
                graph[name].add(module)
    done, active = set(), []

    def visit(node):
        if node in active:
            raise AssertionError("import cycle: " + " -> ".join(active[active.index(node) :] + [node]))
        if node in done:
            return
        active.append(node)
        for child in sorted(graph[node]):
            visit(child)
        active.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_modules_stay_short():
    long = {name: n for name, _, path in modules() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_trace_and_figures_load_no_framework_and_no_widgets():
    loaded = loaded_after(
        "import bclab.trace, bclab.plots\n"
        "from bclab.plots import make_weights_figure, make_scalars_figure, make_timeline_figure\n"
        "for make in (make_weights_figure, make_scalars_figure, make_timeline_figure): make(None)"
    )
    assert "plotly" in loaded  # the statement really built figures
    assert not loaded & {"tensorflow", "keras", "ipywidgets", "jax", "torch"}


def test_core_loads_no_widgets_or_plots():
    loaded = loaded_after("import bclab.core.layers, bclab.core.optimizers")
    assert "keras" in loaded
    assert not loaded & {"ipywidgets", "plotly", "anywidget"}


def test_importing_the_package_loads_nothing_heavy():
    loaded = loaded_after("import bclab, bclab.lab, bclab.config, bclab.data")
    assert not loaded & {"tensorflow", "keras", "ipywidgets", "plotly"}


def test_the_lab_loads_tensorflow_only_when_a_run_starts():
    loaded = loaded_after("import bclab\nlab = bclab.Lab()")
    assert "ipywidgets" in loaded
    assert not loaded & {"tensorflow", "keras"}
