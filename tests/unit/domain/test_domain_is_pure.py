"""broker/domain holds pure rules: it imports only broker.models, broker.errors, itself and
the standard library, and nothing that does I/O or waits, with one exception: a rule that is a
well-kept library's job (``THIRD_PARTY``, each pure: no I/O, no waiting). (What storage may import
is checked with the other layers, in tests/unit/test_layers.py.)"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import broker.domain
from tests.unit.test_layers import IMPURE  # the one list (the layer check applies it too)

DOMAIN = Path(broker.domain.__file__).parent
ALLOWED_BROKER = ("broker.models", "broker.errors", "broker.domain")
# Cron expressions (schedules.py): cronsim computes times from an expression and a datetime.
THIRD_PARTY = ("cronsim",)


def imported(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: broker.domain.<module> is the package's own
                base = ["broker", "domain"][: 2 - (node.level - 1)] if node.level <= 2 else []
                out.add(".".join([*base, *([node.module] if node.module else [])]))
            else:
                out.add(node.module or "")
    return out


def test_every_domain_module_imports_only_models_errors_and_the_standard_library():
    modules = sorted(DOMAIN.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        for name in imported(path):
            top = name.split(".")[0]
            if top == "broker":
                assert name.startswith(ALLOWED_BROKER), f"{path.name} imports {name}"
            elif top not in THIRD_PARTY:
                assert top in sys.stdlib_module_names or top == "__future__", f"{path.name} imports {name}"
                assert top not in IMPURE, f"{path.name} imports {name}: the domain does no I/O"


def test_every_domain_module_says_what_it_owns():
    for path in DOMAIN.glob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.name} has no docstring"
