"""The Python client's Messaging calls against a real broker: typed values in and out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from a2a_broker_client import (
    BrokerClient,
    FailedPreconditionError,
    InvalidArgumentError,
    MessageStatus,
    NotFoundError,
    OutgoingMessage,
    Target,
    TargetKind,
)


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("alice", max_concurrent_tasks=1, capabilities=["chat"])
        await c.register("bob", max_concurrent_tasks=1, capabilities=["chat", "gpu"])
        await c.register("carol", max_concurrent_tasks=1, capabilities=["gpu"])
        yield c


async def next_message(stream, timeout=5.0):
    return await asyncio.wait_for(stream.__anext__(), timeout)


async def test_send_subscribe_ack_round_trip(client):
    res = await client.send(
        "alice",
        "bob",
        {"q": "hi"},
        message_type="chat.question",
        priority=9,
        correlation_id="c1",
        conversation_id="conv",
        headers={"trace": "x"},
        ttl=timedelta(minutes=5),
        max_attempts=3,
    )
    assert len(res.message_ids) == 1 and not res.duplicate
    async with client.subscribe("bob", max_in_flight=10, ack_deadline=20) as stream:
        await stream.wait_live()
        m = await next_message(stream)
    assert m.message_id == res.message_id
    assert (m.sender_id, m.recipient_id, m.target_kind) == ("alice", "bob", TargetKind.DIRECT)
    assert m.data == {"q": "hi"} and m.content_type == "application/json" and m.json() == {"q": "hi"}
    assert (m.message_type, m.priority, m.correlation_id, m.conversation_id) == (
        "chat.question",
        9,
        "c1",
        "conv",
    )
    assert m.headers == {"trace": "x"} and m.attempt == 1 and m.max_attempts == 3
    assert m.status == MessageStatus.DELIVERED
    assert m.expires_at is not None and m.expires_at > datetime.now(UTC)
    assert m.ack_deadline is not None and m.ack_deadline - m.delivered_at >= timedelta(seconds=19)
    # The stream closed before the ack: released, so the ack finds nothing delivered.
    async with client.subscribe("bob") as stream:
        m = await next_message(stream)
        assert await client.ack("bob", [m.message_id]) == 1
        assert await client.ack("bob", m.message_id) == 0  # twice is harmless
    got = await client.get_message(m.message_id)
    assert got.status == MessageStatus.PROCESSED and got.processed_at is not None


async def test_broadcast_anycast_batch_and_idempotency(client):
    res = await client.send("alice", Target.broadcast("gpu"), "to all gpus")
    assert len(res.message_ids) == 2
    copies = [await client.get_message(i) for i in res.message_ids]
    assert sorted(c.recipient_id for c in copies) == ["bob", "carol"]
    assert {c.target_kind for c in copies} == {TargetKind.BROADCAST} and copies[0].text == "to all gpus"

    any1 = await client.send("alice", Target.anycast("gpu"), b"\x00\x01", content_type="application/x-bin")
    assert len(any1.message_ids) == 1
    assert (await client.get_message(any1.message_id)).payload == b"\x00\x01"

    first = await client.send("alice", "bob", "once", idempotency_key="k-1")
    again = await client.send("alice", "bob", "once", idempotency_key="k-1")
    assert again.duplicate and again.message_ids == first.message_ids

    batch = await client.send_batch(
        [OutgoingMessage("alice", "bob", {"i": i}, conversation_id="batch") for i in range(3)]
    )
    assert [len(r.message_ids) for r in batch] == [1, 1, 1]
    listed = [m async for m in client.iter_messages(conversation_id="batch", page_size=2)]
    assert [m.data["i"] for m in listed] == [0, 1, 2]


async def test_nack_dead_letter_and_requeue(client):
    mid = (await client.send("alice", "bob", "poison")).message_id
    async with client.subscribe("bob") as stream:
        m = await next_message(stream)
        res = await client.nack("bob", m.message_id, reject=True, reason="cannot parse")
    assert (res.requeued, res.dead_lettered) == (0, 1)
    dead = (await client.list_messages(status="failed")).items
    assert [d.message_id for d in dead] == [mid] and dead[0].last_error.startswith("cannot parse")
    assert await client.requeue([mid]) == 1
    assert (await client.get_message(mid)).status == MessageStatus.PENDING
    with pytest.raises(FailedPreconditionError):
        await client.requeue(mid)  # no longer a dead letter
    async with client.subscribe("bob") as stream:
        m = await next_message(stream)
        assert m.message_id == mid
        res = await client.nack("bob", mid, delay=30)
        assert (res.requeued, res.dead_lettered) == (1, 0)
    later = await client.get_message(mid)
    assert later.status == MessageStatus.PENDING and later.deliver_after > datetime.now(UTC)


async def test_errors_name_the_problem(client):
    with pytest.raises(NotFoundError):
        await client.send("alice", "nobody", "x", require_recipient=True)
    with pytest.raises(NotFoundError):
        await client.send("nobody", "bob", "x")
    waiting = await client.send("alice", "later", "x")  # not registered yet: it waits
    assert (await client.get_message(waiting.message_id)).awaiting_recipient
    with pytest.raises(InvalidArgumentError) as info:
        await client.send("alice", "bob", "x", priority=11)
    assert "priority" in info.value.details
    with pytest.raises(NotFoundError):
        await client.get_message("no-such-message")
    with pytest.raises(NotFoundError):
        async for _ in client.subscribe("nobody"):
            pass
    assert (await client.list_messages(sender_id="nobody")).items == []


async def test_publish_confirms_each_message_in_order_and_refuses_one_alone(client):
    """BrokerClient.publish: one stream, a result per message in the order given; a refused
    message carries its typed error and the others are stored."""

    async def messages():
        for i in range(500):
            priority = 99 if i == 7 else None  # out of range: refused alone
            yield OutgoingMessage("alice", "bob", {"i": i}, priority=priority)

    results = [r async for r in client.publish(messages())]
    assert [r.sequence for r in results] == list(range(1, 501))
    bad = results[7]
    assert not bad.ok and isinstance(bad.error, InvalidArgumentError) and "priority" in str(bad.error)
    ok = [r for r in results if r.ok]
    assert len(ok) == 499 and all(len(r.result.message_ids) == 1 for r in ok)
    stored = await client.get_message(ok[-1].result.message_id)
    assert stored.payload == b'{"i":499}'


async def test_consume_acks_and_nacks_on_the_stream_once_committed(client):
    ids = [(await client.send("alice", "bob", f"m{i}")).message_id for i in range(3)]
    async with client.consume("bob", max_in_flight=10) as stream:
        await stream.wait_live()
        got = [await next_message(stream) for _ in ids]
        assert stream.in_band
        assert await stream.ack([m.message_id for m in got[:2]]) == 2  # answered once committed
        assert (await stream.nack(got[2].message_id, reject=True)).dead_lettered == 1
    assert [(await client.get_message(i)).status for i in ids] == [
        MessageStatus.PROCESSED,
        MessageStatus.PROCESSED,
        MessageStatus.FAILED,
    ]


async def test_consume_acking_inside_the_loop_does_not_wait_for_the_next_message(client):
    # The confirmation is read while the caller awaits its ack in the loop body.
    await client.send("alice", "bob", "only one")
    async with client.consume("bob") as stream:
        async for m in stream:
            assert await asyncio.wait_for(stream.ack(m.message_id), 5) == 1
            break


async def test_consume_falls_back_to_subscribe_and_unary_acks_on_a_broker_without_it(tmp_path, monkeypatch):
    import grpc

    from broker.server import start_server
    from broker.servicers.messaging import MessagingServicer
    from tests.conftest import make_settings

    async def unimplemented(self, requests, context):  # a broker from before Consume
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        yield

    monkeypatch.setattr(MessagingServicer, "Consume", unimplemented)
    b = await start_server(make_settings(tmp_path))
    try:
        async with BrokerClient(b.address, timeout=10) as c:
            await c.register("old", max_concurrent_tasks=1)
            mid = (await c.send("old", "old", "hello")).message_id
            async with c.consume("old") as stream:
                m = await next_message(stream)
                assert m.message_id == mid and not stream.in_band
                assert await stream.ack(mid) == 1
            assert (await c.get_message(mid)).status == MessageStatus.PROCESSED
    finally:
        await b.stop(0.2)
