"""The layering of ``broker/``, checked over the ``import`` statements of every module (``ast``).

From the bottom up:

    models    plain values, inputs and their validation
    domain    pure rules (no I/O, no asyncio, no SQL)
    storage   persistence: loads and stores rows, runs the statements the rules decide
    core      the services: wake-ups, streams, scheduling; calls storage and domain
    security  who calls (authentication), what they may do (policy), quotas, TLS; beside the core
    servicers gRPC: protobuf in and out, errors to status codes (no layer below sees ``pb``)
    observability  metrics, the RPC access log, the HTTP listener; beside the servicers
    console   the web console's JSON API and page, served by the HTTP listener; beside observability
    gateway   the A2A protocol (a2a-sdk's handler over the core); beside the servicers
    mcp       the MCP endpoint (/mcp): the Python client's MCP tools, calling this broker over its
              own gRPC API; beside the gateway, and knows nothing of the core or storage
    federation  links to peer brokers (a gRPC client of theirs, the core here); beside the servicers
    web       the HTTP listener: one ASGI application serving the routes of observability, console,
              gateway and mcp (uvicorn on the broker's loop)
    server    composition: the server, the sweeper, the command line (and its commands), the
              supervisor of several broker processes

A layer imports only from layers below it (and the leaf modules ``clock``, ``config``, ``errors``,
``logs``). Imports under ``if TYPE_CHECKING:`` count too: a type-only arrow that runs up still ties
a lower layer to a higher one. Outside the storage layer no module names a backend
(``broker.storage.sqlite``, ``broker.storage.postgres``): the others reach storage through its
protocol; nor does one backend name the other. Each rule is proven by planting a violation in a
copy of the tree (``PLANTED``).
"""

from __future__ import annotations

import ast
import functools
import shutil
import sys
from pathlib import Path

import pytest

BROKER = Path(__file__).resolve().parents[2] / "broker"

# The layers that each layer must not import (module prefixes, dotted).
SERVER = (
    "broker.server",
    "broker.sweeper",
    "broker.cli",
    "broker.processes",
    "broker.commands",
    "broker.__main__",
)
SECURITY = "broker.security"
OBSERVABILITY = "broker.observability"
CONSOLE = "broker.console"
GATEWAY = "broker.gateway"
FEDERATION = "broker.federation"
WEB = "broker.web"
MCP = "broker.mcp"  # the MCP binding: beside the servicers, like the gateway
# The servicers and the layers beside and above them.
UPPER = ("broker.servicers", OBSERVABILITY, CONSOLE, GATEWAY, FEDERATION, MCP, WEB, *SERVER)
# Everything above the storage layer: one list, the only one storage is checked against.
ABOVE_STORAGE = ("broker.core", SECURITY, *UPPER)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "broker.models": ("broker.domain", "broker.storage", *ABOVE_STORAGE),
    "broker.domain": ("broker.storage", *ABOVE_STORAGE),
    "broker.storage": ABOVE_STORAGE,
    "broker.core": (SECURITY, *UPPER),
    SECURITY: ("broker.core", *UPPER),
    "broker.servicers": (OBSERVABILITY, CONSOLE, GATEWAY, FEDERATION, MCP, WEB, *SERVER),
    # Beside the servicers: reads the core and storage (metrics), the security layer (who may read).
    # The console reads observability's metrics, so observability never imports the console.
    OBSERVABILITY: ("broker.servicers", CONSOLE, GATEWAY, FEDERATION, MCP, WEB, *SERVER),
    # Beside observability (served by its HTTP listener): calls the core as the servicers do, and
    # maps errors to statuses through the servicers' one table (servicers.errors).
    CONSOLE: (GATEWAY, FEDERATION, MCP, WEB, *SERVER),
    # Beside the servicers: a second wire protocol over the same core (its wire types are a2a-sdk's).
    GATEWAY: ("broker.servicers", OBSERVABILITY, CONSOLE, FEDERATION, MCP, WEB, *SERVER),
    # Beside the servicers: a client of the peers' API (the Python client's Worker) and of the core.
    FEDERATION: ("broker.servicers", OBSERVABILITY, CONSOLE, GATEWAY, MCP, WEB, *SERVER),
    # Beside the gateway: a client of this broker's own gRPC API (the Python client's MCP tools), so
    # the rules stay where every caller meets them: nothing of the core, storage or servicers.
    MCP: (
        "broker.domain",
        "broker.storage",
        "broker.core",
        "broker.servicers",
        "broker.pb",
        OBSERVABILITY,
        CONSOLE,
        GATEWAY,
        FEDERATION,
        WEB,
        *SERVER,
    ),
    # Serves what the layers beside the servicers built; knows nothing of what they do.
    WEB: ("broker.servicers", FEDERATION, MCP, *SERVER),
}
# A storage backend is reached through ``broker.storage`` (the protocol and ``open_storage``):
# nothing outside the storage layer names one, and no backend names the other (what they share
# is ``broker.storage.sql``).
STORAGE = "broker.storage"
BACKENDS = ("broker.storage.sqlite", "broker.storage.postgres")
# The wire format stays at the edge: below the servicers nothing reads or builds protobuf.
WIRE = "broker.pb"
BELOW_THE_WIRE = ("broker.models", "broker.domain", "broker.storage", "broker.core")

# The domain layer is pure rules: no I/O, no event loop, no SQL, no threads, no clock
# (tests/unit/domain/test_domain_is_pure.py checks it against this same list).
IMPURE = ("asyncio", "sqlite3", "aiosqlite", "grpc", "socket", "threading", "subprocess", "os", "time")

# Known exceptions to the layer rule, each with its reason (none today: the priority rule that
# storage imported from the core now lives in broker/domain/priority.py). Never to be added to.
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path | None = None) -> str:
    parts = path.relative_to((root or BROKER).parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_module(name: str, root: Path | None = None) -> bool:
    """Whether the dotted name is a module or package of the scanned tree."""
    rel = Path(*name.split(".")[1:])
    base = root or BROKER
    return (base / rel).with_suffix(".py").is_file() or (base / rel / "__init__.py").is_file()


def imports_of(path: Path, root: Path | None = None) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved; in ``from x import y``,
    ``x.y`` too when ``y`` is itself a module)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in import_nodes(path.read_text()):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(
                f"{origin}.{alias.name}"
                for alias in node.names
                if within(origin, "broker") and is_module(f"{origin}.{alias.name}", root)
            )
    return found


@functools.lru_cache(maxsize=2048)
def import_nodes(source: str) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module's source (cached: the planted copies repeat the tree)."""
    return [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import | ast.ImportFrom)]


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def broker_modules(root: Path | None = None) -> list[Path]:
    base = root or BROKER
    return sorted(p for p in base.rglob("*.py") if "pb" not in p.relative_to(base).parts)


def violations(root: Path | None = None) -> set[tuple[str, str]]:
    """(module, what it imports) for every import that runs up the layers, reaches the wire, or
    names a storage backend from outside the storage layer."""
    out = set()
    for path in broker_modules(root):
        name = module_name(path, root)
        banned = [p for layer, ps in FORBIDDEN.items() if within(name, layer) for p in ps]
        if any(within(name, layer) for layer in BELOW_THE_WIRE):
            banned.append(WIRE)
        if within(name, "broker.domain"):
            banned.extend(IMPURE)
        if not within(name, STORAGE):
            banned.extend(BACKENDS)
        for backend in BACKENDS:  # nor does a backend name another: what they share is storage.sql
            if within(name, backend):
                banned.extend(b for b in BACKENDS if b != backend)
        out.update((name, imp) for imp in imports_of(path, root) if any(within(imp, b) for b in banned))
    return out


def test_every_layer_exists_and_is_scanned():
    names = [module_name(p) for p in broker_modules()]
    for layer in ("broker.models", "broker.storage", "broker.core", "broker.servicers", "broker.server"):
        assert any(within(n, layer) for n in names), f"no module found for {layer}"


def test_no_layer_imports_from_a_layer_above_it():
    unexpected = sorted(violations() - ALLOWED)
    assert not unexpected, "imports that run up the layers:\n" + "\n".join(
        f"  {m} imports {imp}" for m, imp in unexpected
    )


def test_the_allow_list_holds_only_violations_that_still_exist():
    stale = sorted(ALLOWED - violations())
    assert not stale, f"fixed: remove from ALLOWED in tests/unit/test_layers.py: {stale}"


def test_an_upward_import_is_caught(tmp_path, monkeypatch):
    """The check itself works: a storage module importing a servicer (type-only) and protobuf,
    a domain module importing asyncio and the core, are reported; domain -> models is fine."""
    fake = tmp_path / "broker"
    (fake / "storage").mkdir(parents=True)
    (fake / "servicers").mkdir()
    (fake / "storage" / "bad.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ..servicers.convert import ts\n"
        "from ..pb import tasks_pb2\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "BROKER", fake)
    (fake / "domain").mkdir()
    (fake / "domain" / "impure.py").write_text(
        "import asyncio\nfrom ..core import hub\nfrom ..models import x\n"
    )
    assert violations() == {
        ("broker.storage.bad", "broker.servicers.convert"),
        ("broker.storage.bad", "broker.pb"),
        ("broker.domain.impure", "asyncio"),
        ("broker.domain.impure", "broker.core"),
    }


# -- each rule, proven on a copy of the real tree with one violation planted ----------------------


@pytest.fixture(scope="module")
def scanned() -> set[tuple[str, str]]:
    return violations()


def planted(tmp_path: Path, where: str, source: str) -> Path:
    """A copy of broker/ with ``source`` added at the end of module ``where`` (created if new)."""
    copy = tmp_path / "broker"
    shutil.copytree(BROKER, copy, ignore=shutil.ignore_patterns("__pycache__", "static"))
    target = copy / where
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.parent != copy and not (target.parent / "__init__.py").exists():
        (target.parent / "__init__.py").write_text("")
    before = target.read_text() if target.exists() else ""
    target.write_text(before + "\n" + source + "\n")
    return copy


# (module file, planted import, the violation the check must report)
PLANTED = [
    # a specific backend, from outside the storage layer (type-only imports count too)
    ("core/planted.py", "from ..storage.sqlite.engine import SqliteEngine", "broker.storage.sqlite.engine"),
    ("gateway/planted.py", "import broker.storage.postgres", "broker.storage.postgres"),
    (
        "security/planted.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..storage.sqlite import engine",
        "broker.storage.sqlite.engine",
    ),
    # models and domain: every upper layer, federation and the HTTP layers included
    ("models/planted.py", "from ..federation import link", "broker.federation.link"),
    ("models/planted.py", "from ..web import listener", "broker.web.listener"),
    ("models/planted.py", "from .. import observability", "broker.observability"),
    ("models/planted.py", "import broker.mcp", "broker.mcp"),
    ("domain/planted.py", "from ..federation.link import x", "broker.federation.link"),
    ("domain/planted.py", "from ..gateway import card", "broker.gateway.card"),
    ("domain/planted.py", "from ..console import api", "broker.console.api"),
    ("domain/planted.py", "from ..observability.metrics import Metrics", "broker.observability.metrics"),
    ("domain/planted.py", "import time", "time"),
    # storage: the one list of the layers above it
    ("storage/planted.py", "from ..core.leasing import Leasing", "broker.core.leasing"),
    ("storage/sqlite/planted.py", "from ...servicers import errors", "broker.servicers.errors"),
    ("storage/planted.py", "from .. import sweeper", "broker.sweeper"),
    ("storage/planted.py", "from ..security.tokens import x", "broker.security.tokens"),
    ("storage/postgres/planted.py", "from ...federation import link", "broker.federation.link"),
    # one backend naming the other
    ("storage/postgres/planted.py", "from ..sqlite.messages import X", "broker.storage.sqlite.messages"),
    ("storage/sqlite/planted.py", "from ..postgres import connection", "broker.storage.postgres.connection"),
    # observability and the console: the console reads metrics, never the other way
    ("observability/planted.py", "from ..console.api import Console", "broker.console.api"),
]


@pytest.mark.parametrize(("where", "source", "reported"), PLANTED)
def test_a_planted_violation_is_caught(tmp_path, scanned, where, source, reported):
    copy = planted(tmp_path, where, source)
    module = "broker." + where.removesuffix(".py").replace("/", ".")
    new = violations(copy) - scanned
    assert reported in {imp for _, imp in new}, f"{module} importing {reported} passed the check"
    assert {m for m, _ in new} == {module}


def test_a_backend_imported_inside_the_storage_layer_is_fine(tmp_path, scanned):
    copy = planted(tmp_path, "storage/planted.py", "from .sqlite import engine\nfrom .postgres import relay")
    assert violations(copy) == scanned
