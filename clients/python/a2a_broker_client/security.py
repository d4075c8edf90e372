"""Connection security for the clients: a bearer token and TLS (or mutual TLS) settings.

Each setting falls back to an environment variable: ``A2A_BROKER_TOKEN`` (sent as
``authorization: Bearer <token>`` on every call), ``A2A_BROKER_CA`` (a PEM CA bundle to trust;
setting it turns TLS on), ``A2A_BROKER_CLIENT_CERT`` and ``A2A_BROKER_CLIENT_KEY`` (a client
certificate for mutual TLS), ``A2A_BROKER_TLS=1`` (TLS with the system's trusted roots).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

TOKEN_ENV = "A2A_BROKER_TOKEN"
CA_ENV = "A2A_BROKER_CA"
CLIENT_CERT_ENV = "A2A_BROKER_CLIENT_CERT"
CLIENT_KEY_ENV = "A2A_BROKER_CLIENT_KEY"
TLS_ENV = "A2A_BROKER_TLS"


@dataclass(frozen=True)
class Security:
    token: str | None = None
    tls: bool = False
    ca: str | None = None  # file paths
    client_cert: str | None = None
    client_key: str | None = None

    @classmethod
    def resolve(
        cls,
        token: str | None = None,
        tls: bool | None = None,
        ca: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Security:
        """Arguments, else the environment."""
        env = os.environ if env is None else env
        ca = ca or env.get(CA_ENV) or None
        cert = client_cert or env.get(CLIENT_CERT_ENV) or None
        key = client_key or env.get(CLIENT_KEY_ENV) or None
        if bool(cert) != bool(key):
            raise ValueError("a client certificate and its key go together: give both or neither")
        if tls is None:
            tls = env.get(TLS_ENV, "").lower() in ("1", "true", "yes") or bool(ca or cert)
        return cls(token or env.get(TOKEN_ENV) or None, tls, ca, cert, key)

    def channel(self, address: str, options: Sequence[tuple[str, Any]]) -> grpc.aio.Channel:
        interceptors = bearer_interceptors(self.token) if self.token else None
        if not self.tls:
            return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
        creds = grpc.ssl_channel_credentials(_read(self.ca), _read(self.client_key), _read(self.client_cert))
        return grpc.aio.secure_channel(address, creds, options=options, interceptors=interceptors)


def bearer_interceptors(token: str) -> list[Any]:
    """Client interceptors that send ``authorization: Bearer <token>`` on every call (unary and
    server-streaming and bidirectional), for a channel made by hand."""
    return [_BearerUnary(token), _BearerStream(token), _BearerBidi(token)]


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


class _Bearer:
    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def _details(self, d: Any) -> Any:
        return grpc.aio.ClientCallDetails(
            d.method, d.timeout, (*(d.metadata or ()), *self._metadata), d.credentials, d.wait_for_ready
        )


# grpc.aio files an interceptor under the first kind it is: one class per kind.
class _BearerUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _BearerStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _BearerBidi(_Bearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)
