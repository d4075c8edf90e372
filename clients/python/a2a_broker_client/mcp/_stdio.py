"""The stdio transport: the process a host launches (``a2a-broker mcp``), one client for all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.stdio import stdio_server

from ..client import BrokerClient
from ._server import BrokerMcp, Caller, user_agent

ChannelOptions = Sequence[tuple[str, Any]]


class SharedClient:
    """One client for every request (over stdio there is one host, with the command's
    credentials), made on first use, once the MCP client's name is known (its user agent)."""

    hint = (
        "Give the token to the MCP server: `a2a-broker mcp --token ...` or A2A_BROKER_TOKEN in its "
        "environment (the host's configuration)."
    )

    def __init__(self, make: Callable[[ChannelOptions], BrokerClient]) -> None:
        self._make = make
        self._client: BrokerClient | None = None

    @asynccontextmanager
    async def client(self, caller: Caller) -> AsyncIterator[BrokerClient]:
        if self._client is None:
            self._client = self._make([("grpc.primary_user_agent", user_agent(caller))])
        yield self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


async def serve_stdio(make: Callable[[ChannelOptions], BrokerClient]) -> None:
    """Serve MCP on stdin/stdout until the host closes them. ``make(channel_options)`` makes the
    client to the broker (with the caller's address and credentials)."""
    connector = SharedClient(make)
    app = BrokerMcp(connector)
    try:
        async with stdio_server() as (read, write):
            await app.server.run(read, write, app.server.create_initialization_options())
    finally:
        await app.close()
        await connector.close()
