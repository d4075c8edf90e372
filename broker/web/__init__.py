"""The HTTP listener: every HTTP surface of the broker in one ASGI application (Starlette),
served by uvicorn on the broker's own event loop beside grpc.aio.

What it serves is assembled in ``app.py`` from the layers that own each part: the health checks
and ``/metrics`` (``observability``), the web console (``console``), the A2A agent cards and the
JSON-RPC and HTTP+JSON bindings (``gateway``). Why Starlette: a2a-sdk ships its JSON-RPC and REST
dispatchers as Starlette routes, and the MCP SDK's streamable HTTP transport is ASGI too; one
ASGI stack serves all of them as their authors wrote them, with no bridge.
"""

from __future__ import annotations

from .listener import HttpListener

__all__ = ["HttpListener"]
