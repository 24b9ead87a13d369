"""The import graph of the package: no circle between modules, and each folder imports only the layers below it
(docs/architecture.md, "Layers"). Read from the source with ``ast``. For circles, imports under
``if TYPE_CHECKING:`` are annotations only and do not count; for layers they do: a type a module names is part of
what it depends on, so even an annotation may not name a higher layer."""

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


def imported(source: str, known: set[str], annotations: bool = False) -> set[str]:
    """The package's modules that ``source`` imports at run time, and with ``annotations`` also under
    ``if TYPE_CHECKING:`` (``typing.TYPE_CHECKING`` too); a ``from m import name`` counts m and m.name."""
    found: set[str] = set()

    class Imports(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if annotations or name != "TYPE_CHECKING":
                self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)

    Imports().visit(ast.parse(source))
    return found & known


def graph(annotations: bool = False) -> dict[str, set[str]]:
    files = module_files()
    return {name: imported(path.read_text(), set(files), annotations) - {name} for name, path in files.items()}


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


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """The imports of a folder's module from a folder of the same or a higher layer (``__main__`` and the
    package's lazy exports in ``__init__`` stand above every layer)."""
    return [
        f"{module} -> {dep}"
        for module, deps in edges.items()
        if module not in ("nce_lm", "nce_lm.__main__")
        for dep in deps
        if folder(dep) != folder(module) and LAYERS[folder(dep)] >= LAYERS[folder(module)]
    ]


def test_each_folder_imports_only_lower_layers() -> None:
    assert upward_imports(graph()) == []


def test_no_annotation_names_a_higher_layer() -> None:
    """Imports under ``if TYPE_CHECKING:`` follow the layers too."""
    assert upward_imports(graph(annotations=True)) == []


def test_an_upward_import_for_annotations_only_is_caught() -> None:
    """A module of vectors/ naming skipgram's result type, only for annotations, is an upward import."""
    planted = (
        "from __future__ import annotations\n"
        "import typing\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from nce_lm.skipgram.trainer import SkipGramResult\n"
        "if typing.TYPE_CHECKING:\n"
        "    import nce_lm.lm.train\n"
    )
    known = set(module_files())
    assert imported(planted, known) == set()
    found = imported(planted, known, annotations=True)
    assert sorted(upward_imports({"nce_lm.vectors.word_vectors": found})) == [
        "nce_lm.vectors.word_vectors -> nce_lm.lm.train",
        "nce_lm.vectors.word_vectors -> nce_lm.skipgram.trainer",
    ]


def test_the_checks_see_a_circle_and_a_wrong_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two checks above are not vacuous: a planted circle and a planted upward import are reported."""
    real = graph()
    planted = {**real, "nce_lm.pipeline.vocab": real["nce_lm.pipeline.vocab"] | {"nce_lm.lm.train"}}
    monkeypatch.setattr(sys.modules[__name__], "graph", lambda: planted)
    with pytest.raises(AssertionError):
        test_no_module_imports_itself_through_others()
    with pytest.raises(AssertionError):
        test_each_folder_imports_only_lower_layers()
