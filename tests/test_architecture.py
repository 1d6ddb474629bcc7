"""The package's layering, checked on its source: no import cycles, no import from a lower layer
to a higher one, and the MLflow model loads without the data-building engine."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "healthscore"

# The layer order, lowest first (docs/ARCHITECTURE.md draws it). A module may import its own layer
# and the layers below it, never one above.
LAYERS = [
    ("floor", ["errors", "io", "defaults", "dataset", "scores_file"]),
    ("config", ["schema", "catalogue", "sql_expressions", "settings", "config"]),
    ("build", ["build"]),
    ("model", ["model"]),
    ("registry", ["registry"]),
    ("scoring", ["scoring"]),
    ("history", ["history"]),
    ("report", ["report"]),
    ("pipeline", ["pipeline", "forecasting", "demo"]),
    ("cli", ["cli"]),
    ("package", ["__init__"]),
]
RANK = {part: rank for rank, (_, parts) in enumerate(LAYERS) for part in parts}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("healthscore",) + parts)
        found[name.removesuffix(".__init__") if parts[-1] == "__init__" and len(parts) > 1 else name] = path
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    if module == "healthscore" or parts[1] == "__init__":
        return RANK["__init__"]
    return RANK[parts[1]]


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """healthscore modules that `module` imports anywhere in its file (lazy imports too)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {n for n in names if n == "healthscore" or n.startswith("healthscore.")}
    return {n for n in found if n != module}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports(m, p, known) for m, p in mods.items()}


def test_every_module_has_a_layer():
    for module in modules():
        layer(module)  # KeyError names a module missing from LAYERS


def test_no_import_points_upward():
    upward = [f"{m} ({LAYERS[layer(m)][0]}) imports {i} ({LAYERS[layer(i)][0]})"
              for m, deps in graph().items() for i in deps if layer(i) > layer(m)]
    assert upward == []


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node] & edges.keys()):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The walker itself: a planted cycle and an upward import are found."""
    fake = tmp_path / "healthscore"
    (fake / "model").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "model" / "__init__.py").write_text("")
    (fake / "model" / "a.py").write_text("from healthscore.model import b\n")
    (fake / "model" / "b.py").write_text("def f():\n    from healthscore.model.a import x\n    from healthscore.cli import app\n")
    (fake / "cli.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    with pytest.raises(AssertionError, match="healthscore.model.b"):
        test_no_import_cycles()
    with pytest.raises(AssertionError, match=r"healthscore.model.b \(model\) imports healthscore.cli \(cli\)"):
        test_no_import_points_upward()


def test_loading_the_mlflow_model_does_not_import_the_data_engine():
    """The pyfunc imports the model layer only: no DuckDB, config or metric SQL."""
    code = ("import sys, healthscore.registry.pyfunc; "
            "print(sorted(m for m in sys.modules if m == 'duckdb' or m.startswith(('healthscore.build', 'healthscore.config'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_readme_layout_lists_every_top_level_module():
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    top = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    missing = sorted(name for name in top if f" {name}.py " not in layout and f" {name}/ " not in layout)
    assert missing == []
