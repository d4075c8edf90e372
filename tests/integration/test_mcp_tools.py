"""The broker's MCP tools, driven by the MCP SDK's own client over streamable HTTP (``/mcp`` on the
broker's HTTP listener) and over stdio (``a2a-broker mcp``), against a real broker and a worker
in its own process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import pytest
from a2a_broker_client import BrokerClient

from broker.server import Broker
from tests.conftest import eventually
from tests.integration.mcp_support import (
    CLIENT_NAME,
    SESSIONS,
    TOOL_NAMES,
    WORKER,
    call,
    ok,
    refused,
    submit,
    text,
    until_running,
    worker_process,
)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"http_address": "127.0.0.1:0", "access_log": True}


@pytest.fixture
async def worker(broker: Broker) -> AsyncIterator[str]:
    async with worker_process(broker.address) as agent_id:
        yield agent_id


@pytest.fixture(params=["http", "stdio"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connect(transport: str, broker: Broker) -> Callable[..., Any]:
    return partial(SESSIONS[transport], broker)


@pytest.fixture
async def admin(broker: Broker) -> AsyncIterator[BrokerClient]:
    async with BrokerClient(broker.address) as c:
        yield c


async def test_tools_are_listed_with_schemas_and_annotations(connect, worker, admin):
    await admin.register(
        "translator", capabilities=["translate"], capability_descriptions={"translate": "fr<->en"}
    )
    async with connect() as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert set(tools) == TOOL_NAMES
        for t in tools.values():
            assert t.description and t.input_schema["type"] == "object", t.name
            assert t.input_schema.get("additionalProperties") is False, t.name
        submit_schema = tools["submit_task"].input_schema
        assert submit_schema["required"] == ["title"]
        assert {
            "title",
            "capability",
            "payload",
            "priority",
            "deadline",
            "session_id",
            "parent_id",
            "depends_on",
        } <= set(submit_schema["properties"])
        assert all(p.get("description") for p in submit_schema["properties"].values())
        node = tools["submit_graph"].input_schema["properties"]["nodes"]["items"]
        assert {"key", "title", "depends_on", "parent"} <= set(node["properties"]) and "$ref" not in str(node)
        read_only = {n for n, t in tools.items() if t.annotations and t.annotations.read_only_hint}
        assert read_only == {
            "list_capabilities", "list_agents", "wait_for_task", "get_task", "list_tasks",
            "read_conversation", "get_session",
        }  # fmt: skip
        for name in TOOL_NAMES - read_only:
            ann = tools[name].annotations
            assert ann is not None and ann.read_only_hint is False, name
        assert tools["cancel_task"].annotations.destructive_hint is True
        assert tools["submit_task"].annotations.destructive_hint is False
        assert tools["submit_task"].annotations.idempotent_hint is False
        assert tools["close_session"].annotations.idempotent_hint is True

        caps = {c["capability"]: c for c in (await ok(mcp, "list_capabilities"))["capabilities"]}
        assert caps["text"] == {
            "capability": "text",
            "description": "",
            "agents": 1,
            "online": 1,
            "free_capacity": 8,
        }
        assert caps["translate"]["description"] == "fr<->en" and caps["translate"]["online"] == 1
        agents = {a["agent_id"]: a for a in (await ok(mcp, "list_agents", capability="text"))["agents"]}
        assert set(agents) == {WORKER} and agents[WORKER]["status"] == "available"


@pytest.mark.parametrize("era", ["2026", "2025"])
async def test_submit_and_wait_reports_progress_then_the_result(connect, era, worker, admin):
    await admin.register("tester")
    async with connect(mode="auto" if era == "2026" else "legacy") as mcp:
        task_id = await submit(mcp, "gate")
        notes: list[str] = []

        async def progress(done: float, total: float | None, message: str | None) -> None:
            notes.append(message or "")

        waiting = asyncio.ensure_future(
            mcp.call_tool("wait_for_task", {"task_id": task_id, "timeout_s": 60}, progress_callback=progress)
        )

        async def running_noted() -> bool:
            return any(f"running on {WORKER}" in n for n in notes)

        await eventually(running_noted, timeout=15, what="a progress notification of the running task")
        assert not waiting.done()
        await admin.send("tester", WORKER, {"release": task_id})
        result = await asyncio.wait_for(waiting, 15)
        assert not result.is_error, text(result)
        assert result.structured_content["task"]["result"] == {"released": True}
        assert result.structured_content["finished"] is True
        assert notes[-1].endswith(": completed")
        assert 'Result: {"released": true}' in text(result)  # in the text too: hosts show the model that

        done = await ok(mcp, "get_task", task_id=task_id)
        assert [h["to"] for h in done["task"]["history"]][-2:] == ["running", "completed"]
        upper = await submit(mcp, "upper", text="shout")
        waited = await ok(mcp, "wait_for_task", task_id=upper, timeout_s=30)
        assert waited["task"]["result"] == {"text": "SHOUT"}


async def test_wait_is_bounded_and_answers_the_state_so_far(connect, broker):
    async with connect() as mcp:
        task_id = await submit(mcp, "upper", text="nobody runs me")  # no worker: it stays ready
        result = await asyncio.wait_for(call(mcp, "wait_for_task", task_id=task_id, timeout_s=0.5), 15)
        assert not result.is_error
        assert result.structured_content["finished"] is False
        assert result.structured_content["task"]["status"] == "ready"
        assert "Call wait_for_task again" in text(result)


async def test_a_failing_task_comes_back_as_a_tool_error_with_its_error(connect, worker):
    async with connect() as mcp:
        task_id = await submit(mcp, "fail", error="no such city: Atlantis")
        result = await call(mcp, "wait_for_task", task_id=task_id, timeout_s=30)
        assert result.is_error
        assert f"Task {task_id} failed: " in text(result) and "no such city: Atlantis" in text(result)
        assert result.structured_content["task"]["status"] == "failed"

        retried = await ok(mcp, "retry_task", task_id=task_id)
        assert retried["task"]["task_id"] != task_id and retried["task"]["title"] == "fail task"


async def test_cancel_stops_the_running_task(connect, worker, admin):
    async with connect() as mcp:
        task_id = await submit(mcp, "hold")
        await until_running(mcp, task_id)
        cancelled = await ok(mcp, "cancel_task", task_id=task_id, reason="changed my mind")
        assert cancelled["cancelled_task_ids"] == [task_id]
        result = await call(mcp, "wait_for_task", task_id=task_id, timeout_s=30)
        assert result.is_error and "was cancelled" in text(result)
        assert result.structured_content["task"]["status"] == "cancelled"

        async def released() -> bool:
            return (await admin.get_agent(WORKER)).current_task_count == 0

        await eventually(released, timeout=10, what="the worker to let the cancelled task go")
        assert "already cancelled" in await refused(mcp, "cancel_task", task_id=task_id)


async def test_send_a_message_and_read_the_conversation(connect, worker, admin):
    await admin.register("mcp-user")
    async with connect() as mcp:
        sent = await ok(mcp, "send_message", sender_id="mcp-user", to=WORKER, payload={"q": "hello"})
        conversation = sent["conversation_id"]
        assert conversation and len(sent["message_ids"]) == 1

        async def answered() -> list[dict[str, Any]] | None:
            read = await ok(mcp, "read_conversation", conversation_id=conversation)
            return read["messages"] if len(read["messages"]) == 2 else None

        first, reply = await eventually(answered, timeout=15, what="the worker's reply in the conversation")
        assert (first["from"], first["to"], first["payload"]) == ("mcp-user", WORKER, {"q": "hello"})
        assert (reply["from"], reply["to"], reply["payload"]) == (
            WORKER,
            "mcp-user",
            {"echo": {"q": "hello"}},
        )
        assert reply["in_reply_to"] == first["message_id"]

        # a reply without `to` goes to the replied message's sender, in its conversation
        back = await ok(
            mcp, "send_message", sender_id="mcp-user", payload="thanks", reply_to=reply["message_id"]
        )
        assert back["conversation_id"] == conversation
        mine = await ok(mcp, "read_conversation", conversation_id=conversation, as_agent="mcp-user")
        assert [m["payload"] for m in mine["messages"]] == [
            {"q": "hello"},
            {"echo": {"q": "hello"}},
            "thanks",
        ]
        assert mine["messages"][-1]["to"] == WORKER

        anycast = await ok(
            mcp, "send_message", sender_id="mcp-user", to="text", mode="anycast", payload="any?"
        )
        assert len(anycast["message_ids"]) == 1


async def test_sessions_and_graphs(connect, worker):
    async with connect() as mcp:
        session = (await ok(mcp, "create_session", name="report", context={"topic": "q3"}))["session"]
        sid = session["session_id"]
        graph = await ok(
            mcp,
            "submit_graph",
            nodes=[
                {"key": "a", "title": "first", "capability": "text", "session_id": sid,
                 "payload": {"op": "upper", "text": "a"}},
                {"key": "b", "title": "second", "capability": "text", "session_id": sid,
                 "payload": {"op": "upper", "text": "b"}, "depends_on": ["a"]},
            ],
        )  # fmt: skip
        assert set(graph["task_ids"]) == {"a", "b"}
        await ok(mcp, "wait_for_task", task_id=graph["task_ids"]["b"], timeout_s=30)
        got = await ok(mcp, "get_session", session_id=sid)
        assert {t["title"]: t["status"] for t in got["tasks"]} == {
            "first": "completed",
            "second": "completed",
        }
        assert got["session"]["context"] == {"topic": "q3"}
        listed = await ok(mcp, "list_tasks", session_id=sid, status="completed")
        assert {t["task_id"] for t in listed["tasks"]} == set(graph["task_ids"].values())
        closed = await ok(mcp, "close_session", session_id=sid, summary="done")
        assert closed["session"]["status"] == "completed" and closed["session"]["summary"] == "done"


async def test_bad_arguments_get_a_tool_error_naming_them_and_change_nothing(connect, admin):
    async with connect() as mcp:
        message = await refused(mcp, "submit_task", title="x", priority="urgent", color="red")
        assert "argument 'priority': Input should be a valid integer" in message
        assert "argument 'color': not an argument of submit_task" in message
        assert "nothing was done" in message
        assert "argument 'title': Field required" in await refused(mcp, "submit_task", capability="text")
        assert "argument 'deadline'" in await refused(mcp, "submit_task", title="x", deadline="next tuesday")
        message = await refused(mcp, "submit_graph", nodes=[{"key": "a", "title": "t"}, {"key": "b"}])
        assert "argument 'nodes[1].title': Field required" in message
        assert "argument 'mode'" in await refused(
            mcp, "send_message", sender_id="a", to="b", mode="shout", payload=1
        )
        assert "argument 'timeout_s'" in await refused(mcp, "wait_for_task", task_id="t-1", timeout_s=3600)
        # the broker's own rules: its refusal names the field
        message = await refused(mcp, "submit_task", title="x", priority=99)
        assert "INVALID_ARGUMENT" in message and "priority" in message
        message = await refused(mcp, "get_task", task_id="t-nope")
        assert "NOT_FOUND" in message
        assert "unknown tool 'drop_database'" in text(await call(mcp, "drop_database"))
    assert (await admin.list_tasks()).items == []
    assert (await admin.list_messages()).items == []


async def test_every_call_is_in_the_access_log_with_the_mcp_clients_name(connect, transport, caplog):
    caplog.set_level(logging.INFO, logger="broker.access")
    async with connect() as mcp:
        await ok(mcp, "submit_task", title="logged")
        await refused(mcp, "submit_task", title="x", priority="urgent")
    access = [r for r in caplog.records if r.name == "broker.access"]
    rpc = [r for r in access if r.getMessage() == "rpc" and r.method.endswith("/Submit")]
    assert rpc and all(r.client == f"a2a-broker-mcp ({CLIENT_NAME})" for r in rpc)
    if transport == "http":  # the broker serves the tool calls too: each has its line
        tools = [(r.tool, r.client, r.outcome) for r in access if r.getMessage() == "mcp"]
        assert ("submit_task", CLIENT_NAME, "OK") in tools
        assert ("submit_task", CLIENT_NAME, "INVALID_ARGUMENT") in tools
