"""Security: who may call (authentication), what they may do (``policy.py``, the one table),
how much (quotas), over what (TLS). ``interceptors`` assembles it for ``start_server``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .identity import CALLER, Identity, Role, may_read_message

if TYPE_CHECKING:
    from ..config import Settings
    from ..storage import Storage
    from .http import HttpGate
    from .interceptor import Authenticator, Security

__all__ = ["CALLER", "Identity", "Role", "authenticator", "http_gate", "interceptor", "may_read_message"]


def authenticator(settings: Settings, storage: Storage) -> Authenticator | None:
    """Bearer token -> Identity for ``--auth token`` or ``jwt``; None with ``--auth none``."""
    if settings.auth == "token":
        from ..storage import sqlite_path
        from .tokens import TokenAuthenticator, marker_path

        path = sqlite_path(settings.db)
        marker = marker_path(path) if path and path != ":memory:" else None
        return TokenAuthenticator(storage.get_token, settings.auth_cache_s, marker)
    if settings.auth == "jwt":
        from .jwt_auth import JwtAuthenticator

        return JwtAuthenticator(settings)
    return None


def interceptor(settings: Settings, storage: Storage) -> Security | None:
    """The security interceptor for these settings; none at all with ``--auth none`` and no
    client certificates (development on loopback: nothing to check, nothing to pay)."""
    mtls = bool(settings.tls_client_ca)
    if settings.auth == "none" and not mtls:
        return None
    from .interceptor import Security
    from .quotas import Quotas

    return Security(authenticator(settings, storage), mtls, Quotas(settings, storage.pending_by_sender))


def http_gate(settings: Settings, security: Security | None) -> HttpGate:
    """The same checks for the A2A HTTP bindings (``security.http``), with the gRPC port's
    authenticator and quotas: a caller's budget is one, whichever way it calls."""
    from .http import HttpGate

    if security is None:
        return HttpGate(None, False, None)
    return HttpGate(security.authenticator, security.mtls, security.quotas, security.streams)
