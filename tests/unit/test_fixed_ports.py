"""No test binds or dials a fixed port: every broker, HTTP listener and PostgreSQL cluster of the
tests is on port 0 or a free port, so that `make test` passes beside `make run` (127.0.0.1:50051
and :8080) and beside itself. The run-time check is ``pytest --beside-default-broker``
(tests/beside_default.py); this one reads the sources."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

# host:port with a port other than 0 (any free port) and 1 (a port nothing listens on, for
# refusals that happen before any connection), and the default ports alone.
ADDRESS = re.compile(r"(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]|::1):(\d+)\b")
DEFAULT_PORTS = re.compile(r"\b(50051|8080)\b")

# Files that name the defaults without binding or dialling them, and why.
ALLOWED = {
    "tests/e2e/test_cli_details.py": "checks that --help states the default address",
    "tests/e2e/test_docs.py": "replaces the README's default address by the test broker's",
    "tests/beside_default.py": "holds the defaults on purpose (--beside-default-broker)",
    "tests/unit/test_fixed_ports.py": "this file",
    "tests/e2e/test_cli_exit_codes.py": "a URL-style --address is refused as a usage error, never dialled",
    "tests/e2e/test_tls_recipe.py": "replaces the README recipe's port by a free one before it runs",
}


def fixed_ports(text: str) -> list[str]:
    found = [m.group(0) for m in ADDRESS.finditer(text) if int(m.group(1)) > 1]
    found += [m.group(0) for m in DEFAULT_PORTS.finditer(text)]
    return found


def sources() -> list[Path]:
    node = ROOT / "clients" / "node"
    return sorted(
        [*(ROOT / "tests").rglob("*.py"), *(node / "test").rglob("*.js"), *(node / "testing").rglob("*.js")]
    )


def test_the_check_sees_a_fixed_port() -> None:
    assert fixed_ports('BrokerClient("127.0.0.1:50061")') == ["127.0.0.1:50061"]
    assert fixed_ports("url = 'http://localhost:8080/metrics'") == ["localhost:8080", "8080"]
    assert fixed_ports("port = 50051") == ["50051"]
    assert fixed_ports('address="127.0.0.1:0"; unreachable = "127.0.0.1:1"') == []


def test_no_test_uses_a_fixed_port() -> None:
    assert len(sources()) > 50
    offenders = {
        str(p.relative_to(ROOT)): found
        for p in sources()
        if str(p.relative_to(ROOT)) not in ALLOWED and (found := fixed_ports(p.read_text()))
    }
    assert offenders == {}, f"bind port 0 or free_port() instead: {offenders}"
