"""Large messages: each Subscribe response is capped by bytes (as the subscriber states, 4 MiB by
default) as well as by count, so a backlog of messages at the payload limit is delivered to a
client with gRPC's default 4 MiB receive limit, none dead-lettered."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from broker.pb import messaging_pb2 as pb
from broker.pb import messaging_pb2_grpc as pb_grpc
from tests.conftest import eventually
from tests.integration.messaging_support import Sub, ack, register, send

MIB = 1024 * 1024


async def test_a_backlog_of_1_mib_messages_is_delivered_within_the_default_receive_limit(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    ids = [await send(stubs, "alice", "bob", bytes([i]) * MIB) for i in range(8)]
    sub = await Sub.open(stubs, "bob")  # a channel with gRPC's default 4 MiB receive limit
    got = await sub.take(8, timeout=20)
    assert sorted(m.message_id for m in got) == sorted(ids)
    assert all(m.attempt == 1 and len(m.payload) == MIB for m in got)
    assert await ack(stubs, "bob", ids) == 8
    dead = await stubs.messaging.ListMessages(pb.ListMessagesRequest(status=pb.MESSAGE_STATUS_FAILED))
    assert list(dead.messages) == []
    sub.cancel()


async def test_responses_respect_the_byte_limit_the_subscriber_states(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    for _ in range(6):
        await send(stubs, "alice", "bob", b"x" * 100_000)
    await send(stubs, "alice", "bob", b"y" * 300_000)  # alone over the limit: sent on its own
    sub = await Sub.open(stubs, "bob", max_response_bytes=250_000)
    sizes = []
    while sum(sizes) < 7:
        batch = await sub.batch()
        assert sum(len(m.payload) for m in batch) <= 250_000 or len(batch) == 1
        sizes.append(len(batch))
    assert max(sizes) == 2  # two of 100 kB fit, three do not
    sub.cancel()


@pytest.mark.parametrize("value", [-1, 1023, 64 * MIB + 1])
async def test_a_bad_response_byte_limit_is_refused(stubs, value):
    await register(stubs, "bob")
    call = stubs.messaging.Subscribe(pb.SubscribeRequest(agent_id="bob", max_response_bytes=value))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("max_response_bytes"), err.value.details()


async def test_a_delivery_whose_write_never_completed_is_released_without_spending_an_attempt(broker, stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    for _ in range(40):
        await send(stubs, "alice", "bob", b"x" * (512 * 1024))
    # Never read, on a channel that keeps its flow-control window at 64 KiB: a write blocks.
    slow = grpc.aio.insecure_channel(broker.address, options=[("grpc.http2.bdp_probe", 0)])
    call = pb_grpc.MessagingStub(slow).Subscribe(pb.SubscribeRequest(agent_id="bob", max_batch=1))
    await asyncio.wait_for(call.initial_metadata(), 5)

    async def listed(status: int) -> list[pb.Message]:
        out: list[pb.Message] = []
        token = ""
        while True:  # small pages: a page of these is larger than the 4 MiB receive limit
            r = await stubs.messaging.ListMessages(
                pb.ListMessagesRequest(status=status, page_size=4, page_token=token)
            )
            out += r.messages
            token = r.next_page_token
            if not token:
                return out

    async def blocked() -> bool:
        return bool(await listed(pb.MESSAGE_STATUS_DELIVERED))

    await eventually(blocked, what="deliveries on the stream")
    call.cancel()  # the subscriber leaves while a response is still being written

    async def released() -> list[pb.Message]:
        return [] if await listed(pb.MESSAGE_STATUS_DELIVERED) else await listed(pb.MESSAGE_STATUS_PENDING)

    pending = await eventually(released, what="the deliveries to be released")
    await slow.close()
    unsent = [m for m in pending if m.last_error.startswith("not transmitted")]
    assert unsent and all(m.attempt == 0 for m in unsent), pending


async def test_a_list_page_of_large_messages_stays_within_the_default_receive_limit(stubs):
    """ListMessages cuts a page short (with a next page token) before it passes 4 MiB, so a client
    with gRPC's default receive limit can page through 1 MiB messages."""
    await register(stubs, "alice")
    await register(stubs, "bob")
    big = b"x" * (1024 * 1024 - 1024)
    sent = [await send(stubs, "alice", "bob", big) for _ in range(9)]
    seen: list[str] = []
    token, pages = "", 0
    while True:
        r = await stubs.messaging.ListMessages(pb.ListMessagesRequest(page_size=100, page_token=token))
        pages += 1
        assert 1 <= len(r.messages) <= 3
        seen += [m.message_id for m in r.messages]
        if not (token := r.next_page_token):
            break
    assert seen == sent and pages >= 3
