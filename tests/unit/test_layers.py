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
    server    composition: the server, the sweeper, the command line

A layer imports only from layers below it (and the leaf modules ``clock``, ``config``, ``errors``,
``logs``). Imports under ``if TYPE_CHECKING:`` count too: a type-only arrow that runs up still ties
a lower layer to a higher one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

BROKER = Path(__file__).resolve().parents[2] / "broker"

# The layers that each layer must not import (module prefixes, dotted).
SERVER = ("broker.server", "broker.sweeper", "broker.cli", "broker.__main__")
SECURITY = "broker.security"
OBSERVABILITY = "broker.observability"
CONSOLE = "broker.console"
GATEWAY = "broker.gateway"
FEDERATION = "broker.federation"
WEB = "broker.web"
MCP = "broker.mcp"
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "broker.models": (
        "broker.domain",
        "broker.storage",
        "broker.core",
        SECURITY,
        "broker.servicers",
        OBSERVABILITY,
        CONSOLE,
        GATEWAY,
        MCP,
        WEB,
        *SERVER,
    ),
    "broker.domain": (
        "broker.storage",
        "broker.core",
        SECURITY,
        "broker.servicers",
        OBSERVABILITY,
        CONSOLE,
        GATEWAY,
        MCP,
        WEB,
        *SERVER,
    ),
    "broker.storage": (
        "broker.core",
        SECURITY,
        "broker.servicers",
        OBSERVABILITY,
        CONSOLE,
        GATEWAY,
        FEDERATION,
        MCP,
        WEB,
        *SERVER,
    ),
    "broker.core": (
        SECURITY,
        "broker.servicers",
        OBSERVABILITY,
        CONSOLE,
        GATEWAY,
        FEDERATION,
        MCP,
        WEB,
        *SERVER,
    ),
    SECURITY: (
        "broker.core",
        "broker.servicers",
        OBSERVABILITY,
        CONSOLE,
        GATEWAY,
        FEDERATION,
        MCP,
        WEB,
        *SERVER,
    ),
    "broker.servicers": (OBSERVABILITY, CONSOLE, GATEWAY, FEDERATION, MCP, WEB, *SERVER),
    # Beside the servicers: reads the core and storage (metrics), the security layer (who may read).
    OBSERVABILITY: ("broker.servicers", GATEWAY, FEDERATION, MCP, WEB, *SERVER),
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
# The wire format stays at the edge: below the servicers nothing reads or builds protobuf.
WIRE = "broker.pb"
BELOW_THE_WIRE = ("broker.models", "broker.domain", "broker.storage", "broker.core")

# The domain layer is pure rules: no I/O, no event loop, no SQL, no threads.
IMPURE = ("asyncio", "sqlite3", "aiosqlite", "grpc", "socket", "threading", "subprocess")

# Known violations, each to be removed by the change that fixes it (never to be added to).
# Known exceptions to the layer rule, each with its reason (none today: the priority rule that
# storage imported from the core now lives in broker/domain/priority.py).
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(BROKER.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_module(name: str) -> bool:
    """Whether the dotted name is a module or package of the scanned tree."""
    rel = Path(*name.split(".")[1:])
    return (BROKER / rel).with_suffix(".py").is_file() or (BROKER / rel / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved; in ``from x import y``,
    ``x.y`` too when ``y`` is itself a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
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
                if within(origin, "broker") and is_module(f"{origin}.{alias.name}")
            )
    return found


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def broker_modules() -> list[Path]:
    return sorted(p for p in BROKER.rglob("*.py") if "pb" not in p.relative_to(BROKER).parts)


def violations() -> set[tuple[str, str]]:
    """(module, what it imports) for every import that runs up the layers or reaches the wire."""
    out = set()
    for path in broker_modules():
        name = module_name(path)
        banned = [p for layer, ps in FORBIDDEN.items() if within(name, layer) for p in ps]
        if any(within(name, layer) for layer in BELOW_THE_WIRE):
            banned.append(WIRE)
        if within(name, "broker.domain"):
            banned.extend(IMPURE)
        out.update((name, imp) for imp in imports_of(path) if any(within(imp, b) for b in banned))
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
