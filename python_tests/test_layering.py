"""The package's shape: no import cycle (imports inside functions included), the model a leaf,
and small functions, modules and package faces.

The import graph is read from the source with `ast`, so it sees every import statement, also the
ones a test run never executes. `from a.b import c` is an edge to the module `a.b.c` when that is a
module, else to `a.b`; a package's `__init__` is not counted as imported by its own submodules'
imports of their siblings (Python runs it first, but it is not what the importing code uses)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tinygpt"

# Modules that are data (word lists, sentence templates) more than code: allowed to be long.
DATA_TABLES = {"tinygpt.data.story_words", "tinygpt.data.story_templates"}
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500
MAX_INIT_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(node: ast.AST, here: str, is_package: bool, known: set[str]) -> list[str]:
    """The tinygpt modules one import statement names."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = here.split(".")
            base = base[: len(base) - node.level + (1 if is_package else 0)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]
    else:
        return []
    out = []
    for name in names:
        while name and name not in known:  # `import tinygpt.ops.cuda` -> the module, `tinygpt._C` -> tinygpt
            name = name.rpartition(".")[0]
        if name.startswith("tinygpt") and name != here:
            out.append(name)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(tree):
            edges.update(imported(node, name, is_package, known))
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "tinygpt.training.plot" in graph["tinygpt.training.loop"]  # imported inside a function
    assert "tinygpt.tokenizer.core" in graph["tinygpt.tokenizer"]


def test_find_cycle_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_model_is_a_leaf():
    deps = reachable(import_graph(), "tinygpt.model")
    assert deps, "the graph found no imports of tinygpt.model at all"
    forbidden = ("tinygpt.generate", "tinygpt.decode", "tinygpt.training", "tinygpt.cli", "tinygpt.data",
                 "tinygpt.export", "tinygpt.demo", "tinygpt.tokenizer")
    bad = sorted(d for d in deps if d.startswith(forbidden))
    assert not bad, f"tinygpt.model depends on {bad}"


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


@pytest.mark.parametrize("name", sorted(modules()))
def test_functions_modules_and_package_faces_are_small(name):
    path = modules()[name]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert not long_functions(path), f"{name}: functions over {MAX_FUNCTION_LINES} lines: {long_functions(path)}"
    if path.name == "__init__.py":
        assert lines < MAX_INIT_LINES, f"{name}/__init__.py has {lines} lines"
    elif name not in DATA_TABLES:
        assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines (at most {MAX_MODULE_LINES} outside data tables)"
