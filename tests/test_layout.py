"""The package's shape: arrows point down only, no import cycles, short functions.

Every import of every module counts, those inside functions included, so a lazy import
cannot hide an upward arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mlplab

SRC = Path(mlplab.__file__).parent


def _layers_from_docstring() -> tuple[tuple[str, ...], ...]:
    """The layer list in mlplab's docstring, lowest first: the one statement of the order."""
    lines = mlplab.__doc__.split("The package in layers")[1].splitlines()[1:]
    rows = [line[4:].split("  ")[0] for line in lines if line.startswith("    ") and line[4] != " "]
    names = [tuple(n.strip() for n in row.split(",")) for row in rows]
    full = [tuple("mlplab" if n == "mlplab" else f"mlplab.{n}" for n in row) for row in names]
    return tuple(full[::-1])


LAYERS = _layers_from_docstring()


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _resolve(name: str) -> str:
    """The module an import refers to (an attribute import resolves to its module)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _runtime_nodes(tree: ast.AST):
    """Every node that can run: `if TYPE_CHECKING:` blocks are for type checkers only."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {_resolve(n) for n in names if n == "mlplab" or n.startswith("mlplab.")}
    return found - {module}


GRAPH = {m: _imports(m) for m in MODULES}


def _layer(module: str) -> int | None:
    """The layer that names the module or its package."""
    for i, names in enumerate(LAYERS):
        for name in names:
            if module == name or (name != "mlplab" and module.startswith(name + ".")):
                return i
    return None


def test_the_docstring_names_every_layer_once():
    names = [n for row in LAYERS for n in row]
    assert LAYERS[0] == ("mlplab.errors", "mlplab.version")
    assert LAYERS[-1] == ("mlplab",)
    tops = {".".join(m.split(".")[:2]) for m in MODULES}  # mlplab and its packages, modules
    assert len(names) == len(set(names))
    assert set(names) == tops


def test_every_module_has_a_layer():
    assert [m for m in MODULES if _layer(m) is None] == []


@pytest.mark.parametrize("module", list(MODULES))
def test_imports_point_down_only(module):
    upward = [dep for dep in GRAPH[module] if _layer(dep) > _layer(module)]
    assert upward == [], f"{module} imports higher layers: {upward}"


def test_training_never_imports_cli_viz_or_serve():
    for module, deps in GRAPH.items():
        if module.startswith("mlplab.training"):
            bad = [d for d in deps if d.split(".")[1] in ("cli", "viz", "serve", "use")]
            assert bad == [], (module, bad)


def test_optim_takes_numbers_not_the_config():
    assert "mlplab.config" not in GRAPH["mlplab.training.optim"]


def test_no_import_cycles():
    visiting, done, cycles = [], set(), []

    def visit(module):
        if module in done:
            return
        if module in visiting:
            cycles.append(visiting[visiting.index(module) :] + [module])
            return
        visiting.append(module)
        for dep in sorted(GRAPH[module]):
            visit(dep)
        visiting.pop()
        done.add(module)

    for module in MODULES:
        visit(module)
    assert cycles == []


ROOT = SRC.parent.parent
SOURCES = sorted(SRC.rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
SOURCES += sorted((ROOT / "tools").rglob("*.py"))


def _functions():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                yield where, node.name, node.end_lineno - node.lineno + 1


def test_the_size_rule_sees_src_benchmarks_and_tools():
    tops = {path.relative_to(ROOT).parts[0] for path in SOURCES}
    assert tops == {"src", "benchmarks", "tools"}
    assert len(SOURCES) > 100


def test_no_function_runs_past_60_lines():
    long = [(where, f, n) for where, f, n in _functions() if n > 60]
    assert long == []


def test_each_engine_states_what_it_can_train():
    from mlplab.config import ENGINES as NAMES
    from mlplab.training.engines import ENGINES

    assert NAMES == ("auto", *ENGINES)
    for name, engine in ENGINES.items():
        assert engine.name == name
        assert callable(engine.cannot_train)


def test_serve_holds_the_server_alone():
    """Every module of mlplab.serve is part of what `mlplab serve` runs; load generators and
    soak drivers live in benchmarks/."""
    reached, todo = set(), ["mlplab.cli.use"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += GRAPH.get(module, ())
    serve = {m for m in MODULES if m.startswith("mlplab.serve")}
    by_name = {"mlplab.serve.worker"}  # uvicorn imports it from a string, for --workers
    assert "mlplab.serve.worker:" in MODULES["mlplab.serve.server"].read_text()
    assert serve - reached == by_name
