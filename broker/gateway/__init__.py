"""The A2A gateway: the broker speaks the Agent2Agent protocol (v1.0) in its three bindings.

One request handler (``handler.BrokerA2AHandler``: the task queue behind A2A's operations) is
served by a2a-sdk's own dispatchers: ``lf.a2a.v1.A2AService`` on the broker's gRPC port
(``GrpcHandler``), and JSON-RPC 2.0 and HTTP+JSON on the HTTP listener with the agent cards
(``http.py``). ``tracker.py`` keeps the index ``ListTasks`` reads and queues push notifications,
which ``push.py`` POSTs. Beside the servicers: a second wire protocol over the same core. Needs
the ``[a2a]`` extra (a2a-sdk); without it the broker starts without the gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BrokerError

if TYPE_CHECKING:
    import grpc
    from prometheus_client.registry import Collector
    from starlette.routing import BaseRoute

    from ..config import Settings
    from ..core.registry import Registry
    from ..core.taskqueue import TaskQueue
    from ..security.http import HttpGate
    from .card import Card
    from .handler import BrokerA2AHandler
    from .push import PushSender

SERVICE_NAME = "lf.a2a.v1.A2AService"
LEGACY_SERVICE_NAME = "a2a.v1.A2AService"  # A2A v0.3's gRPC service (a2a-sdk's compatibility layer)


def available() -> bool:
    try:
        import a2a.server.request_handlers.grpc_handler  # noqa: F401
        import sse_starlette  # noqa: F401
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


class Gateway:
    """The gateway's parts for one broker: its handler, cards, tracker and push sender."""

    def __init__(self, tasks: TaskQueue, registry: Registry, settings: Settings, grpc_address: str) -> None:
        from .card import Card, Where
        from .handler import BrokerA2AHandler
        from .push import PushSender, UrlPolicy

        policy = UrlPolicy(settings.a2a_push_allow)
        self.card: Card = Card(settings, registry, Where(None, grpc_address))
        self.sender: PushSender = PushSender(tasks.storage, settings, policy)
        self.handler: BrokerA2AHandler = BrokerA2AHandler(
            tasks, registry, self.card, settings.a2a_default_skill, policy, self.sender.wake
        )

    def serve_grpc(self, server: grpc.aio.Server) -> None:
        from a2a.compat.v0_3 import a2a_v0_3_pb2_grpc
        from a2a.compat.v0_3.grpc_handler import CompatGrpcHandler
        from a2a.server.request_handlers.grpc_handler import GrpcHandler
        from a2a.types import a2a_pb2_grpc

        a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(self.handler), server)
        a2a_v0_3_pb2_grpc.add_A2AServiceServicer_to_server(CompatGrpcHandler(self.handler), server)

    def routes(self, gate: HttpGate) -> list[BaseRoute]:
        from .http import A2ARoutes

        return A2ARoutes(self.handler, self.card, gate).routes()

    def listening(self, http_base: str | None) -> None:
        """The HTTP listener's base URL (``scheme://host:port``) for the cards read over gRPC."""
        from .card import Where

        self.card.where = Where(http_base, self.card.where.grpc)

    def collector(self) -> Collector:
        from .push import PushCollector

        return PushCollector(self.sender.stats)

    async def start(self) -> None:
        await self.handler.tracker.start()
        self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()
        await self.handler.tracker.stop()
