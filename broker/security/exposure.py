"""Secure defaults: the broker refuses a non-loopback address unless callers must authenticate
and the transport is TLS, or ``--insecure`` says the operator accepts the risk (and is then
reminded at start and every hour)."""

from __future__ import annotations

import ipaddress
import logging
import time

from ..config import Settings

log = logging.getLogger("broker.security")

WARN_EVERY_S = 3600.0


def is_loopback(address: str) -> bool:
    if address.startswith("unix:"):
        return True  # a socket file: reachable only through the file system's permissions
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name, 0.0.0.0, ::: reachable from elsewhere


def exposure_problem(settings: Settings) -> str | None:
    """What is missing to listen on ``settings.address`` (and the HTTP listener's) safely, or None."""
    return _grpc_problem(settings) or _http_problem(settings)


def _grpc_problem(settings: Settings) -> str | None:
    if is_loopback(settings.address):
        return None
    missing = [
        what
        for what, ok in (
            (
                "authentication (--auth token or jwt, or --tls-client-ca)",
                settings.auth != "none" or settings.tls_client_ca,
            ),
            ("TLS (--tls-cert and --tls-key)", settings.tls_cert),
        )
        if not ok
    ]
    if not missing:
        return None
    lacking = " and no ".join(missing)
    return f"{settings.address} is reachable from other machines but the broker has no {lacking}"


def _http_problem(settings: Settings) -> str | None:
    """The HTTP listener carries tokens (the console's sign-in, /metrics, the A2A bindings, MCP):
    reachable from other machines, it needs TLS, and something that closes /metrics."""
    http = settings.http_address
    if http == "off" or is_loopback(http):
        return None
    if settings.auth == "none" and not settings.metrics_token:
        return (
            f"--http-address {http} is reachable from other machines but /metrics is open to all"
            " (--auth token or jwt, or --metrics-token)"
        )
    if not settings.tls_cert:
        return (
            f"--http-address {http} is reachable from other machines but serves no TLS, so tokens"
            " would cross the network in clear (--tls-cert and --tls-key serve it too)"
        )
    return None


class InsecureReminder:
    """A sweeper job: the --insecure warning every hour (the first one is logged at start)."""

    def __init__(self, problem: str, first_after_s: float = 0.0) -> None:
        self.problem = problem
        self._next = time.monotonic() + first_after_s

    async def __call__(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + WARN_EVERY_S
            warn(self.problem)


def warn(problem: str) -> None:
    log.warning("INSECURE: %s; anyone who reaches it can act as any agent (started with --insecure)", problem)
