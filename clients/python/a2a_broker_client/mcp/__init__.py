"""The broker as an MCP server: tools, resources and prompts for LLM hosts (``pip install
'a2a-broker-client[mcp]'``, the official MCP Python SDK).

Written once over :class:`~a2a_broker_client.BrokerClient`, served two ways:

- stdio, ``a2a-broker mcp --address HOST:PORT``: a process a host launches, with one client (the
  command's ``--token``, ``--ca``...) — :func:`serve_stdio`;
- streamable HTTP at ``/mcp`` on the broker's own HTTP listener (``broker/mcp``), each request's
  calls made with the bearer token of its HTTP request.

Tools: list_capabilities, list_agents, submit_task, submit_graph, wait_for_task, get_task,
list_tasks, cancel_task, retry_task, send_message, read_conversation, create_session, get_session,
close_session. Resources: ``task://{id}``, ``session://{id}``, ``agents://`` (subscribable).
Prompts: delegate, summarise_session.
"""

from __future__ import annotations

from ._server import AGENTS_URI, BrokerMcp, Caller, Connector, Observer, caller_of, user_agent
from ._stdio import SharedClient, serve_stdio
from ._tools import TOOLS

__all__ = [
    "AGENTS_URI",
    "TOOLS",
    "BrokerMcp",
    "Caller",
    "Connector",
    "Observer",
    "SharedClient",
    "caller_of",
    "serve_stdio",
    "user_agent",
]
