"""Subject messages get what other messages get: priority order, TTL, scheduled delivery, the
ack deadline of their subscription (redelivery), idempotency keys and tracing (both backends)."""

from __future__ import annotations

import pytest

from broker.pb import messaging_pb2 as pb
from tests.clock_support import later, manual_clock

from .messaging_support import register
from .topics_support import consume, create, figures, publish, settle

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def world(stubs, broker):
    for agent in ("pub", "c"):
        await register(stubs, agent)
    await create(stubs, "s", "t.>", ack_deadline={"seconds": 5})
    return stubs


async def test_priority_first_then_sequence(world, broker) -> None:
    for payload, prio in ((b"low", 1), (b"high", 9), (b"mid", 5), (b"high2", 9)):
        await publish(world, "pub", "t.x", payload, priority=prio)
    sub = await consume(world, "c", "s")
    got = await sub.take(4)
    assert [m.payload for m in got] == [b"high", b"high2", b"mid", b"low"]
    assert [m.priority for m in got] == [9, 9, 5, 1]
    sub.cancel()


async def test_idempotency_key_stores_once(world, broker) -> None:
    first = await world.messaging.Send(
        pb.SendRequest(sender_id="pub", target=pb.Target(subject="t.x"), payload=b"a", idempotency_key="k")
    )
    again = await world.messaging.Send(
        pb.SendRequest(sender_id="pub", target=pb.Target(subject="t.x"), payload=b"a", idempotency_key="k")
    )
    assert again.duplicate and list(again.message_ids) == list(first.message_ids)
    assert (await figures(world, "s")).backlog == 1


async def test_traceparent_travels_with_the_delivery(world, broker) -> None:
    await world.messaging.Send(
        pb.SendRequest(sender_id="pub", target=pb.Target(subject="t.x"), payload=b"a"),
        metadata=(("traceparent", TRACEPARENT),),
    )
    sub = await consume(world, "c", "s")
    m = await sub.one()
    trace = m.headers.get("traceparent", "")
    assert trace.startswith("00-0af7651916cd43dd8448eb211c80319c-"), m.headers
    sub.cancel()


@manual_clock
async def test_ttl_schedule_and_ack_deadline_on_the_manual_clock(world, broker) -> None:
    await publish(world, "pub", "t.x", b"expires", ttl={"seconds": 10})
    soon = broker.sweeper.clock.now_us() // 1_000_000 + 60
    await publish(world, "pub", "t.x", b"scheduled", deliver_after={"seconds": soon})
    await publish(world, "pub", "t.x", b"now")
    sub = await consume(world, "c", "s", broker=broker)
    first = await sub.take(2)  # the scheduled one is not due
    assert sorted(m.payload for m in first) == [b"expires", b"now"]
    await settle(world, "c", [m for m in first if m.payload == b"now"])
    await sub.nothing()

    await later(broker, 6)  # past the subscription's 5 s ack deadline: "expires" comes again
    again = await sub.one()
    assert (again.payload, again.attempt) == (b"expires", 2)
    await later(broker, 6)  # past its TTL (10 s): expired, not delivered again
    f = await figures(world, "s")
    assert (f.backlog, f.in_flight) == (1, 0)  # the scheduled one only
    await later(broker, 60)  # due now
    due = await sub.one()
    assert due.payload == b"scheduled"
    await settle(world, "c", [due])
    await sub.nothing()
    listed = await world.messaging.ListMessages(
        pb.ListMessagesRequest(subscription="s", status=pb.MESSAGE_STATUS_EXPIRED)
    )
    assert [m.payload for m in listed.messages] == [b"expires"]
    sub.cancel()
