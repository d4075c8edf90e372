"""Dispatch: capability routing, capacity (racing Claims), priority, age, deadlines, long poll, Listen."""

from __future__ import annotations

import asyncio
import time

import pytest

from broker.core.wakeups import agent_key
from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as pb
from tests.conftest import eventually, next_within

from .tasks_helpers import (
    agent_count,
    all_tasks,
    claim,
    complete,
    get,
    register,
    submit,
    timestamp,
)


async def test_task_goes_only_to_an_agent_covering_its_capabilities(stubs):
    await register(stubs, "py", ["python", "*"], capacity=5)  # "*": also the tasks requiring none
    await register(stubs, "gpu", ["gpu", "python", "cuda"], capacity=5)
    needs_both = await submit(stubs, "train", required_capabilities=["python", "gpu"])
    anyone = await submit(stubs, "plain")

    got_py = await claim(stubs, "py", n=5)
    assert [a.task.task_id for a in got_py] == [anyone.task_id]
    assert await claim(stubs, "py", n=5) == []
    got_gpu = await claim(stubs, "gpu", n=5)
    assert [a.task.task_id for a in got_gpu] == [needs_both.task_id]
    assert got_gpu[0].task.spec.required_capabilities == ["gpu", "python"]


async def test_capacity_two_holds_no_third_task_under_twenty_racing_claims(stubs, broker):
    await register(stubs, "w", ["python"], capacity=2)
    for i in range(10):
        await submit(stubs, f"t{i}", required_capabilities=["python"])

    results = await asyncio.gather(*(claim(stubs, "w", n=3) for _ in range(20)))
    leased = [a.task.task_id for r in results for a in r]
    assert len(leased) == 2 and len(set(leased)) == 2
    assert await agent_count(stubs, "w") == 2
    assert len(await all_tasks(stubs, agent_id="w", status=pb.TASK_STATUS_RUNNING)) == 2

    # Long polls racing for released capacity: one completion frees one slot only.
    waiting = [asyncio.create_task(claim(stubs, "w", n=2, wait=1.0)) for _ in range(20)]
    first = (await get(stubs, leased[0])).attempt
    await stubs.tasks.Complete(pb.CompleteRequest(task_id=leased[0], agent_id="w", attempt=first))
    more = [a for r in await asyncio.gather(*waiting) for a in r]
    assert len(more) == 1
    assert await agent_count(stubs, "w") == 2


async def test_priority_first_then_age(stubs):
    await register(stubs, "w", capacity=1)
    a = await submit(stubs, "a", priority=5)
    b = await submit(stubs, "b", priority=5)
    c = await submit(stubs, "c", priority=9)
    d = await submit(stubs, "d", priority=0)
    order = []
    for _ in range(4):
        (got,) = await claim(stubs, "w")
        order.append(got.task.task_id)
        await complete(stubs, got, "w")
    assert order == [c.task_id, a.task_id, b.task_id, d.task_id]


async def test_close_deadline_raises_a_task_above_an_equal_one_without(stubs):
    await register(stubs, "w", capacity=1)
    plain = await submit(stubs, "plain", priority=5)
    soon = int(time.time() * 1e6) + 30_000_000
    urgent = await submit(stubs, "urgent", priority=5, deadline=timestamp(soon))
    assert urgent.calculated_priority > plain.calculated_priority + 5
    (got,) = await claim(stubs, "w")
    assert got.task.task_id == urgent.task_id


@pytest.mark.parametrize("settings_overrides", [{"task_aging_s": 0.05}])
async def test_aging_lets_a_low_priority_task_overtake_so_nothing_starves(stubs):
    await register(stubs, "w", capacity=1)
    old = await submit(stubs, "old", priority=0)

    async def aged() -> bool:
        return (await get(stubs, old.task_id)).calculated_priority > 11

    await eventually(aged, timeout=10, what="the old task to age past priority 11")
    fresh = await submit(stubs, "fresh", priority=10)
    assert fresh.calculated_priority < (await get(stubs, old.task_id)).calculated_priority
    (got,) = await claim(stubs, "w")
    assert got.task.task_id == old.task_id


async def test_claim_is_a_long_poll_woken_by_new_work_not_a_busy_loop(stubs, broker):
    await register(stubs, "w", ["python"], capacity=1)
    dispatch = broker.tasks.dispatch
    before = dispatch.lease_attempts
    assert await claim(stubs, "w", wait=0.6) == []
    assert dispatch.lease_attempts - before == 1  # one look, then a wait without polling

    waiting = asyncio.create_task(claim(stubs, "w", wait=20))
    signals = broker.tasks.dispatch.signals

    async def armed() -> bool:
        return signals.watching(agent_key("w"))

    await eventually(armed, what="the claim to wait")
    t0 = time.monotonic()
    task = await submit(stubs, "new", required_capabilities=["python"])
    got = await asyncio.wait_for(waiting, 5)
    assert [a.task.task_id for a in got] == [task.task_id]
    assert time.monotonic() - t0 < 2


async def test_agent_in_maintenance_gets_no_new_tasks(stubs):
    await register(stubs, "w", capacity=2)
    task = await submit(stubs, "t")
    await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="w", status=apb.AGENT_STATUS_MAINTENANCE))
    assert await claim(stubs, "w", n=2, wait=0.2) == []

    stream = stubs.tasks.Listen(pb.ListenRequest(agent_id="w"))
    pending = asyncio.ensure_future(next_within(stream, 10))
    await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="w", status=apb.AGENT_STATUS_AVAILABLE))
    resp = await pending
    assert [a.task.task_id for a in resp.assignments] == [task.task_id]
    stream.cancel()


async def test_reported_free_capacity_limits_leases_and_is_spent_and_given_back(stubs):
    await register(stubs, "w", capacity=5)
    for i in range(6):
        await submit(stubs, f"t{i}")
    await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="w", free_capacity=1))
    (first,) = await claim(stubs, "w", n=5)
    assert await claim(stubs, "w", n=5) == []  # the reported slot is spent
    await complete(stubs, first, "w")  # ... and given back when the task is done
    assert len(await claim(stubs, "w", n=5)) == 1
    await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="w", free_capacity=3))
    assert len(await claim(stubs, "w", n=5)) == 3
    assert await agent_count(stubs, "w") == 4


async def test_listen_pushes_several_assignments_per_response_within_capacity(stubs):
    await register(stubs, "w", ["python"], capacity=3)
    ids = [(await submit(stubs, f"t{i}", required_capabilities=["python"])).task_id for i in range(5)]
    stream = stubs.tasks.Listen(pb.ListenRequest(agent_id="w"))
    first = await next_within(stream)
    assert [a.task.task_id for a in first.assignments] == ids[:3]
    assert await agent_count(stubs, "w") == 3

    await complete(stubs, first.assignments[0], "w")
    second = await next_within(stream)
    assert [a.task.task_id for a in second.assignments] == [ids[3]]
    assert await agent_count(stubs, "w") == 3

    # New work while at capacity waits for room.
    late = await submit(stubs, "late", required_capabilities=["python"])
    await complete(stubs, first.assignments[1], "w")
    await complete(stubs, first.assignments[2], "w")
    got: list[str] = []
    while len(got) < 2:
        got += [a.task.task_id for a in (await next_within(stream)).assignments]
    assert got == [ids[4], late.task_id]
    stream.cancel()


async def test_listen_hands_a_dependent_over_when_its_prerequisite_completes(stubs):
    await register(stubs, "w", capacity=2)
    a = await submit(stubs, "a")
    b = await submit(stubs, "b", deps=[a.task_id])
    stream = stubs.tasks.Listen(pb.ListenRequest(agent_id="w"))
    first = await next_within(stream)
    assert [x.task.task_id for x in first.assignments] == [a.task_id]
    await complete(stubs, first.assignments[0], "w")
    second = await next_within(stream)
    assert [x.task.task_id for x in second.assignments] == [b.task_id]
    stream.cancel()


async def test_listen_headers_arrive_once_live_then_new_work_is_pushed(stubs):
    await stubs.agents.Register(apb.RegisterRequest(agent_id="live", max_concurrent_tasks=1))
    stream = stubs.tasks.Listen(pb.ListenRequest(agent_id="live"))
    try:
        await asyncio.wait_for(stream.initial_metadata(), 5)
        sub = await stubs.tasks.Submit(pb.SubmitRequest(task=pb.TaskSpec(title="after headers")))
        resp = await next_within(stream)
        assert [a.task.task_id for a in resp.assignments] == [sub.task.task_id]
    finally:
        stream.cancel()


async def test_heartbeat_reporting_room_wakes_the_listen_stream(stubs, monkeypatch):
    import broker.core.leasing as dispatch

    monkeypatch.setattr(dispatch, "IDLE_RECHECK_S", 60.0)  # only a wake-up can deliver in time
    await stubs.agents.Register(apb.RegisterRequest(agent_id="busy", max_concurrent_tasks=2))
    await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="busy", free_capacity=0))
    stream = stubs.tasks.Listen(pb.ListenRequest(agent_id="busy"))
    try:
        await asyncio.wait_for(stream.initial_metadata(), 5)
        sub = await stubs.tasks.Submit(pb.SubmitRequest(task=pb.TaskSpec(title="waits for room")))
        read = asyncio.ensure_future(stream.read())
        done, _ = await asyncio.wait({read}, timeout=0.3)
        assert not done, "pushed although the agent reported no free capacity"
        await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="busy", free_capacity=1))
        resp = await asyncio.wait_for(read, 10)
        assert [a.task.task_id for a in resp.assignments] == [sub.task.task_id]
    finally:
        stream.cancel()
