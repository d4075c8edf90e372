"""The Python client's batched paths: Work outcomes given together share one request, Publish
sends whatever is ready in one request, and Consumption.ack_later writes an ack that needs no
confirmation frame; each still judged on its own, and the single form kept for a broker that does
not state that it takes batches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from a2a_broker_client import (
    BrokerClient,
    FailedPreconditionError,
    InvalidArgumentError,
    MessageStatus,
    OutgoingMessage,
    TaskStatus,
)

from tests.conftest import eventually


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("w", max_concurrent_tasks=5)
        await c.register("alice", max_concurrent_tasks=1)
        await c.register("bob", max_concurrent_tasks=1)
        yield c


def spy(call: Any) -> list[Any]:
    """Record every request written on a gRPC call."""
    written: list[Any] = []
    real = call.write

    async def write(req: Any) -> None:
        written.append(req)
        await real(req)

    call.write = write
    return written


async def five_assignments(client: BrokerClient, stream: Any) -> list[Any]:
    ids = {(await client.submit(f"job{i}")).task.task_id for i in range(5)}
    got: list[Any] = []
    while len(got) < 5:
        got += (await asyncio.wait_for(stream.__anext__(), 5)).assignments
    assert {a.task.task_id for a in got} == ids
    return got


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "broker-without-batches"])
async def test_outcomes_given_together_share_one_request_each_judged_on_its_own(client, batched):
    stream = client.work("w")
    if not batched:  # as against a broker that does not state it takes batched requests
        stream.batch_header = "x-not-stated"
    async with stream:
        await stream.wait_live()

        async def headers_read() -> bool:
            return bool(stream._batch_max) or not batched

        await eventually(headers_read, what="the response headers read")
        written = spy(stream._call)
        a, b, c, d, e = await five_assignments(client, stream)
        outs = await asyncio.gather(
            stream.complete(a.task.task_id, a.attempt, {"n": 1}),
            stream.complete(b.task.task_id, b.attempt + 1, "stale"),
            stream.fail(c.task.task_id, c.attempt, "boom", non_retryable=True),
            stream.extend_lease(d.task.task_id, d.attempt, progress=10),
            stream.complete(e.task.task_id, e.attempt, "five"),
            return_exceptions=True,
        )
    done, stale, failed, extended, last = outs
    assert done.status == TaskStatus.COMPLETED and done.result_data == {"n": 1}
    assert isinstance(stale, FailedPreconditionError)
    assert failed.status == TaskStatus.FAILED and extended is not None
    assert last.status == TaskStatus.COMPLETED
    assert (await client.get_task(b.task.task_id)).status == TaskStatus.RUNNING  # nothing changed
    if batched:
        assert len(written) == 1 and len(written[0].outcomes) == 5
    else:
        assert len(written) == 5 and not any(r.outcomes for r in written)


async def test_publish_sends_what_is_ready_in_one_request_and_confirms_each_message(client, monkeypatch):
    calls: list[list[Any]] = []
    real = client._messaging.Publish

    def publish_call(*args: Any, **kw: Any) -> Any:
        call = real(*args, **kw)
        calls.append(spy(call))
        return call

    monkeypatch.setattr(client._messaging, "Publish", publish_call)
    messages = [OutgoingMessage("alice", "bob", f"m{i}") for i in range(50)]
    messages[7] = OutgoingMessage("alice", "bob", "bad", priority=99)  # refused alone
    results = [r async for r in client.publish(messages)]
    assert [r.sequence for r in results] == list(range(1, 51))
    assert isinstance(results[7].error, InvalidArgumentError)
    assert all(r.ok for i, r in enumerate(results) if i != 7)
    (written,) = calls
    assert len(written) < 50 and sum(len(w.messages) or 1 for w in written) == 50
    stored = await client.get_message(results[49].result.message_ids[0])
    assert stored.text == "m49"


async def test_ack_later_commits_without_a_confirmation(client):
    ids = [(await client.send("alice", "bob", f"m{i}")).message_id for i in range(3)]
    async with client.consume("bob", max_in_flight=10) as c:
        got = [await asyncio.wait_for(c.__anext__(), 5) for _ in ids]
        assert [m.message_id for m in got] == ids
        waiting = len(c._waiting)
        assert await c.ack_later(ids[:2])
        assert len(c._waiting) == waiting  # nothing waits for a confirmation

        async def processed() -> bool:
            got = [await client.get_message(i) for i in ids[:2]]
            return all(m.status == MessageStatus.PROCESSED for m in got)

        await eventually(processed, what="the acks committed")
        assert await c.ack(ids[2:]) == 1  # a confirmed ack on the same stream still works
