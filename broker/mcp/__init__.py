"""The broker as an MCP server over streamable HTTP: ``/mcp`` on the HTTP listener.

The tools, resources and prompts are the Python client's (``a2a_broker_client.mcp``, also served
over stdio by ``a2a-broker mcp``); here they are mounted on the broker's HTTP listener, each call
made over gRPC to this broker itself with the bearer token of the HTTP request that asked for it,
so that the token's identity, role, policy and quotas apply exactly as to any gRPC caller (no
token: an unauthenticated caller). Beside the gateway: a client of the broker's own API, it knows
nothing of the core. Needs the ``[mcp]`` extra (the MCP SDK) and the Python client; without them
the broker starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BrokerError
from .path import PATH

if TYPE_CHECKING:
    from .endpoint import McpEndpoint

__all__ = ["PATH", "McpEndpoint", "available", "wanted"]


def available() -> bool:
    try:
        import a2a_broker_client.mcp  # noqa: F401
        import mcp.server.streamable_http_manager  # noqa: F401
    except ImportError:
        return False
    return True


def wanted(setting: str, http_address: str) -> bool:
    """Whether to serve MCP (``--mcp``): on, off, or auto (when the MCP SDK and the Python client
    are installed and there is an HTTP listener)."""
    if setting == "off":
        return False
    if setting == "on":
        if http_address == "off":
            raise BrokerError("--mcp on serves MCP on the HTTP listener: set --http-address too")
        if not available():
            raise BrokerError(
                "--mcp on needs the [mcp] extra and the Python client: pip install 'a2a-broker[mcp]' "
                "'a2a-broker-client[mcp]'"
            )
        return True
    return http_address != "off" and available()


def __getattr__(name: str) -> object:
    if name == "McpEndpoint":  # imports the MCP SDK: only when asked for
        from .endpoint import McpEndpoint

        return McpEndpoint
    raise AttributeError(name)
