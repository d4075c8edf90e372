"""Security: who may call (authentication), what they may do (``policy.py``, the one table),
how much (quotas), over what (TLS). ``interceptors`` assembles it for ``start_server``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .identity import CALLER, Identity, Role, may_read_message

if TYPE_CHECKING:
    import grpc

    from ..config import Settings
    from ..storage import Storage
    from .http import HttpGate
    from .interceptor import Authenticator
    from .quotas import Quotas

__all__ = [
    "CALLER",
    "Identity",
    "Role",
    "authenticator",
    "http_gate",
    "interceptors",
    "may_read_message",
    "quotas",
]


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


def quotas(settings: Settings, storage: Storage) -> Quotas | None:
    """The callers' quotas, shared by the gRPC port and the HTTP bindings; none with ``--auth
    none`` and no client certificates (nobody is identified, so nobody can be charged)."""
    if settings.auth == "none" and not settings.tls_client_ca:
        return None
    from .quotas import Quotas

    return Quotas(settings, storage.count_pending)


def interceptors(
    settings: Settings, storage: Storage, shared: Quotas | None = None
) -> list[grpc.aio.ServerInterceptor]:
    """The security interceptor for these settings; none at all with ``--auth none`` and no
    client certificates (development on loopback: nothing to check, nothing to pay)."""
    mtls = bool(settings.tls_client_ca)
    if settings.auth == "none" and not mtls:
        return []
    from .interceptor import Security

    return [
        Security(
            authenticator(settings, storage),
            mtls,
            shared if shared is not None else quotas(settings, storage),
            storage.conversation_starter,
        )
    ]


def http_gate(settings: Settings, auth: Authenticator | None, shared: Quotas | None) -> HttpGate:
    """The same checks for the A2A HTTP bindings (``security.http``)."""
    from .http import HttpGate

    return HttpGate(auth, bool(settings.tls_client_ca), shared)
