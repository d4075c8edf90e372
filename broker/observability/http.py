"""The HTTP listener, in the gRPC server's process and event loop: ``/metrics`` (Prometheus text
format), ``/healthz`` (the process answers), ``/readyz`` (storage takes a write: open, migrated,
not shutting down), and the web console (``/`` and its JSON API under ``/api/``,
broker/console/).

aiohttp: an asyncio server that runs on the loop the broker already has (``AppRunner`` and a
``TCPSite``), with no second server stack or thread; Starlette would need an ASGI server (uvicorn)
embedded beside grpc.aio for the same three routes.

Authentication: the health endpoints are open (load balancers and orchestrators probe them). With
``--auth token`` or ``jwt``, ``/metrics`` wants ``Authorization: Bearer <admin or viewer token>``, or the
token given by ``--metrics-token`` (for a Prometheus that should hold no admin token); with
``--auth none`` it is open, like the gRPC port.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..errors import BrokerError
from ..security.identity import OPERATOR_ROLES, bearer

if TYPE_CHECKING:
    from ..config import Settings
    from ..console import Console
    from ..security.interceptor import Authenticator
    from ..storage.base import Storage
    from .metrics import Metrics

log = logging.getLogger("broker.http")


class HttpListener:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        storage: Storage,
        authenticator: Authenticator | None,
        console: Console | None = None,
        routes: list[web.RouteDef] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.storage = storage
        self.authenticator = authenticator
        self.stopping = False
        self.port = 0
        self.console = console
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.add_routes(
            [
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/metrics", self.metrics_page),
                *(console.routes() if console is not None else []),
                *(routes or []),  # e.g. the A2A agent card (broker/gateway)
            ]
        )
        self.app = app

    async def start(self) -> int:
        host, _, port = self.settings.http_address.rpartition(":")
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]"), int(port), reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise BrokerError(f"--http-address {self.settings.http_address}: {exc.strerror or exc}") from None
        server = site._server  # the bound socket tells the port chosen for port 0
        sockets = getattr(server, "sockets", None)
        self.port = sockets[0].getsockname()[1] if sockets else int(port)
        log.info("http listening", extra={"address": f"{host}:{self.port}"})
        if self.console is not None:
            self.console.start()
        return self.port

    async def stop(self) -> None:
        if self.console is not None:
            await self.console.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        if self.stopping:
            return web.Response(status=503, text="shutting down\n")
        try:
            await self.storage.probe()
        except BrokerError as exc:
            return web.Response(status=503, text=f"storage: {exc.message}\n")
        return web.Response(text="ready\n")

    async def metrics_page(self, request: web.Request) -> web.Response:
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        await self.metrics.collector.refresh(self.settings.metrics_census_s)
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _refusal(self, request: web.Request) -> web.Response | None:
        """None when the caller may read /metrics, else the 401 or 403 to answer."""
        wanted = self.settings.metrics_token
        if self.authenticator is None and wanted is None:
            return None
        token = bearer(request.headers.get("Authorization", ""))
        if token is None:
            return web.Response(status=401, text="authorization: send 'Authorization: Bearer <token>'\n")
        if wanted is not None and hmac.compare_digest(token.encode(), wanted.encode()):
            return None
        if self.authenticator is None:
            return web.Response(status=401, text="authorization: not the metrics token\n")
        try:
            who = await self.authenticator.authenticate(token)
        except BrokerError as exc:
            return web.Response(status=401, text=f"{exc.message}\n")
        if who.role not in OPERATOR_ROLES:
            return web.Response(
                status=403, text=f"{who.subject!r} ({who.role.value}) may not read /metrics\n"
            )
        return None
