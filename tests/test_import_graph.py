"""The modules of mmlaw_utils import one another without cycles, function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import mmlaw_utils

PACKAGE_DIR = Path(mmlaw_utils.__file__).resolve().parent


def module_name(path: Path) -> str:
    """Dotted module name of a file of the package (``__init__.py`` names its package)."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], name: str) -> set[str]:
    """Package modules that module ``name`` (file ``path``) imports anywhere in its body, functions included.

    ``from pkg import mod`` counts as importing ``pkg.mod``; relative imports are resolved.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> package modules it imports, over every ``.py`` file of mmlaw_utils."""
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imported_modules(f, modules, module_name(f)) for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None; depth-first search."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_detects_a_function_level_cycle(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from mmlaw_utils.analysis import subsets\n    return subsets\n")
    found = imported_modules(lazy, {"mmlaw_utils.analysis.subsets"}, "mmlaw_utils.analysis.lazy")
    assert found == {"mmlaw_utils.analysis.subsets"}
    relative = tmp_path / "rel.py"
    relative.write_text("from .oracle import pair_index\nfrom . import fit\n")
    modules = {"mmlaw_utils.analysis.oracle", "mmlaw_utils.analysis.fit"}
    assert imported_modules(relative, modules, "mmlaw_utils.analysis.rel") == modules


def test_graph_sees_the_package_imports():
    graph = import_graph()
    assert "mmlaw_utils.analysis.oracle" in graph["mmlaw_utils.analysis.frontier"]
    assert "mmlaw_utils.analysis.bootstrap" in graph["mmlaw_utils.report.tables"]  # a function-level import


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
