"""``a2a-broker mcp``: the broker's tools for an LLM host, as an MCP server on stdin/stdout.

A host (Claude Desktop, Claude Code, Cursor, an agents SDK) launches it as a subprocess; it talks
to a running broker over gRPC with the usual connection options (``--address``, ``--token``,
``--ca``...), so the token's role and quotas apply to every tool call. Needs the MCP SDK
(``pip install 'a2a-broker-client[mcp]'``; ``make`` installs it). Logs go to stderr: stdout is the
protocol's.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import loop as event_loop
from ..client import BrokerClient
from ..security import Security
from ._common import CLI_RETRY, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, connection, error, resolve_address


def add(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "mcp",
        parents=[common],
        help="serve the broker's tools to an LLM host (MCP over stdio)",
        description="Serve the Model Context Protocol on stdin/stdout for an LLM host that launches "
        "MCP servers as subprocesses: tools to submit tasks to the broker's agents, wait for them, "
        "read results, send messages and manage sessions, with the credentials given here.",
    )
    p.set_defaults(func=_serve)


def _serve(ns: argparse.Namespace) -> int:
    try:
        from ..mcp import serve_stdio
    except ImportError:
        error("the mcp command needs the MCP SDK: pip install 'a2a-broker-client[mcp]'")
        return EXIT_USAGE
    connection(ns)
    address = resolve_address(ns)
    if address is None:
        return EXIT_USAGE

    def make(options: Any) -> BrokerClient:
        return BrokerClient(
            address,
            retry=CLI_RETRY,
            channel_options=options,
            token=ns.token,
            ca=ns.ca,
            client_cert=ns.client_cert,
            client_key=ns.client_key,
        )

    try:  # the options' problems (a certificate without its key) now, not at the first call
        Security.resolve(ns.token, None, ns.ca, ns.client_cert, ns.client_key)
    except ValueError as exc:
        error(str(exc))
        return EXIT_USAGE
    try:
        event_loop.run(serve_stdio(make))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK
