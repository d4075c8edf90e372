"""Consume: a subscription with acks and nacks on the same bidirectional stream."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from broker.pb import messaging_pb2 as pb
from broker.server import start_server
from tests.conftest import Stubs, make_settings

from .messaging_support import get, register, send
from .security_support import authed_stubs, issue

OK = 0


class Consumer:
    """One Consume call: deliveries and confirmations read into two queues by a task."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.messages: asyncio.Queue[pb.Message] = asyncio.Queue()
        self.confirms: asyncio.Queue[pb.ConsumeConfirm] = asyncio.Queue()
        self.ended: asyncio.Future[grpc.StatusCode] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())
        self._seq = 0

    @classmethod
    async def open(cls, stubs: Stubs, agent_id: str, **kw: Any) -> Consumer:
        call = stubs.messaging.Consume()
        await call.write(pb.ConsumeRequest(subscribe=pb.SubscribeRequest(agent_id=agent_id, **kw)))
        await asyncio.wait_for(call.initial_metadata(), 5)
        return cls(call)

    async def _read(self) -> None:
        try:
            async for resp in self.call:
                if resp.HasField("confirm"):
                    self.confirms.put_nowait(resp.confirm)
                for m in resp.messages:
                    self.messages.put_nowait(m)
            self.ended.set_result(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as err:
            self.ended.set_result(err.code())

    async def take(self, n: int) -> list[pb.Message]:
        return [await asyncio.wait_for(self.messages.get(), 5) for _ in range(n)]

    async def settle(self, **kw: Any) -> pb.ConsumeConfirm:
        """Write one ack/nack request and wait for its confirmation."""
        self._seq += 1
        await self.call.write(pb.ConsumeRequest(sequence=self._seq, **kw))
        confirm = await asyncio.wait_for(self.confirms.get(), 5)
        assert confirm.sequence == self._seq
        return confirm

    def cancel(self) -> None:
        self.call.cancel()
        self._reader.cancel()


async def test_acks_on_the_stream_are_committed_before_their_confirmation(stubs):
    await register(stubs, "s")
    await register(stubs, "r")
    ids = [await send(stubs, "s", "r", f"m{i}".encode()) for i in range(3)]
    c = await Consumer.open(stubs, "r")
    got = await c.take(3)
    assert [m.message_id for m in got] == ids
    confirm = await c.settle(ack_ids=ids)
    assert (confirm.code, confirm.acked) == (OK, 3)
    for mid in ids:  # committed when confirmed
        assert (await get(stubs, mid)).status == pb.MESSAGE_STATUS_PROCESSED
    c.cancel()


async def test_confirmations_come_in_request_order(stubs):
    await register(stubs, "s")
    await register(stubs, "r")
    ids = [await send(stubs, "s", "r") for _ in range(20)]
    c = await Consumer.open(stubs, "r", max_in_flight=100)
    await c.take(20)
    for i, mid in enumerate(ids):  # written back to back, settled concurrently
        await c.call.write(pb.ConsumeRequest(sequence=i + 1, ack_ids=[mid]))
    confirms = [await asyncio.wait_for(c.confirms.get(), 5) for _ in ids]
    assert [x.sequence for x in confirms] == list(range(1, 21))
    assert all(x.code == OK and x.acked == 1 for x in confirms)
    c.cancel()


async def test_an_ack_of_another_agents_message_is_refused_alone_and_the_stream_goes_on(stubs):
    for agent in ("s", "r", "other"):
        await register(stubs, agent)
    theirs = await send(stubs, "s", "other")
    mine = await send(stubs, "s", "r")
    c = await Consumer.open(stubs, "r")
    assert (await c.take(1))[0].message_id == mine
    refused = await c.settle(ack_ids=[theirs])
    assert refused.code == grpc.StatusCode.PERMISSION_DENIED.value[0] and refused.acked == 0
    assert (await get(stubs, theirs)).status == pb.MESSAGE_STATUS_PENDING  # nothing changed
    assert (await c.settle(ack_ids=[mine])).acked == 1  # the stream goes on
    c.cancel()


async def test_unacked_messages_are_redelivered_when_the_stream_is_lost(stubs):
    await register(stubs, "s")
    await register(stubs, "r")
    mid = await send(stubs, "s", "r")
    first = await Consumer.open(stubs, "r")
    assert (await first.take(1))[0].attempt == 1
    first.cancel()
    again = await Consumer.open(stubs, "r")
    m = (await again.take(1))[0]
    assert (m.message_id, m.attempt) == (mid, 2)
    again.cancel()


async def test_an_ack_sent_after_reconnecting_counts_for_a_message_of_the_lost_stream(stubs):
    await register(stubs, "s")
    await register(stubs, "r")
    mid = await send(stubs, "s", "r")
    first = await Consumer.open(stubs, "r")
    await first.take(1)
    first.cancel()  # released for redelivery, not yet redelivered...
    second = await Consumer.open(stubs, "r", max_in_flight=1)
    # ...unless the new stream took it already: either way the ack of that id counts once.
    confirm = await second.settle(ack_ids=[mid])
    assert (confirm.code, confirm.acked) == (OK, 1)
    assert (await get(stubs, mid)).status == pb.MESSAGE_STATUS_PROCESSED
    second.cancel()


async def test_nacks_on_the_stream_requeue_or_dead_letter(stubs):
    await register(stubs, "s")
    await register(stubs, "r")
    a = await send(stubs, "s", "r")
    b = await send(stubs, "s", "r")
    c = await Consumer.open(stubs, "r")
    await c.take(2)
    confirm = await c.settle(nack_ids=[a])
    assert (confirm.requeued, confirm.dead_lettered) == (1, 0)
    assert (await c.take(1))[0].message_id == a  # redelivered on the same stream
    confirm = await c.settle(nack_ids=[b], reject=True, reason="malformed")
    assert (confirm.requeued, confirm.dead_lettered) == (0, 1)
    assert (await get(stubs, b)).status == pb.MESSAGE_STATUS_FAILED
    c.cancel()


async def test_closing_the_request_side_ends_the_stream_after_the_last_confirmation(stubs):
    await register(stubs, "s")
    await register(stubs, "r")
    mid = await send(stubs, "s", "r")
    c = await Consumer.open(stubs, "r")
    await c.take(1)
    await c.call.write(pb.ConsumeRequest(sequence=1, ack_ids=[mid]))
    await c.call.done_writing()
    assert (await asyncio.wait_for(c.confirms.get(), 5)).acked == 1
    assert await asyncio.wait_for(c.ended, 5) == grpc.StatusCode.OK


@pytest.mark.parametrize(
    "requests",
    [
        [pb.ConsumeRequest(sequence=1, ack_ids=["x"])],  # no subscription first
        [
            pb.ConsumeRequest(subscribe=pb.SubscribeRequest(agent_id="r")),
            pb.ConsumeRequest(subscribe=pb.SubscribeRequest(agent_id="r")),  # a second one
        ],
    ],
    ids=["no-subscribe-first", "subscribe-twice"],
)
async def test_a_stream_not_opened_by_exactly_one_subscribe_is_invalid(stubs, requests):
    await register(stubs, "r")
    call = stubs.messaging.Consume()
    for r in requests:
        await call.write(r)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "subscribe" in (err.value.details() or "")


async def test_with_auth_an_agent_consumes_only_as_itself(tmp_path):
    b = await start_server(make_settings(tmp_path, auth="token"))
    try:
        admin = authed_stubs(b.address, issue(b.settings.db, "ops", "admin"))
        alice = authed_stubs(b.address, issue(b.settings.db, "alice"))
        await register(admin, "bob")
        call = alice.messaging.Consume()
        await call.write(pb.ConsumeRequest(subscribe=pb.SubscribeRequest(agent_id="bob")))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await register(admin, "alice")
        own = await Consumer.open(alice, "alice")
        own.cancel()
        await admin.channel.close()
        await alice.channel.close()
    finally:
        await b.stop(0.2)
