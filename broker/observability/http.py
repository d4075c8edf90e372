"""The operator's HTTP routes: ``/metrics`` (Prometheus text format), ``/healthz`` (the process
answers) and ``/readyz`` (storage takes a write: open, migrated, not shutting down), served by the
broker's HTTP listener (``broker/web``).

Authentication: the health endpoints are open (load balancers and orchestrators probe them). With
``--auth token`` or ``jwt``, ``/metrics`` wants ``Authorization: Bearer <admin or viewer token>``, or the
token given by ``--metrics-token`` (for a Prometheus that should hold no admin token); with
``--auth none`` it is open, like the gRPC port.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..errors import BrokerError
from ..security.identity import OPERATOR_ROLES, bearer

if TYPE_CHECKING:
    from ..config import Settings
    from ..security.interceptor import Authenticator
    from ..storage.base import Storage
    from .metrics import Metrics


class OperatorRoutes:
    def __init__(
        self, settings: Settings, metrics: Metrics, storage: Storage, authenticator: Authenticator | None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.storage = storage
        self.authenticator = authenticator
        self.stopping = False  # /readyz answers 503 once the broker shuts down

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics_page, methods=["GET"]),
        ]

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(self, request: Request) -> Response:
        if self.stopping:
            return PlainTextResponse("shutting down\n", status_code=503)
        try:
            await self.storage.probe()
        except BrokerError as exc:
            return PlainTextResponse(f"storage: {exc.message}\n", status_code=503)
        return PlainTextResponse("ready\n")

    async def metrics_page(self, request: Request) -> Response:
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        await self.metrics.collector.refresh(self.settings.metrics_census_s)
        body = generate_latest(self.metrics.registry)
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _refusal(self, request: Request) -> Response | None:
        """None when the caller may read /metrics, else the 401 or 403 to answer."""
        wanted = self.settings.metrics_token
        if self.authenticator is None and wanted is None:
            return None
        token = bearer(request.headers.get("Authorization", ""))
        if token is None:
            return PlainTextResponse("authorization: send 'Authorization: Bearer <token>'\n", status_code=401)
        if wanted is not None and hmac.compare_digest(token.encode(), wanted.encode()):
            return None
        if self.authenticator is None:
            return PlainTextResponse("authorization: not the metrics token\n", status_code=401)
        try:
            who = await self.authenticator.authenticate(token)
        except BrokerError as exc:
            return PlainTextResponse(f"{exc.message}\n", status_code=401)
        if who.role not in OPERATOR_ROLES:
            return PlainTextResponse(
                f"{who.subject!r} ({who.role.value}) may not read /metrics\n", status_code=403
            )
        return None
