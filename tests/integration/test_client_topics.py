"""The Python client's topic calls against a real broker: subscriptions, sending to a subject,
consuming a subscription (streams and Workers as competing consumers), seek."""

from __future__ import annotations

import asyncio

import pytest
from a2a_broker_client import (
    AlreadyExistsError,
    BrokerClient,
    InvalidArgumentError,
    Message,
    MessageStatus,
    NotFoundError,
    OutgoingMessage,
    Target,
    TargetKind,
    Worker,
)

from tests.conftest import eventually


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("pub", max_concurrent_tasks=1)
        await c.register("reader", max_concurrent_tasks=1)
        yield c


async def test_subscription_round_trip(client) -> None:
    made = await client.create_subscription("eu-orders", "orders.eu.*", ack_deadline=20, max_attempts=4)
    assert (made.name, made.filter) == ("eu-orders", "orders.eu.*")
    assert (made.ack_deadline, made.max_attempts) == (20, 4)
    with pytest.raises(AlreadyExistsError):
        await client.create_subscription("eu-orders", "orders.>")
    with pytest.raises(InvalidArgumentError, match="filter"):
        await client.create_subscription("bad", "orders..eu")

    sent = await client.send("pub", Target.to_subject("orders.eu.created"), {"id": 1}, priority=7)
    await client.send_batch([OutgoingMessage("pub", Target.to_subject("orders.us.created"), {"id": 2})])
    got = await client.get_subscription("eu-orders")
    assert (got.backlog, got.in_flight) == (1, 0) and got.oldest_unacked_age is not None

    async with client.consume("reader", subscription="eu-orders") as stream:
        m = await asyncio.wait_for(stream.__anext__(), 5)
        assert m.data == {"id": 1} and m.priority == 7
        assert (m.subject, m.subscription) == ("orders.eu.created", "eu-orders")
        assert m.sequence > 0 and m.message_id.startswith(sent.message_ids[0])
        assert await stream.ack([m.message_id]) == 1

    sent_msg = await client.get_message(sent.message_ids[0])
    assert sent_msg.subject == "orders.eu.created" and sent_msg.target_kind == TargetKind.SUBJECT
    listed = await client.list_messages(subscription="eu-orders", status=MessageStatus.PROCESSED)
    assert [x.data for x in listed.items] == [{"id": 1}]
    assert [x.data for x in (await client.list_messages(subject="orders.us.created")).items] == [{"id": 2}]

    again = await client.seek("eu-orders", sequence=m.sequence)
    assert again.replayed == 1 and again.subscription.backlog == 1
    assert [s.name async for s in client.iter_subscriptions()] == ["eu-orders"]
    await client.delete_subscription("eu-orders")
    with pytest.raises(NotFoundError):
        await client.get_subscription("eu-orders")


async def test_workers_compete_on_a_subscription(broker, client) -> None:
    await client.create_subscription("jobs", "jobs.>")
    seen: dict[str, list[int]] = {"w1": [], "w2": []}

    def handler(name: str):
        async def on_message(msg: Message) -> None:
            seen[name].append(msg.data["n"])
            await asyncio.sleep(0.01)  # a little work, so that both workers get some

        return on_message

    async with (
        Worker("w1", address=broker.address, on_message=handler("w1"), subscription="jobs", max_in_flight=1),
        Worker("w2", address=broker.address, on_message=handler("w2"), subscription="jobs", max_in_flight=1),
    ):
        for n in range(20):
            await client.send("pub", Target.to_subject("jobs.run"), {"n": n})

        async def done() -> bool:
            f = await client.get_subscription("jobs")
            return len(seen["w1"]) + len(seen["w2"]) == 20 and f.backlog == 0 and f.in_flight == 0

        await eventually(done, timeout=15, what="20 jobs handled and acked")
    assert sorted(seen["w1"] + seen["w2"]) == list(range(20))  # each once
    assert seen["w1"] and seen["w2"]
