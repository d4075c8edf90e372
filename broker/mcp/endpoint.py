"""``/mcp``: the MCP SDK's streamable HTTP transport on the broker's HTTP listener.

Each tool call is made by a client of this broker's own gRPC API, reached on a loopback port of
its own: a Unix socket in a directory only the broker's user can enter, without TLS, so that the
broker needs no client certificate of its own to call itself under mutual TLS (a socket no other
user can open is no wider a door than the database file beside it). The call carries the bearer
token of the HTTP request, and the broker's interceptors judge it as any other: authentication,
the policy table, quotas, the access log (with the MCP client's name as its user agent). A request
without a token calls as nobody: with ``--auth`` on, only what an unauthenticated caller may do.

A 2025-era MCP session stays bound to the credential that opened it (the SDK answers 404 to a
request of that session with another), and each client is closed with its request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import grpc
from a2a_broker_client import BrokerClient, RetryConfig, UnauthenticatedError
from a2a_broker_client.mcp import BrokerMcp, Caller, user_agent
from a2a_broker_client.security import Security
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from ..config import Settings
from ..errors import BrokerError
from ..security.identity import bearer
from .path import PATH

access = logging.getLogger("broker.access")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class Forwarding:
    """A client per request, to the broker's loopback port, with the request's bearer token."""

    hint = (
        "Send the token with each HTTP request: the header 'Authorization: Bearer <token>' (the "
        "host's configuration of this MCP server); over /mcp a client certificate alone does not "
        "name the caller."
    )

    def __init__(self, target: str) -> None:
        self.target = target

    @asynccontextmanager
    async def client(self, caller: Caller) -> AsyncIterator[BrokerClient]:
        token = _token(caller.headers)
        client = BrokerClient(
            self.target,
            retry=RetryConfig(max_attempts=1),
            channel_options=[("grpc.primary_user_agent", user_agent(caller))],
        )
        # This request's token, and only it: never the broker process's own A2A_BROKER_* settings.
        client.security = Security(token=token)
        try:
            yield client
        finally:
            await client.close()


def _token(headers: Mapping[str, str] | None) -> str | None:
    value = (headers or {}).get("authorization")
    if value is None:
        return None
    token = bearer(value)
    if not token:
        raise UnauthenticatedError(
            grpc.StatusCode.UNAUTHENTICATED, "authorization: must read 'Bearer <token>'"
        )
    return token


def _access_line(tool: str, caller: Caller, outcome: str, seconds: float) -> None:
    access.info(
        "mcp",
        extra={
            "tool": tool,
            "client": caller.client_name or "-",
            "outcome": outcome,
            "ms": round(seconds * 1000, 3),
        },
    )


def _rebinding_guard(http_address: str, tls: bool) -> TransportSecuritySettings | None:
    """On a loopback listener, the SDK's DNS-rebinding check (a web page's script must not reach
    a local broker through a name it controls): Host and Origin must name the loopback."""
    host = http_address.rpartition(":")[0]
    if host not in LOOPBACK_HOSTS:
        return None
    scheme = "https" if tls else "http"
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{h}:*" for h in LOOPBACK_HOSTS],
        allowed_origins=[f"{scheme}://{h}:*" for h in LOOPBACK_HOSTS],
    )


class _Endpoint:
    """The ASGI application at ``/mcp``: the SDK's, once running, with the caller's credential
    named to it (so a session stays bound to the token that opened it)."""

    def __init__(self, inner: StreamableHTTPASGIApp) -> None:
        self.inner = inner
        self.serving = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.serving:
            await PlainTextResponse("the broker is shutting down", 503)(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                # The session's owner, for the SDK's check: a digest, not the token itself.
                digest = hashlib.sha256(value).hexdigest()
                scope["user"] = AuthenticatedUser(AccessToken(token=digest, client_id=digest, scopes=[]))
                break
        await self.inner(scope, receive, send)


class McpEndpoint:
    """The MCP server at ``/mcp``: its loopback gRPC port (added to ``server`` before it starts),
    the SDK's session manager (run by :meth:`start` until :meth:`stop`), and its route."""

    def __init__(self, settings: Settings, server: grpc.aio.Server) -> None:
        self._dir = tempfile.mkdtemp(prefix="a2a-broker-mcp-")  # mode 0700: the broker's user only
        target = f"unix:{self._dir}/grpc.sock"
        if server.add_insecure_port(target) == 0:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise BrokerError(f"could not open the MCP endpoint's loopback port {target}")
        self.mcp = BrokerMcp(Forwarding(target), _access_line if settings.access_log else None)
        self.manager = StreamableHTTPSessionManager(
            app=self.mcp.server,
            security_settings=_rebinding_guard(settings.http_address, bool(settings.tls_cert)),
        )
        self._endpoint = _Endpoint(StreamableHTTPASGIApp(self.manager))
        self._stopping = asyncio.Event()
        self._running: asyncio.Task[None] | None = None

    def routes(self) -> list[BaseRoute]:
        return [Route(PATH, endpoint=self._endpoint)]

    async def start(self) -> None:
        started = asyncio.Event()

        async def run() -> None:
            async with self.manager.run():
                started.set()
                await self._stopping.wait()

        self._running = asyncio.create_task(run())
        waiting = asyncio.ensure_future(started.wait())
        await asyncio.wait([waiting, self._running], return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiting.cancel()
            await self._running  # raises why it could not start
        self._endpoint.serving = True

    async def stop(self) -> None:
        """Refuse new requests, end the subscriptions' watches and every session (their streams
        and waits), and remove the loopback socket."""
        self._endpoint.serving = False
        await self.mcp.close()
        self._stopping.set()
        if self._running is not None:
            running, self._running = self._running, None
            await running
        shutil.rmtree(self._dir, ignore_errors=True)
