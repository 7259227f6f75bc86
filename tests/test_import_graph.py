"""The core's module-level import graph has no cycle, and every core module imports on its own.

Imports inside functions (lazy imports) and under ``if TYPE_CHECKING:`` are not edges: they run
after every module has finished loading.  ``from moviekit import X`` is an edge to the package
``moviekit`` (its ``__init__``) unless ``X`` is a submodule.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import moviekit

ROOT = Path(moviekit.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _core_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py") if "templates" not in p.parts}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module):
    """Import nodes that run when the module is imported (not in functions, classes' methods or TYPE_CHECKING)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body])
        elif isinstance(node, ast.ClassDef):
            stack.extend(n for n in node.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def import_graph() -> dict[str, set[str]]:
    """Module -> the core modules its module-level code imports."""
    modules = _core_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m) :] + [m]
            if m not in state and (c := visit(m)):
                return c
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_graph_sees_relative_and_absolute_imports():
    g = import_graph()
    assert "moviekit.components" in g["moviekit.plugins"]  # from .components import ...
    assert "moviekit.context" in g["moviekit"]
    assert "moviekit.context" not in g["moviekit.components"]  # only under TYPE_CHECKING


def test_core_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in the core: " + " -> ".join(cycle)


def test_each_core_module_imports_first_in_a_fresh_interpreter():
    """Any core module can be the first one imported (an import cycle usually breaks one of these)."""
    names = sorted(n for n in _core_modules() if n != "moviekit.__main__")
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    for m in [k for k in sys.modules if k == 'moviekit' or k.startswith('moviekit.')]:\n        del sys.modules[m]\n    importlib.import_module(n)\n"
    r = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
