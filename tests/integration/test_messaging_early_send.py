"""Sending before the recipient exists: the message waits (TTL applies) and is delivered once
such an agent registers and subscribes; ``require_recipient`` restores the refusal."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2

from broker.pb import messaging_pb2 as pb
from tests.conftest import eventually
from tests.integration.messaging_support import Sub, ack, get, register, send, to


def anycast(cap: str) -> pb.Target:
    return pb.Target(anycast=pb.Anycast(capability=cap))


async def test_direct_send_to_an_unregistered_agent_waits_and_is_delivered_once_it_subscribes(stubs):
    await register(stubs, "alice")
    mid = await send(stubs, "alice", "late-bob", b"hello")
    listed = (await stubs.messaging.ListMessages(pb.ListMessagesRequest(recipient_id="late-bob"))).messages
    assert [m.message_id for m in listed] == [mid]
    assert listed[0].status == pb.MESSAGE_STATUS_PENDING and listed[0].awaiting_recipient
    await register(stubs, "late-bob")
    assert not (await get(stubs, mid)).awaiting_recipient
    sub = await Sub.open(stubs, "late-bob")
    m = await sub.one()
    assert (m.message_id, m.payload, m.recipient_id) == (mid, b"hello", "late-bob")
    assert await ack(stubs, "late-bob", [mid]) == 1
    sub.cancel()


async def test_anycast_to_a_capability_nobody_has_waits_for_a_capable_agent(stubs):
    await register(stubs, "boss")
    mid = await send(stubs, "boss", anycast("gpu"), b"job")
    m = await get(stubs, mid)
    assert m.status == pb.MESSAGE_STATUS_PENDING and m.awaiting_recipient
    await register(stubs, "worker", ["gpu"])
    sub = await Sub.open(stubs, "worker")
    got = await sub.one()
    assert (got.message_id, got.recipient_id) == (mid, "worker")
    sub.cancel()


async def test_a_waiting_message_expires_with_its_ttl(stubs):
    await register(stubs, "alice")
    mid = await send(stubs, "alice", "never", ttl=duration_pb2.Duration(nanos=200_000_000))

    async def expired() -> bool:
        return (await get(stubs, mid)).status == pb.MESSAGE_STATUS_EXPIRED

    await eventually(expired, what="the waiting message to expire")


async def test_require_recipient_refuses_an_unknown_recipient_and_stores_nothing(stubs):
    await register(stubs, "alice")
    for target, code, field in [
        (to("ghost"), grpc.StatusCode.NOT_FOUND, "target.agent_id"),
        (anycast("nobody"), grpc.StatusCode.FAILED_PRECONDITION, "target.anycast.capability"),
        (
            pb.Target(broadcast=pb.Broadcast(capability="nobody")),
            grpc.StatusCode.FAILED_PRECONDITION,
            "target",
        ),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.messaging.Send(
                pb.SendRequest(sender_id="alice", target=target, require_recipient=True)
            )
        assert err.value.code() == code
        assert err.value.details().startswith(field), err.value.details()
    assert list((await stubs.messaging.ListMessages(pb.ListMessagesRequest())).messages) == []


async def test_unknown_sender_is_still_not_found(stubs):
    await register(stubs, "bob")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await send(stubs, "ghost", "bob")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details().startswith("sender_id")


async def test_broadcast_with_nobody_there_is_accepted_with_no_copies(stubs):
    await register(stubs, "alice")
    r = await stubs.messaging.Send(
        pb.SendRequest(sender_id="alice", target=pb.Target(broadcast=pb.Broadcast(capability="tpu")))
    )
    assert list(r.message_ids) == []
