"""The broker's MCP resources and prompts, with the MCP SDK's own client over streamable HTTP and
stdio: reading ``task://``, ``session://`` and ``agents://``, and subscribing to a task so that the
host is told when it changes, in both protocol eras (2026-07-28: ``subscriptions/listen``; 2025:
``resources/subscribe`` on the initialize handshake)."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator
from typing import Any

import mcp_types as types
import pytest
from a2a_broker_client import BrokerClient
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import ResourceUpdated

from broker.server import Broker
from tests.conftest import eventually
from tests.integration.mcp_support import (
    SESSIONS,
    WORKER,
    ok,
    open_watches,
    submit,
    until_running,
    worker_process,
)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"http_address": "127.0.0.1:0"}


@pytest.fixture
async def worker(broker: Broker) -> AsyncIterator[str]:
    async with worker_process(broker.address) as agent_id:
        yield agent_id


@pytest.fixture
async def admin(broker: Broker) -> AsyncIterator[BrokerClient]:
    async with BrokerClient(broker.address) as c:
        await c.register("tester")
        yield c


async def read(mcp: Client, uri: str) -> Any:
    result = await mcp.read_resource(uri)
    assert result.contents[0].mime_type == "application/json"
    return json.loads(result.contents[0].text)


async def subscribe_2025(mcp: Client, uri: str) -> None:
    with warnings.catch_warnings():  # the SDK deprecates it for 2026 servers; 2025 hosts use it
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        await mcp.subscribe_resource(uri)


@pytest.mark.parametrize("transport", ["http", "stdio"])
@pytest.mark.parametrize("era", ["2026", "2025"])
async def test_a_subscribed_task_resource_tells_of_its_change(transport, era, broker, worker, admin):
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(message.params.uri)

    mode = "auto" if era == "2026" else "legacy"
    async with SESSIONS[transport](broker, mode=mode, message_handler=on_message) as mcp:
        task_id = await submit(mcp, "gate")
        await until_running(mcp, task_id)
        uri = f"task://{task_id}"
        before = await read(mcp, uri)
        assert before["status"] == "running" and before["history"][-1]["to"] == "running"
        if era == "2026":
            async with mcp.listen(resource_subscriptions=[uri]) as sub:
                await admin.send("tester", WORKER, {"release": task_id})
                event = await asyncio.wait_for(anext(sub), 15)
                assert event == ResourceUpdated(uri=uri)
        else:
            await subscribe_2025(mcp, uri)
            await admin.send("tester", WORKER, {"release": task_id})

            async def told() -> bool:
                return uri in updates

            await eventually(told, timeout=15, what="notifications/resources/updated")
        after = await read(mcp, uri)
        assert after["status"] == "completed" and after["result"] == {"released": True}


@pytest.mark.parametrize("era", ["2026", "2025"])
async def test_a_subscription_ends_with_its_stream_or_session(era, broker, worker):
    """The broker's Watch behind a subscription is closed when the host stops listening (2026) or
    its session ends (2025), and when the task can change no more."""
    async with SESSIONS["http"](broker, mode="auto" if era == "2026" else "legacy") as mcp:
        held = await submit(mcp, "hold")
        if era == "2026":
            async with mcp.listen(resource_subscriptions=[f"task://{held}"]):
                assert open_watches(broker) == 1
        else:
            await subscribe_2025(mcp, f"task://{held}")
            assert open_watches(broker) == 1
            done = await submit(mcp, "upper", text="x")
            await subscribe_2025(mcp, f"task://{done}")
            await ok(mcp, "wait_for_task", task_id=done, timeout_s=30)

            async def one_left() -> bool:
                return open_watches(broker) == 1  # the finished task's watch ended by itself

            await eventually(one_left, what="the finished task's watch to end")

    async def closed() -> bool:
        return open_watches(broker) == 0

    await eventually(closed, what="the subscription's watch to be closed")


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_resources_list_and_read_and_prompts(transport, broker, worker, admin):
    await admin.register(
        "translator", capabilities=["translate"], capability_descriptions={"translate": "fr<->en"}
    )
    async with SESSIONS[transport](broker) as mcp:
        assert [r.uri for r in (await mcp.list_resources()).resources] == ["agents://"]
        templates = {t.uri_template for t in (await mcp.list_resource_templates()).resource_templates}
        assert templates == {"task://{task_id}", "session://{session_id}"}
        agents = {a["agent_id"]: a for a in (await read(mcp, "agents://"))["agents"]}
        assert agents[WORKER]["capabilities"] == ["text"] and agents[WORKER]["free_capacity"] == 8

        sid = (await ok(mcp, "create_session", name="research"))["session"]["session_id"]
        task = await ok(mcp, "submit_task", title="look it up", capability="text", session_id=sid,
                        payload={"op": "upper", "text": "found"})  # fmt: skip
        await ok(mcp, "wait_for_task", task_id=task["task"]["task_id"], timeout_s=30)
        session = await read(mcp, f"session://{sid}")
        assert session["session"]["name"] == "research"
        assert [(t["title"], t["status"], t["result"]) for t in session["tasks"]] == [
            ("look it up", "completed", {"text": "FOUND"})
        ]
        with pytest.raises(MCPError, match="task://<task id>"):
            await mcp.read_resource("file:///etc/passwd")
        with pytest.raises(MCPError, match="NOT_FOUND"):
            await mcp.read_resource("task://t-nope")

        prompts = {p.name: p for p in (await mcp.list_prompts()).prompts}
        assert set(prompts) == {"delegate", "summarise_session"}
        delegate = await mcp.get_prompt("delegate", {"request": "translate 'bonjour'"})
        body = delegate.messages[0].content.text
        assert "translate 'bonjour'" in body and '"capability": "translate"' in body and "fr<->en" in body
        summary = await mcp.get_prompt("summarise_session", {"session_id": sid})
        assert (
            "look it up" in summary.messages[0].content.text and "FOUND" in summary.messages[0].content.text
        )
        with pytest.raises(MCPError, match="argument 'session_id': required"):
            await mcp.get_prompt("summarise_session", {})
