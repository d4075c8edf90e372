"""The A2A HTTP bindings on the broker's HTTP listener: JSON-RPC 2.0 and HTTP+JSON (REST), each
through a2a-sdk's own dispatcher over the one ``BrokerA2AHandler`` the gRPC binding uses, and the
agent cards.

Paths (see ``card.py`` for what each agent is):

- the broker's own agent: its card at ``/.well-known/agent-card.json``, JSON-RPC at ``POST /``,
  HTTP+JSON at ``/message:send``, ``/tasks/{id}`` ... (the specification's paths at the root);
- one agent per skill and per named agent at ``/a2a/<skill>/`` and ``/a2a/@<agent id>/``: its card
  at ``.../.well-known/agent-card.json``, JSON-RPC at ``POST .../``, HTTP+JSON under it;
- A2A v0.3 clients: the same JSON-RPC endpoints take v0.3 method names, HTTP+JSON v0.3 is under
  ``/v1/``, and the cards carry v0.3's ``url`` and ``preferredTransport`` (a2a-sdk's compatibility
  layer).

Every call is admitted as its gRPC twin is (``security.http.HttpGate``: bearer token or client
certificate, the policy's roles, quotas); the caller and the agent addressed reach the handler
through context variables (``identity.CALLER``, ``handler.TARGET``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes, create_rest_routes
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import BrokerError, PermissionDenied, ResourceExhausted, Unauthenticated
from ..security.http import HttpGate
from ..security.identity import CALLER
from ..security.policy import A2A_POLICY_KEY
from ..security.streams import Guard
from .card import TARGET_PREFIX, WELL_KNOWN_PATH, Card, Where
from .handler import TARGET, BrokerA2AHandler

Endpoint = Callable[[Request], Awaitable[Response]]
log = logging.getLogger("broker.a2a")
VERSION = "a2a-version"


class VersionRead(DefaultServerCallContextBuilder):
    """The A2A version of a request: its ``A2A-Version`` header, else its ``A2A-Version`` query
    parameter (the specification allows both), else 1.0. The specification reads a request
    without either as 0.3; here the endpoints a version-less request reaches are 1.0's alone (0.3
    clients call their own JSON-RPC method names and HTTP+JSON paths under /v1/, which a2a-sdk's
    compatibility layer serves), so reading it as 0.3 could only refuse it. A request that says
    0.3 on a 1.0 method is still refused with VersionNotSupportedError."""

    def build(self, request: Request) -> ServerCallContext:
        ctx = super().build(request)
        headers = ctx.state.setdefault("headers", {})
        if not headers.get(VERSION):
            headers[VERSION] = request.query_params.get("A2A-Version") or "1.0"
        return ctx


def _http_status(exc: BrokerError) -> int:
    if isinstance(exc, Unauthenticated):
        return 401
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, ResourceExhausted):
        return 429
    return 503


def _refusal(exc: BrokerError) -> Response:
    status = _http_status(exc)
    names = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return JSONResponse(
        {"error": {"code": status, "status": names[status], "message": exc.message}},
        status_code=status,
        headers=headers,
    )


def peercert(request: Request) -> dict[str, Any] | None:
    """The verified client certificate of the connection (``web.listener`` puts it in the scope)."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    cert = tls.get("peercert")
    return cert if isinstance(cert, dict) else None


def where_of(request: Request, card: Card) -> Where:
    """The card's URLs as this caller reached the broker (its Host header)."""
    base = f"{request.url.scheme}://{request.url.netloc}"
    return Where(base, card.where.grpc)


class _Guarded:
    """An endpoint as an ASGI app that admits its caller first, and ends the request (a stream of
    server-sent events too) when the caller's token is revoked or expires. (A class: Starlette
    serves an object as an ASGI app, a function as a request -> response endpoint.)"""

    def __init__(self, gate: HttpGate, endpoint: Endpoint) -> None:
        self.gate = gate
        self.inner = request_response(endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self.gate
        request = Request(scope, receive)
        try:
            who = await gate.admit(
                A2A_POLICY_KEY,
                request.headers.get("authorization"),
                peercert(request),
                int(request.headers.get("content-length") or 0),
            )
        except BrokerError as exc:
            await _refusal(exc)(scope, receive, send)
            return
        CALLER.set(who)  # each request runs in its own task: nothing leaks to another
        TARGET.set(unquote(request.path_params.get("tenant", "")))
        if who is None or gate.streams is None:
            await self.inner(scope, receive, send)
            return
        guard = Guard()
        guard.inside = True  # whatever it is doing, the request may be cut short
        gate.streams.opened(who, guard)
        try:
            await self.inner(scope, receive, send)
        except asyncio.CancelledError:
            if guard.reason is None:
                raise
            guard.task.uncancel()  # the credentials were withdrawn: the request ends here
            log.info("a2a request ended: %s", guard.reason, extra={"subject": who.subject})
        finally:
            gate.streams.closed(who, guard)


class A2ARoutes:
    def __init__(self, handler: BrokerA2AHandler, card: Card, gate: HttpGate) -> None:
        self.handler = handler
        self.card = card
        self.gate = gate

    def _guard(self, endpoint: Endpoint) -> ASGIApp:
        return _Guarded(self.gate, endpoint)

    def _bindings(self) -> list[BaseRoute]:
        """JSON-RPC at ``/`` and HTTP+JSON below it, each endpoint guarded."""
        found = [
            *create_jsonrpc_routes(self.handler, "/", VersionRead(), enable_v0_3_compat=True),
            *create_rest_routes(self.handler, VersionRead(), enable_v0_3_compat=True),
        ]
        out: list[BaseRoute] = []
        for r in found:
            if isinstance(r, Route):  # a2a-sdk's own "/{tenant}" mount is left out: /a2a/<name>/ is ours
                out.append(Route(r.path, self._guard(r.endpoint), methods=list(r.methods or ())))
        return out

    def routes(self) -> list[BaseRoute]:
        bindings = self._bindings()
        return [
            Route(WELL_KNOWN_PATH, self.broker_card, methods=["GET"]),
            Mount(
                TARGET_PREFIX + "{tenant}",
                routes=[Route(WELL_KNOWN_PATH, self.target_card, methods=["GET"]), *bindings],
            ),
            *bindings,
        ]

    async def broker_card(self, request: Request) -> Response:
        card = await self.card.build(where_of(request, self.card))
        return JSONResponse(agent_card_to_dict(card))

    async def target_card(self, request: Request) -> Response:
        target = unquote(request.path_params["tenant"])
        card = await self.card.build_for(target, where_of(request, self.card))
        if card is None:
            return JSONResponse(
                {
                    "error": {
                        "code": 404,
                        "status": "NOT_FOUND",
                        "message": f"no agent offers {target!r} through A2A",
                    }
                },
                status_code=404,
            )
        return JSONResponse(agent_card_to_dict(card))
