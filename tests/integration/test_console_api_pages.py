"""The console API behind its newer pages (#22.10-12), over real HTTP against a real broker (on
SQLite, and on PostgreSQL with --backend postgres): lists newest first or oldest first across
pages, a graph submitted without parents, sessions, an agent's page, deregistering offline agents,
search by id, sending a message, attempts and latency; bad input named by field."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from a2a_broker_client import BrokerClient
from a2a_broker_client.errors import NotFoundError
from a2a_broker_client.models import GraphNode, TaskSpec

from tests.conftest import eventually

from .test_console_api import CONSOLE, call


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CONSOLE, "heartbeat_interval_s": 0.1, "liveness_timeout_s": 0.3}


async def pages(broker, path: str, key: str) -> list[list[str]]:
    """Every page of a list, as the ids on each."""
    out, token = [], ""
    while True:
        sep = "&" if "?" in path else "?"
        status, body = await call(broker, "GET", f"{path}{sep}page_size=3&page_token={token}")
        assert status == 200, body
        out.append([item[f"{key[:-1]}_id"] for item in body[key]])
        if not (token := body["next_page_token"]):
            return out


async def test_lists_are_newest_first_by_default_and_oldest_first_on_demand(broker):
    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("a")
        sent = [(await client.send("a", "a", b"x")).message_ids[0] for _ in range(7)]
        tasks = [(await client.submit(f"t{i}")).task.task_id for i in range(7)]
        sessions = [(await client.create_session(f"s{i}")).session_id for i in range(4)]
    flat = lambda pp: [i for p in pp for i in p]  # noqa: E731
    assert flat(await pages(broker, "/api/messages", "messages")) == sent[::-1]
    assert flat(await pages(broker, "/api/messages?order=oldest", "messages")) == sent
    assert [len(p) for p in await pages(broker, "/api/tasks", "tasks")] == [3, 3, 1]
    assert flat(await pages(broker, "/api/tasks", "tasks")) == tasks[::-1]
    assert flat(await pages(broker, "/api/tasks?order=oldest", "tasks")) == tasks
    assert flat(await pages(broker, "/api/sessions", "sessions")) == sessions[::-1]
    assert flat(await pages(broker, "/api/sessions?order=oldest", "sessions")) == sessions
    status, body = await call(broker, "GET", "/api/tasks?order=sideways")
    assert status == 400 and body["error"].startswith("order: must be newest or oldest")
    status, body = await call(broker, "GET", "/api/sessions?page_token=WzFd")  # a task's token
    assert status == 400 and body["error"].startswith("page_token")


async def test_the_graph_of_a_graph_submitted_without_parents_holds_every_task(broker, monkeypatch):
    async with BrokerClient(broker.address, timeout=10) as client:
        g = await client.submit_graph(
            [
                GraphNode("research", TaskSpec("research")),
                GraphNode("docs", TaskSpec("write docs"), ["research"]),
                GraphNode("review", TaskSpec("review"), ["docs"]),
                GraphNode("child", TaskSpec("a child of review"), parent_key="review"),
            ]
        )
        other = (await client.submit("unrelated")).task.task_id
    ids = g.task_ids
    status, body = await call(broker, "GET", f"/api/tasks/{ids['docs']}/graph")
    assert status == 200, body
    assert {t["task_id"] for t in body["tasks"]} == set(ids.values()) and other not in str(body)
    assert body["truncated"] is False and body["status_counts"] == {"ready": 2, "blocked": 2}
    (docs,) = [t for t in body["tasks"] if t["task_id"] == ids["docs"]]
    assert docs["depends_on"] == [{"task_id": ids["research"], "type": "hard"}]
    # bounded, the nearest first
    monkeypatch.setattr("broker.console.api_tasks.GRAPH_LIMIT", 2)
    _, near = await call(broker, "GET", f"/api/tasks/{ids['research']}/graph")
    assert {t["task_id"] for t in near["tasks"]} == {ids["research"], ids["docs"]} and near["truncated"]
    assert (await call(broker, "GET", "/api/tasks/t-none/graph"))[0] == 404


async def test_a_session_its_tasks_and_an_agents_page(broker):
    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1", max_concurrent_tasks=2)
        s = await client.create_session("report", initiated_by="orch")
        tid = (await client.submit(TaskSpec("in it", session_id=s.session_id))).task.task_id
        (lease,) = await client.claim("w1", wait=5)
        mid = (await client.send("orch", "w1", b"hello")).message_ids[0]
        status, body = await call(broker, "GET", f"/api/sessions/{s.session_id}")
        assert status == 200, body
        assert body["session"]["name"] == "report" and body["session"]["counts"] == {"running": 1}
        assert [t["task_id"] for t in body["tasks"]] == [tid]
        status, agent = await call(broker, "GET", "/api/agents/w1")
        assert status == 200, agent
        assert agent["agent"]["backlog"] == 1 and agent["open_streams"] == 0
        assert [t["task_id"] for t in agent["held_tasks"]] == [lease.task.task_id]
        assert agent["held_tasks"][0]["lease_expires_at"] is not None
        assert agent["record"]["tasks_completed"] == 0 and agent["failed_tasks"] == []
        _, one = await call(broker, "GET", f"/api/messages/{mid}")
        assert one["message"]["recipient_id"] == "w1"
        _, task = await call(broker, "GET", f"/api/tasks/{tid}")
        (attempt,) = task["attempts"]
        assert (attempt["attempt"], attempt["agent_id"], attempt["outcome"]) == (1, "w1", "running")
        assert attempt["lease_expires_at"] == task["task"]["lease_expires_at"]
    for path in ("/api/sessions/s-none", "/api/agents/nobody", "/api/messages/m-none"):
        assert (await call(broker, "GET", path))[0] == 404


async def test_offline_agents_are_deregistered_at_once(broker):
    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("gone")

        async def offline() -> bool:
            return (await client.get_agent("gone")).status.value == "offline"

        await eventually(offline, what="the agent offline")
        status, body = await call(broker, "POST", "/api/agents/deregister-offline", {})
        assert (status, body) == (200, {"deregistered": ["gone"]})
        with pytest.raises(NotFoundError):
            await client.get_agent("gone")
        status, body = await call(broker, "POST", "/api/agents/deregister-offline", {"older_than_s": -1})
        assert status == 400 and body["error"].startswith("older_than_s:")


async def test_search_finds_each_kind_by_id(broker):
    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("w1")
        found = {
            "task": (await client.submit("x")).task.task_id,
            "message": (await client.send("w1", "w1", b"x")).message_ids[0],
            "agent": "w1",
            "session": (await client.create_session("s")).session_id,
        }
    for kind, wanted in found.items():
        assert await call(broker, "GET", f"/api/search?id={wanted}") == (200, {"kind": kind, "id": wanted})
    status, body = await call(broker, "GET", "/api/search?id=nothing")
    assert status == 404 and "no task, message, agent or session has the id 'nothing'" in body["error"]
    status, body = await call(broker, "GET", "/api/search?id=bad%20id")
    assert status == 400 and body["error"].startswith("id:")


async def test_sending_a_message_from_the_console(broker):
    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1", capabilities=["sum"])
        send = {"sender_id": "orch", "recipient_id": "w1", "payload": '{"n": 1}', "message_type": "job"}
        status, body = await call(broker, "POST", "/api/messages/send", send)
        assert status == 200, body
        (mid,) = body["message_ids"]
        got = await client.get_message(mid)
        assert (got.sender_id, got.recipient_id, got.message_type) == ("orch", "w1", "job")
        assert got.payload == b'{"n": 1}' and got.headers == {"console-sent-by": "-"}
        anycast = {"sender_id": "orch", "target": "anycast", "capability": "sum"}
        anycast["content_type"] = "text/plain"
        status, body = await call(broker, "POST", "/api/messages/send", {**anycast, "payload": "hi"})
        assert status == 200 and len(body["message_ids"]) == 1
        cases = [
            ({**send, "target": "pigeon"}, 400, "target: must be agent, anycast or broadcast"),
            ({**send, "sender_id": ""}, 400, "sender_id"),
            ({**send, "sender_id": "stranger"}, 404, "sender_id: agent 'stranger' is not registered"),
            ({**send, "payload": "{oops"}, 400, "payload: is not JSON"),
            ({**send, "payload": 7}, 400, "payload: must be a string"),
            ({**anycast, "capability": ""}, 400, "target.anycast.capability: is required"),
        ]
        before = len((await client.list_messages()).items)
        for body_in, want, text in cases:
            status, body = await call(broker, "POST", "/api/messages/send", body_in)
            assert (status, text in body.get("error", "")) == (want, True), (body_in, status, body)
        assert len((await client.list_messages()).items) == before  # nothing sent


async def test_the_overview_has_latency_percentiles(broker):
    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("w1")
        await client.submit("x")
        (lease,) = await client.claim("w1", wait=5)
        await asyncio.sleep(0)
        await client.complete(lease.task.task_id, "w1", lease.attempt, b"")
    _, o = await call(broker, "GET", "/api/overview")
    for key in ("queue_wait", "run_time"):
        for window in ("all", "recent"):
            summary = o["latency"][key][window]
            assert summary["n"] == 1 and 0 < summary["p50"] <= summary["p99"], (key, window, summary)
