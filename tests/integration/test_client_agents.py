"""The Python client's AgentRegistry calls against a real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from a2a_broker_client import (
    AgentEventType,
    AgentStatus,
    BrokerClient,
    InvalidArgumentError,
    NotFoundError,
    SyncBrokerClient,
)


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address, timeout=10) as c:
        yield c


async def test_register_get_heartbeat_deregister(client, broker):
    before = datetime.now(UTC)
    reg = await client.register(
        "py-1",
        max_concurrent_tasks=3,
        capabilities=["b", "a"],
        name="Py",
        labels={"zone": "eu"},
        metadata={"v": 1},
    )
    assert reg.created
    assert reg.heartbeat_interval == broker.settings.heartbeat_interval_s
    assert reg.liveness_timeout == broker.settings.liveness_timeout
    a = reg.agent
    assert (a.agent_id, a.name, a.agent_type, a.capabilities) == ("py-1", "Py", "worker", ("a", "b"))
    assert a.max_concurrent_tasks == 3 and a.current_task_count == 0
    assert a.status == AgentStatus.AVAILABLE and a.labels == {"zone": "eu"} and a.metadata == {"v": 1}
    assert a.registered_at is not None and a.registered_at.tzinfo is not None
    assert abs((a.registered_at - before).total_seconds()) < 60

    again = await client.register("py-1", max_concurrent_tasks=4)
    assert not again.created and again.agent.max_concurrent_tasks == 4

    hb = await client.heartbeat("py-1", status="busy", free_capacity=2)
    assert hb.agent.status == AgentStatus.BUSY and hb.agent.reported_free_capacity == 2
    got = await client.get_agent("py-1")
    assert got.status == AgentStatus.BUSY

    res = await client.deregister("py-1")
    assert (res.requeued_tasks, res.released_messages) == (0, 0)
    with pytest.raises(NotFoundError) as info:
        await client.get_agent("py-1")
    assert info.value.code_name == "NOT_FOUND"


async def test_generated_id_and_validation_errors(client):
    reg = await client.register(max_concurrent_tasks=1)
    assert reg.created and reg.agent.agent_id
    with pytest.raises(InvalidArgumentError) as info:
        await client.register("bad", max_concurrent_tasks=0)
    assert "max_concurrent_tasks" in info.value.details
    with pytest.raises(NotFoundError):
        await client.heartbeat("nobody")


async def test_list_filters_and_pages(client):
    for i in range(5):
        await client.register(
            f"w{i}",
            max_concurrent_tasks=1,
            capabilities=["gpu"] if i % 2 else [],
            agent_type="worker" if i < 4 else "orchestrator",
        )
    page = await client.list_agents(page_size=2)
    assert [a.agent_id for a in page.items] == ["w0", "w1"] and page.next_page_token
    assert [a.agent_id async for a in client.iter_agents(page_size=2)] == [f"w{i}" for i in range(5)]
    assert [a.agent_id async for a in client.iter_agents(capability="gpu")] == ["w1", "w3"]
    assert [a.agent_id async for a in client.iter_agents(agent_type="orchestrator")] == ["w4"]
    assert [a.agent_id async for a in client.iter_agents(status=AgentStatus.OFFLINE)] == []


async def test_watch_agents(client):
    await client.register("old", max_concurrent_tasks=1)
    async with client.watch_agents(include_snapshot=True) as stream:
        await stream.wait_live()
        first = await asyncio.wait_for(stream.__anext__(), 5)
        assert (first.type, first.agent.agent_id) == (AgentEventType.REGISTERED, "old")
        await client.register("new", max_concurrent_tasks=1)
        ev = await asyncio.wait_for(stream.__anext__(), 5)
        assert (ev.type, ev.agent.agent_id) == (AgentEventType.REGISTERED, "new")
        await client.deregister("new")
        ev = await asyncio.wait_for(stream.__anext__(), 5)
        assert (ev.type, ev.agent.agent_id) == (AgentEventType.DEREGISTERED, "new")
        assert ev.time is not None
    assert stream.closed


async def test_sync_client_against_the_broker(broker):
    def script() -> list[str]:
        with SyncBrokerClient(broker.address) as c:
            c.register("s1", max_concurrent_tasks=1)
            c.register("s2", max_concurrent_tasks=1)
            with pytest.raises(NotFoundError):
                c.get_agent("nope")
            return [a.agent_id for a in c.iter_agents(page_size=1)]

    assert await asyncio.to_thread(script) == ["s1", "s2"]
