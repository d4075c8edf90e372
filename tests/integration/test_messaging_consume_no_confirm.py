"""Consume's acks without a confirmation frame (``no_confirm``): committed all the same, answered
only when refused; a later confirmed request says, by its order, that they are committed."""

from __future__ import annotations

import asyncio

import grpc

from broker.pb import messaging_pb2 as pb

from .messaging_support import get, register, send
from .test_messaging_consume import Consumer

OK = 0


async def test_an_ack_without_confirmation_is_committed_and_answered_by_the_next_confirmation(stubs):
    await register(stubs, "s")
    await register(stubs, "r")
    ids = [await send(stubs, "s", "r") for _ in range(3)]
    c = await Consumer.open(stubs, "r", max_in_flight=10)
    await c.take(3)
    await c.call.write(pb.ConsumeRequest(sequence=1, ack_ids=ids[:2], no_confirm=True))
    c._seq = 1
    confirm = await c.settle(ack_ids=ids[2:])  # sequence 2: the first confirmation to come
    assert (confirm.sequence, confirm.code, confirm.acked) == (2, OK, 1)
    for mid in ids:  # committed, the unconfirmed ones too (confirmations come in order)
        assert (await get(stubs, mid)).status == pb.MESSAGE_STATUS_PROCESSED
    assert c.confirms.empty()  # no frame was sent for sequence 1
    c.cancel()


async def test_a_refused_ack_without_confirmation_is_still_answered(stubs):
    for agent in ("s", "r", "other"):
        await register(stubs, agent)
    theirs = await send(stubs, "s", "other")
    c = await Consumer.open(stubs, "r")
    await c.call.write(pb.ConsumeRequest(sequence=1, ack_ids=[theirs], no_confirm=True))
    refused = await asyncio.wait_for(c.confirms.get(), 5)
    assert (refused.sequence, refused.code) == (1, grpc.StatusCode.PERMISSION_DENIED.value[0])
    assert (await get(stubs, theirs)).status == pb.MESSAGE_STATUS_PENDING  # nothing changed
    c.cancel()


async def test_unconfirmed_acks_free_room_for_more_deliveries(stubs):
    await register(stubs, "s")
    await register(stubs, "r")
    ids = [await send(stubs, "s", "r") for _ in range(4)]
    c = await Consumer.open(stubs, "r", max_in_flight=2)
    first = await c.take(2)
    await c.call.write(pb.ConsumeRequest(sequence=1, ack_ids=[m.message_id for m in first], no_confirm=True))
    rest = await c.take(2)  # delivered once the acks are committed
    assert [m.message_id for m in first + rest] == ids
    assert c.confirms.empty()
    c.cancel()
