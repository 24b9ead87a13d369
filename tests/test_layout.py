"""The import graph of the package: no circle between modules, and each folder imports only the layers below it
(README, Architecture). Read from the source with ``ast``; imports under ``if TYPE_CHECKING:`` are annotations only
and do not count."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nce_lm"
# Lower layers first; a folder may import its own modules and those of lower layers, never a sibling of equal rank.
LAYERS = {"top": 0, "training": 1, "pipeline": 2, "objectives": 3, "vectors": 4, "skipgram": 5, "lm": 5, "cli": 6}


def module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imported(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports at run time (a ``from m import name`` counts m and m.name)."""
    found: set[str] = set()

    class Imports(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)

    Imports().visit(ast.parse(path.read_text()))
    return found & known


def graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported(path, set(files)) - {name} for name, path in files.items()}


def folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "top"


def test_no_module_imports_itself_through_others() -> None:
    edges, circles, state = graph(), [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(edges[module]):
            if state.get(dep) == "open":
                circles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_each_folder_imports_only_lower_layers() -> None:
    wrong = [
        f"{module} -> {dep}"
        for module, deps in graph().items()
        if module != "nce_lm.__main__"
        for dep in deps
        if folder(dep) != folder(module) and LAYERS[folder(dep)] >= LAYERS[folder(module)]
    ]
    assert wrong == []


def test_the_checks_see_a_circle_and_a_wrong_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two checks above are not vacuous: a planted circle and a planted upward import are reported."""
    real = graph()
    planted = {**real, "nce_lm.pipeline.vocab": real["nce_lm.pipeline.vocab"] | {"nce_lm.lm.train"}}
    monkeypatch.setattr(sys.modules[__name__], "graph", lambda: planted)
    with pytest.raises(AssertionError):
        test_no_module_imports_itself_through_others()
    with pytest.raises(AssertionError):
        test_each_folder_imports_only_lower_layers()
