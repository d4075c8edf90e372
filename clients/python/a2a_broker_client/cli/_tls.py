"""When a connection fails because of TLS, what to tell the user instead of "Is it running?".

gRPC reports every failed connection as UNAVAILABLE; its details tell a certificate that names
another host, one signed by a CA the client does not trust, and a TLS client at a plaintext port
apart. A plaintext client at a TLS port only sees the socket close, so that case is confirmed by
trying a TLS handshake with the port.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl

from ..security import CA_ENV, TLS_ENV, Security

PROBE_TIMEOUT_S = 2.0


def tls_problem(details: str, address: str, sec: Security) -> str | None:
    """The TLS problem behind a failed connection to ``address`` and its fix, or None."""
    host = _host(address)
    if any(
        s in details for s in ("Hostname Verification", "No match found for server name", "peer certificate")
    ):
        kind = "IP" if _is_ip(host) else "DNS"
        return (
            f"the broker's TLS certificate does not name {host}. Connect by a name it lists"
            f" (--address NAME:PORT), or give the broker a certificate with subjectAltName={kind}:{host}"
        )
    if "CERTIFICATE_VERIFY_FAILED" in details:
        trusted = f"--ca {sec.ca}" if sec.ca else "the system's trusted roots"
        return (
            f"the broker's TLS certificate is not signed by a CA this client trusts ({trusted}):"
            f" give --ca (or {CA_ENV}) the CA file that signed it"
        )
    if "WRONG_VERSION_NUMBER" in details:
        return (
            f"the broker does not speak TLS: leave out --ca ({CA_ENV}, {TLS_ENV}), or start the broker"
            " with --tls-cert and --tls-key"
        )
    if not sec.tls and host and speaks_tls(host, _port(address)):
        return (
            f"the broker speaks TLS and this client did not: give --ca (or {CA_ENV}) the CA file that"
            f" signed its certificate, or {TLS_ENV}=1 to trust the system's roots"
        )
    return None


def speaks_tls(host: str, port: int | None) -> bool:
    """Whether ``host:port`` completes a TLS handshake (certificate not checked: only the protocol)."""
    if port is None:
        return False
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as raw:
            with ctx.wrap_socket(raw, server_hostname=None if _is_ip(host) else host):
                return True
    except (OSError, ssl.SSLError):
        return False


def _host(address: str) -> str:
    """The host of HOST:PORT or [v6]:PORT ("" for gRPC target URIs such as unix:)."""
    if address.startswith(("dns:", "unix:", "unix-abstract:", "ipv4:", "ipv6:", "vsock:")):
        return ""
    return address.rpartition(":")[0].strip("[]")


def _port(address: str) -> int | None:
    port = address.rpartition(":")[2]
    return int(port) if port.isdigit() else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
