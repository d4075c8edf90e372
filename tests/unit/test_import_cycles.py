"""No import cycles between the broker's modules (counting imports made only for type checking):
each module can be read, tested and replaced after the modules it imports.

Packages' ``__init__`` modules count as modules: ``from .storage import sqlite_path`` depends on
``broker/storage/__init__.py`` and on everything it imports. ``from . import lock`` in a package's
own module depends on the submodule ``lock`` only (its package is already being initialised).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "broker"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path, modules: set[str]) -> set[str]:
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = {f"{base}.{a.name}" for a in node.names} & modules
            out.update(submodules)
            if len(submodules) < len(node.names):  # a name defined in ``base`` itself
                out.add(base)
    return {m for m in out if m in modules and m != name}


def cycles(root: Path) -> list[str]:
    """Every cycle of the import graph of the ``broker`` package under ``root``, as a path."""
    package = root / "broker"
    paths = [p for p in package.rglob("*.py") if "pb" not in p.relative_to(package).parts]
    modules = {module_name(p, root) for p in paths}
    graph = {module_name(p, root): imports(p, root, modules) for p in paths}
    found: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                found.append(" -> ".join([*path[path.index(n) :], n]))
            elif n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return found


def test_no_module_of_the_broker_imports_itself_back():
    found = cycles(ROOT)
    assert not found, "\n".join(found)


def planted(tmp_path: Path, where: str, source: str) -> Path:
    """A copy of broker/ with ``source`` appended to module ``where``; returns the copy's root."""
    shutil.copytree(PACKAGE, tmp_path / "broker", ignore=shutil.ignore_patterns("__pycache__", "static"))
    target = tmp_path / "broker" / where
    target.write_text(target.read_text() + "\n" + source + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("where", "source", "cycle"),
    [
        # through a package __init__: the settings checking --db with the storage layer's helper
        ("config.py", "from .storage import sqlite_path", ["broker.config", "broker.storage"]),
        # through a package __init__ that only re-exports: observability's metrics and the console
        (
            "observability/metrics.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..console import Console",
            ["broker.console", "broker.console.api", "broker.observability.metrics"],
        ),
        # between two plain modules
        ("models/common.py", "from . import tasks", ["broker.models.common", "broker.models.tasks"]),
    ],
)
def test_a_planted_cycle_is_caught(tmp_path, where, source, cycle):
    found = cycles(planted(tmp_path, where, source))
    assert any(set(c.split(" -> ")) == set(cycle) for c in found), found
