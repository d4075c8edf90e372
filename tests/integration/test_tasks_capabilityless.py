"""Issue 22.6: a task that names no capability goes only to an agent that takes such tasks: one
registered without capabilities, or one that lists the capability "*" beside its own. An agent
with capabilities of its own (a specialist, such as the README's `summarize` worker) never gets one
by asking first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from a2a_broker_client import BrokerClient, TaskContext, TaskStatus, Worker

from tests.conftest import eventually
from tests.integration.test_federation import link_offers, start


async def test_a_specialist_does_not_take_a_task_naming_no_capability(broker):
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("summarizer", capabilities=["summarize"], max_concurrent_tasks=4)
        await c.register("anyone", max_concurrent_tasks=1)  # no capabilities: takes tasks requiring none
        await c.register("both", capabilities=["summarize", "*"], max_concurrent_tasks=4)
        hello = (await c.submit("hello")).task
        assert await c.claim("summarizer", max_tasks=4) == []
        (job,) = await c.claim("anyone")
        assert job.task.task_id == hello.task_id
        # "*" beside its own capabilities: both kinds.
        again = (await c.submit("hello again")).task
        summary = (await c.submit("summarize", required_capabilities=["summarize"])).task
        got = {a.task.task_id for a in await c.claim("both", max_tasks=4)}
        assert got == {again.task_id, summary.task_id}
        # A task that asks for "*" is the same as one asking for nothing.
        star = (await c.submit("anything", required_capabilities=["*"])).task
        assert await c.claim("summarizer") == []
        await c.complete(job.task.task_id, "anyone", job.attempt, b"")
        (job,) = await c.claim("anyone")
        assert job.task.task_id == star.task_id


async def test_the_readme_summarize_worker_left_running_leaves_the_cli_hello_task_alone(broker):
    async def summarize(ctx: TaskContext) -> dict:
        return {"summary": ctx.data["doc"][:100]}  # the README's handler: a bare task would break it

    async with BrokerClient(broker.address, timeout=10) as c:
        hello = (await c.submit("hello")).task  # older, same priority: it would be leased first
        worker = Worker("summarizer-1", capabilities=["summarize"], capacity=4, on_task=summarize, client=c)
        await worker.start()
        try:
            doc = (
                await c.submit("summarize", required_capabilities=["summarize"], payload={"doc": "text"})
            ).task
            done = await c.wait_for_task(doc.task_id, timeout=20)
            assert done.status == TaskStatus.COMPLETED and json.loads(done.result) == {"summary": "text"}
            left = await c.get_task(hello.task_id)
            assert (left.status, left.attempt) == (TaskStatus.READY, 0)
        finally:
            await worker.stop(drain_timeout=5)


async def test_a_peer_relays_a_task_naming_no_capability_only_to_an_agent_that_takes_such_tasks(
    broker_process: Any, tmp_path: Path
):
    a = start(broker_process, tmp_path, "a")
    b = start(broker_process, tmp_path, "b", peers=f"a={a.address}")
    async with BrokerClient(a.address, timeout=10) as on_a, BrokerClient(b.address, timeout=10) as on_b:
        await on_b.register("specialist", capabilities=["x"], max_concurrent_tasks=1)
        await link_offers(on_a, "b", ["x"])
        task = (await on_a.submit("hello")).task
        assert await on_a.claim("broker.b") == []  # B has no agent for it: its link takes none
        await on_b.register("anyone", max_concurrent_tasks=1)
        await link_offers(on_a, "b", ["*", "x"])

        async def copied() -> list:
            return [t async for t in on_b.iter_tasks(label="a2a.federation.peer=a")]

        (copy,) = await eventually(copied, timeout=10, what="the copy on B")
        assert "*" in copy.spec.required_capabilities  # the copy still asks for an agent taking any task
        assert await on_b.claim("specialist") == []
        (job,) = await on_b.claim("anyone", wait=10)
        await on_b.complete(job.task.task_id, "anyone", job.attempt, b"hi")

        async def completed() -> bool:
            return (await on_a.get_task(task.task_id)).status == TaskStatus.COMPLETED

        await eventually(completed, timeout=10, what="the task completed on A")
