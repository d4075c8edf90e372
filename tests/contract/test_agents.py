"""Contract: registration, heartbeats, liveness, deregistration."""

from __future__ import annotations

import pytest

from broker.errors import NotFound
from broker.models.agents import AgentFilter, AgentStatus, RegisterInput
from broker.models.tasks import TaskStatus

from .helpers import T0, S, claim, direct, register, send, spec, submit


async def test_register_creates_then_updates_and_reports_the_previous_agent(store):
    first, before = await store.register_agent(
        RegisterInput(agent_id="a", name="one", capabilities=["y", "x", "x"], max_concurrent_tasks=2), "a", T0
    )
    assert before is None
    assert first.capabilities == ("x", "y") and first.status is AgentStatus.AVAILABLE
    second, before = await store.register_agent(
        RegisterInput(agent_id="a", name="two", capabilities=["z"], max_concurrent_tasks=3), "a", T0 + S
    )
    assert before == first
    assert (second.name, second.capabilities, second.max_concurrent_tasks) == ("two", ("z",), 3)
    assert await store.get_agent("a") == second


async def test_unknown_agents_are_not_found(store):
    with pytest.raises(NotFound):
        await store.get_agent("nobody")
    with pytest.raises(NotFound):
        await store.heartbeat("nobody", None, None, T0)


async def test_list_agents_filters_and_pages_by_id(store):
    for i, caps in enumerate([["gpu"], [], ["gpu"], ["cpu"]]):
        await register(store, f"a{i}", caps)
    await store.heartbeat("a2", AgentStatus.MAINTENANCE, None, T0)
    agents, _ = await store.list_agents(AgentFilter(capability="gpu"))
    assert [a.agent_id for a in agents] == ["a0", "a2"]
    agents, _ = await store.list_agents(AgentFilter(status=AgentStatus.MAINTENANCE))
    assert [a.agent_id for a in agents] == ["a2"]
    page, last = await store.list_agents(AgentFilter(page_size=3))
    assert [a.agent_id for a in page] == ["a0", "a1", "a2"] and last == "a2"
    rest, _ = await store.list_agents(AgentFilter(page_size=3, after=last))
    assert [a.agent_id for a in rest] == ["a3"]


async def test_heartbeat_records_status_and_free_capacity(store):
    await register(store, "a", slots=4, now=T0)
    after, before = await store.heartbeat("a", AgentStatus.BUSY, 1, T0 + 5 * S)
    assert before.status is AgentStatus.AVAILABLE
    assert after.status is AgentStatus.BUSY and after.reported_free_capacity == 1
    assert after.last_heartbeat_at == T0 + 5 * S


async def test_mark_offline_takes_silent_agents_offline_except_those_seen_alive(store):
    await register(store, "silent", now=T0)
    await register(store, "streaming", now=T0)
    await register(store, "fresh", now=T0 + 10 * S)
    gone = await store.mark_offline(T0 + 5 * S, T0 + 11 * S, alive={"streaming": T0 + 9 * S})
    assert [g.agent.agent_id for g in gone] == ["silent"]
    assert (await store.get_agent("silent")).status is AgentStatus.OFFLINE
    streaming = await store.get_agent("streaming")
    assert streaming.status is AgentStatus.AVAILABLE and streaming.last_heartbeat_at == T0 + 9 * S
    assert (await store.get_agent("fresh")).status is AgentStatus.AVAILABLE


async def test_a_heartbeat_brings_an_offline_agent_back(store):
    await register(store, "a", now=T0)
    await store.mark_offline(T0 + S, T0 + 2 * S)
    after, before = await store.heartbeat("a", None, None, T0 + 3 * S)
    assert before.status is AgentStatus.OFFLINE and after.status is AgentStatus.AVAILABLE


async def test_going_offline_releases_deliveries_and_requeues_leased_tasks(store):
    a = await register(store, "a", now=T0)
    await register(store, "s", now=T0)
    (mid,) = await send(store, "s", direct("a"))
    assert [m.message_id for m in await claim(store, a)] == [mid]
    (task,) = await submit(store, spec("t"))
    (lease,) = (await store.lease_tasks("a", 1, T0)).assignments
    (gone,) = await store.mark_offline(T0 + S, T0 + 2 * S, alive={"s": T0 + 2 * S})
    assert gone.agent.agent_id == "a"
    assert gone.released_messages == 1 and gone.requeued_tasks == [task.task_id]
    assert (await store.get_message(mid)).status.value == "pending"
    after = await store.get_task(task.task_id)
    assert after.status is TaskStatus.READY and after.assigned_agent_id is None
    assert (await store.get_agent("a")).current_task_count == 0
    assert lease.attempt == 1


async def test_deregistered_agents_read_as_not_found_and_give_back_their_work(store):
    a = await register(store, "a", now=T0)
    await register(store, "s", now=T0)
    (mid,) = await send(store, "s", direct("a"))
    await claim(store, a)
    (task,) = await submit(store, spec("t"))
    await store.lease_tasks("a", 1, T0)
    gone = await store.deregister_agent("a", T0 + S)
    assert gone.released_messages == 1 and gone.requeued_tasks == [task.task_id]
    with pytest.raises(NotFound):
        await store.get_agent("a")
    agents, _ = await store.list_agents(AgentFilter())
    assert [x.agent_id for x in agents] == ["s"]
    assert (await store.get_task(task.task_id)).status is TaskStatus.READY
