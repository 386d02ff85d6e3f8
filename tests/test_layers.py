"""Layers: lower packages never import higher ones, and packages import no circle.

Read from the source's import statements (lazy imports inside functions included), so a
shortcut taken anywhere fails here rather than in review. The roots (``app``, ``asgi``,
``cli``) and ``commands`` assemble everything and may import anything.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "healthstack"
ROOTS = {"app", "asgi", "cli", "__init__", "commands"}
# Leaf modules anyone may use.
SHARED = {"config", "errors", "numbers"}
# What each lower package may import besides SHARED (and itself): the rule the house style states.
ALLOWED = {
    "core": set(),
    "deid": set(),
    "check": set(),
    "plugins": set(),
    "ai": set(),
    "service": {"core"},
    "security": {"core", "service"},
}
# Packages the lower ones above must never reach, whatever the table says.
HIGHER = {"fhir", "console", "auth", "compliance", "commands", "app", "asgi", "cli"}


def _package_of(path: Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """The healthstack packages a module imports, by their first component."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "healthstack":
                names = [f"healthstack.{alias.name}" for alias in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("healthstack.")}
    # ``from healthstack import __version__`` names a value, not a module.
    return {name for name in found if (SRC / name).is_dir() or (SRC / f"{name}.py").is_file()}


@functools.cache
def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        package = _package_of(path)
        graph.setdefault(package, set()).update(_imports(path) - {package})
    return graph


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_lower_layers_never_import_higher_ones(package: str) -> None:
    imported = _graph()[package] - SHARED
    assert not imported & HIGHER, f"{package} imports {sorted(imported & HIGHER)}"
    assert imported <= ALLOWED[package], f"{package} imports {sorted(imported - ALLOWED[package])}"


def test_packages_import_no_circle() -> None:
    graph = {p: deps - ROOTS for p, deps in _graph().items() if p not in ROOTS}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, " -> ".join([*visiting[visiting.index(node) :], node])
        visiting.append(node)
        for dep in sorted(graph.get(node, set())):
            visit(dep)
        visiting.pop()
        done.add(node)

    for package in sorted(graph):
        visit(package)
