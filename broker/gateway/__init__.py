"""The A2A gateway: the broker speaks the Agent2Agent protocol (v1.0, gRPC binding).

``lf.a2a.v1.A2AService`` is served on the broker's gRPC port by a2a-sdk's ``GrpcHandler`` over
``handler.BrokerA2AHandler`` (the task queue behind A2A's calls), and the agent card
(``card.Card``) at ``/.well-known/agent-card.json`` on the HTTP listener. Beside the servicers: a
second wire protocol over the same core. Needs the ``[a2a]`` extra (a2a-sdk); without it the
broker starts without the gateway.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..errors import BrokerError

if TYPE_CHECKING:
    import grpc
    from aiohttp import web

    from ..config import Settings
    from ..core.registry import Registry
    from ..core.taskqueue import TaskQueue

SERVICE_NAME = "lf.a2a.v1.A2AService"


def available() -> bool:
    try:
        import a2a.server.request_handlers.grpc_handler  # noqa: F401
    except ImportError:
        return False
    return True


def wanted(setting: str) -> bool:
    """Whether to serve A2A (``--a2a-gateway``): on, off, or auto (when a2a-sdk is installed)."""
    if setting == "off":
        return False
    if available():
        return True
    if setting == "on":
        raise BrokerError("--a2a-gateway on needs the [a2a] extra: pip install 'a2a-broker[a2a]'")
    return False


def add_gateway(
    server: grpc.aio.Server, tasks: TaskQueue, registry: Registry, settings: Settings, address: str
) -> list[web.RouteDef]:
    """Serve A2A on ``server``; the HTTP routes of the agent card."""
    from a2a.server.request_handlers.grpc_handler import GrpcHandler
    from a2a.types import a2a_pb2_grpc
    from aiohttp import web
    from google.protobuf import json_format

    from .card import WELL_KNOWN_PATH, Card
    from .handler import BrokerA2AHandler

    card = Card(settings, registry, address)
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(
        GrpcHandler(BrokerA2AHandler(tasks, registry, card)), server
    )

    async def card_page(request: web.Request) -> web.Response:
        body = json_format.MessageToDict(await card.build())
        return web.Response(text=json.dumps(body), content_type="application/json")

    return [web.get(WELL_KNOWN_PATH, card_page)]
