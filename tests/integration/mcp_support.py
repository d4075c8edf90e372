"""Helpers of the MCP tests: the worker in its own process, and the MCP SDK's own client connected
to the broker over streamable HTTP (``/mcp``) or over stdio (``a2a-broker mcp`` as a subprocess)."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp_types as types
from a2a_broker_client import AgentStatus, BrokerClient, NotFoundError
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from broker.server import Broker
from tests.conftest import ROOT, eventually

CLIENT_NAME = "mcp-tests"
WORKER = "worker-1"
TOOL_NAMES = {
    "list_capabilities",
    "list_agents",
    "submit_task",
    "submit_graph",
    "wait_for_task",
    "get_task",
    "list_tasks",
    "cancel_task",
    "retry_task",
    "send_message",
    "read_conversation",
    "create_session",
    "get_session",
    "close_session",
}
# For the tests that speak HTTP to /mcp by hand: a 2025-era initialize request and its headers.
RAW_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
RAW_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}


@asynccontextmanager
async def worker_process(
    address: str, agent_id: str = WORKER, token: str | None = None, admin_token: str | None = None
) -> AsyncIterator[str]:
    """``tests/integration/mcp_worker.py`` in its own process, online before this yields."""
    args = [
        sys.executable,
        "-m",
        "tests.integration.mcp_worker",
        address,
        agent_id,
        *([token] if token else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(*args, env=env, cwd=ROOT)
    try:
        async with BrokerClient(address, token=admin_token) as c:

            async def online() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"the worker exited with {proc.returncode}")
                try:
                    return (await c.get_agent(agent_id)).status is AgentStatus.AVAILABLE
                except NotFoundError:
                    return False

            await eventually(online, timeout=20, what="the worker online")
        yield agent_id
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


def _info(name: str) -> types.Implementation:
    return types.Implementation(name=name, version="1.0")


@asynccontextmanager
async def http_session(
    broker: Broker,
    token: str | None = None,
    *,
    mode: str = "auto",
    name: str = CLIENT_NAME,
    verify: ssl.SSLContext | None = None,
    **kw: Any,
) -> AsyncIterator[Client]:
    """The SDK's client on the broker's ``/mcp`` (``mode="legacy"``: the 2025 handshake era;
    ``verify``: the TLS context for an https listener)."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    tls: dict[str, Any] = {} if verify is None else {"verify": verify}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300), **tls) as http:
        transport = streamable_http_client(f"{broker.http_url}/mcp", http_client=http)
        async with Client(transport, mode=mode, client_info=_info(name), **kw) as client:
            yield client


@asynccontextmanager
async def stdio_session(
    broker: Broker, token: str | None = None, *, mode: str = "auto", name: str = CLIENT_NAME, **kw: Any
) -> AsyncIterator[Client]:
    """The SDK's client launching ``a2a-broker mcp --address ... [--token ...]`` as a host would."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "broker", "mcp", "--address", broker.address, *(["--token", token] if token else [])],
        env={"PYTHONPATH": str(ROOT), **kw.pop("env", {})},
        cwd=ROOT,
    )
    async with Client(params, mode=mode, client_info=_info(name), **kw) as client:
        yield client


SESSIONS = {"http": http_session, "stdio": stdio_session}


def open_watches(broker: Broker) -> float:
    """The broker's open Watch streams (its /metrics gauge)."""
    assert broker.metrics is not None
    return broker.metrics.registry.get_sample_value("a2a_open_streams", {"grpc_method": "Watch"}) or 0.0


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def call(client: Client, tool: str, **arguments: Any) -> types.CallToolResult:
    return await client.call_tool(tool, arguments)


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured content of a tool call that must succeed."""
    result = await call(client, tool, **arguments)
    assert not result.is_error, f"{tool} failed: {text(result)}"
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    """The text of a tool call that must fail (a tool error, not a protocol error)."""
    result = await call(client, tool, **arguments)
    assert result.is_error, f"{tool} should have failed: {text(result)}"
    return text(result)


async def submit(client: Client, op: str, **payload: Any) -> str:
    data = await ok(
        client, "submit_task", title=f"{op} task", capability="text", payload={"op": op, **payload}
    )
    return str(data["task"]["task_id"])


async def until_running(client: Client, task_id: str) -> None:
    async def running() -> bool:
        return (await ok(client, "get_task", task_id=task_id, history=False))["task"]["status"] == "running"

    await eventually(running, timeout=15, what=f"task {task_id} running")
