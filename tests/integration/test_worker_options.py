"""The Worker's options for agents whose offer changes while they run (the broker's federation
links are such workers): outcomes with a content type or a reason word for word, the free capacity
on heartbeats, registering again with new capabilities, leases left to lapse at a stop and resumed
by the next process, and the connection callback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from a2a_broker_client import (
    Assignment,
    BrokerClient,
    Message,
    Target,
    TaskContext,
    TaskFailure,
    TaskResult,
    TaskStatus,
    Worker,
)

from tests.conftest import eventually


@pytest.fixture
async def client(broker) -> AsyncIterator[BrokerClient]:
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("boss", max_concurrent_tasks=1)
        yield c


async def finished(client: BrokerClient, task_id: str) -> Any:
    async def done() -> Any:
        t = await client.get_task(task_id)
        return t if t.status.finished else None

    return await eventually(done, timeout=10, what=f"task {task_id} finished")


async def test_a_task_result_keeps_its_content_type_and_a_task_failure_its_reason(broker, client):
    async def on_task(ctx: TaskContext) -> TaskResult:
        if ctx.task.title == "bad":
            raise TaskFailure("on b: the copy failed")
        return TaskResult(b"\x00raw", "application/x-thing")

    async with Worker("w", address=broker.address, capabilities=["x"], on_task=on_task):
        good = (await client.submit("good", required_capabilities=["x"])).task
        bad = (await client.submit("bad", required_capabilities=["x"])).task
        g, b = (
            await finished(client, good.task_id),
            await eventually(
                lambda: _last_error(client, bad.task_id), timeout=10, what="the failure recorded"
            ),
        )
    assert (g.status, g.result, g.result_content_type) == (
        TaskStatus.COMPLETED,
        b"\x00raw",
        "application/x-thing",
    )
    assert b == "on b: the copy failed"  # not "TaskFailure: ..."


async def _last_error(client: BrokerClient, task_id: str) -> str:
    return (await client.get_task(task_id)).last_error


async def test_heartbeats_report_the_free_capacity_and_reconfigure_registers_the_new_offer(broker, client):
    free = 3
    w = Worker(
        "w", address=broker.address, capabilities=["x"], capacity=5, free_capacity=lambda: free, on_task=None
    )
    async with w:
        await w.heartbeat()
        agent = await client.get_agent("w")
        assert (agent.reported_free_capacity, agent.max_concurrent_tasks) == (3, 5)
        free = 1
        await w.reconfigure(capabilities=["x", "y"], capacity=2)
        await w.heartbeat()
        agent = await client.get_agent("w")
        assert (agent.capabilities, agent.max_concurrent_tasks, agent.reported_free_capacity) == (
            ("x", "y"),
            2,
            1,
        )


async def test_a_reconfigured_worker_takes_the_anycast_messages_of_its_new_capabilities(broker, client):
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def on_message(m: Message) -> None:
        got.put_nowait(m)

    w = Worker("w", address=broker.address, capabilities=["x"], on_message=on_message)
    async with w:
        await w.reconfigure(capabilities=["y"])
        await client.register("other", capabilities=["z"])  # a pool for y has one subscriber: w

        async def y_subscribed() -> bool:
            return broker.mailbox.wakeups.watching("pool:y")

        await eventually(y_subscribed, what="the message stream opened again with y")
        sent = (await client.send("boss", Target.anycast("y"), b"for y")).message_ids[0]
        m = await asyncio.wait_for(got.get(), 10)
        assert m.message_id == sent


async def test_a_stop_without_release_leaves_the_lease_and_resume_reports_the_outcome(broker, client):
    started = asyncio.Event()

    async def slow(ctx: TaskContext) -> bytes:
        started.set()
        await asyncio.Event().wait()  # until the worker stops
        return b""

    first = Worker(
        "w",
        address=broker.address,
        capabilities=["x"],
        on_task=slow,
        release_on_stop=False,
        deregister_on_exit=False,
    )
    await first.start()
    task = (await client.submit("t", required_capabilities=["x"], lease_timeout=60)).task
    await asyncio.wait_for(started.wait(), 10)
    await first.stop(drain_timeout=0)
    held = await client.get_task(task.task_id)
    assert (held.status, held.assigned_agent_id, first.stats.tasks_released) == (TaskStatus.RUNNING, "w", 0)

    async def quick(ctx: TaskContext) -> bytes:
        return b"resumed"

    second = Worker("w", address=broker.address, capabilities=["x"], on_task=quick)
    async with second:
        second.resume(Assignment(held, held.attempt))
        done = await finished(client, task.task_id)
    assert (done.status, done.result, done.attempt) == (TaskStatus.COMPLETED, b"resumed", held.attempt)


async def test_on_connection_is_told_when_the_task_stream_is_live(broker):
    seen: list[BaseException | None] = []

    async def on_task(ctx: TaskContext) -> None:
        return None

    async with Worker("w", address=broker.address, on_task=on_task, on_connection=seen.append):

        async def live() -> bool:
            return None in seen

        await eventually(live, what="the task stream live")
    assert seen[0] is None  # the broker was there: no error before
