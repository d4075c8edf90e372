"""Bad input is refused with the right status, names the field, and stores nothing; reads and
their filters; retention."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from broker.pb import messaging_pb2 as pb
from tests.integration.messaging_support import Sub, get, register, send, to


@pytest.fixture
async def pair(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    return stubs


async def stored(stubs) -> int:
    return len((await stubs.messaging.ListMessages(pb.ListMessagesRequest())).messages)


def ok(**kw) -> pb.SendRequest:
    return pb.SendRequest(sender_id="alice", target=to("bob"), **kw)


MIB = 1024 * 1024

BAD_SENDS = [
    # (request, status, the field the message must name)
    (ok(priority=11), grpc.StatusCode.INVALID_ARGUMENT, "priority"),
    (ok(priority=-1), grpc.StatusCode.INVALID_ARGUMENT, "priority"),
    (ok(ttl=duration_pb2.Duration(seconds=-5)), grpc.StatusCode.INVALID_ARGUMENT, "ttl"),
    (ok(ttl=duration_pb2.Duration()), grpc.StatusCode.INVALID_ARGUMENT, "ttl"),
    (pb.SendRequest(sender_id="alice"), grpc.StatusCode.INVALID_ARGUMENT, "target"),
    (pb.SendRequest(sender_id="alice", target=pb.Target()), grpc.StatusCode.INVALID_ARGUMENT, "target"),
    (pb.SendRequest(sender_id="alice", target=to("")), grpc.StatusCode.INVALID_ARGUMENT, "target.agent_id"),
    (
        pb.SendRequest(sender_id="alice", target=pb.Target(anycast=pb.Anycast())),
        grpc.StatusCode.INVALID_ARGUMENT,
        "target.anycast.capability",
    ),
    (ok(payload=b"x" * (MIB + 1)), grpc.StatusCode.INVALID_ARGUMENT, "payload"),
    (
        pb.SendRequest(sender_id="alice", target=to("ghost"), require_recipient=True),
        grpc.StatusCode.NOT_FOUND,
        "target.agent_id",
    ),
    (pb.SendRequest(sender_id="ghost", target=to("bob")), grpc.StatusCode.NOT_FOUND, "sender_id"),
    (pb.SendRequest(target=to("bob")), grpc.StatusCode.INVALID_ARGUMENT, "sender_id"),
    (ok(max_attempts=0), grpc.StatusCode.INVALID_ARGUMENT, "max_attempts"),
    (ok(max_attempts=101), grpc.StatusCode.INVALID_ARGUMENT, "max_attempts"),
    (ok(message_type="t" * 129), grpc.StatusCode.INVALID_ARGUMENT, "message_type"),
    (ok(correlation_id="c" * 129), grpc.StatusCode.INVALID_ARGUMENT, "correlation_id"),
    (ok(idempotency_key="k" * 129), grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key"),
    (ok(headers={f"h{i}": "v" for i in range(65)}), grpc.StatusCode.INVALID_ARGUMENT, "headers"),
    (ok(expires_at=timestamp_pb2.Timestamp(seconds=1)), grpc.StatusCode.INVALID_ARGUMENT, "expires_at"),
]


@pytest.mark.parametrize(("req", "code", "field"), BAD_SENDS, ids=[f for _, _, f in BAD_SENDS])
async def test_bad_send_is_refused_naming_the_field_and_stores_nothing(pair, req, code, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pair.messaging.Send(req)
    assert err.value.code() == code
    assert err.value.details().startswith(field + ":"), err.value.details()
    assert await stored(pair) == 0


async def test_payload_at_the_limit_is_accepted(pair):
    await send(pair, "alice", "bob", b"x" * MIB)
    assert await stored(pair) == 1


async def test_deregistered_recipient_is_not_found_when_the_send_requires_it(pair):
    from broker.pb import agents_pb2 as apb

    await pair.agents.Deregister(apb.DeregisterRequest(agent_id="bob"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await send(pair, "alice", "bob", require_recipient=True)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    mid = await send(pair, "alice", "bob")  # without it: stored, waiting for bob to come back
    assert (await get(pair, mid)).awaiting_recipient


async def test_batch_with_one_bad_message_stores_none(pair):
    good = ok(payload=b"fine")
    for bad, code, field in [
        (ok(priority=11), grpc.StatusCode.INVALID_ARGUMENT, "messages[1].priority"),
        (
            pb.SendRequest(sender_id="alice", target=to("ghost"), require_recipient=True),
            grpc.StatusCode.NOT_FOUND,
            "messages[1].target",
        ),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pair.messaging.SendBatch(pb.SendBatchRequest(messages=[good, bad, good]))
        assert err.value.code() == code
        assert err.value.details().startswith(field), err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pair.messaging.SendBatch(pb.SendBatchRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "messages" in err.value.details()
    assert await stored(pair) == 0
    anycast = pb.SendRequest(
        sender_id="alice", target=pb.Target(anycast=pb.Anycast(capability="none")), require_recipient=True
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pair.messaging.SendBatch(pb.SendBatchRequest(messages=[good, anycast]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details().startswith("messages[1].target.anycast.capability"), err.value.details()
    assert await stored(pair) == 0
    r = await pair.messaging.SendBatch(pb.SendBatchRequest(messages=[good] * 3))
    assert len(r.results) == 3 and await stored(pair) == 3


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"max_in_flight": 10_001}, "max_in_flight"),
        ({"max_batch": 1001}, "max_batch"),
        ({"ack_deadline": duration_pb2.Duration(nanos=500_000_000)}, "ack_deadline"),
        ({"ack_deadline": duration_pb2.Duration(seconds=3601)}, "ack_deadline"),
    ],
)
async def test_bad_subscribe_options(pair, kw, field):
    call = pair.messaging.Subscribe(pb.SubscribeRequest(agent_id="bob", **kw))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field), err.value.details()


async def test_bad_ack_and_nack_input(pair):
    cases = [
        (pb.AckRequest(agent_id="bob"), "message_ids"),
        (pb.AckRequest(agent_id="", message_ids=["m"]), "agent_id"),
        (pb.AckRequest(agent_id="bob", message_ids=["ok", "bad id"]), "message_ids[1]"),
    ]
    for req, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pair.messaging.Ack(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(field), err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pair.messaging.Nack(
            pb.NackRequest(agent_id="bob", message_ids=["m"], delay=duration_pb2.Duration(seconds=-1))
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith("delay")


async def test_get_unknown_message_is_not_found(pair):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await get(pair, "nosuch")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_filters_and_pages(pair):
    stubs = pair
    await register(stubs, "carol")
    t0 = time.time_ns() // 1000
    a = [
        await send(stubs, "alice", "bob", conversation_id="conv-a", correlation_id=f"r{i}") for i in range(5)
    ]
    c = [await send(stubs, "carol", "alice", conversation_id="conv-b") for _ in range(2)]

    async def ids(**kw) -> list[str]:
        out, token = [], ""
        while True:
            r = await stubs.messaging.ListMessages(
                pb.ListMessagesRequest(page_size=2, page_token=token, **kw)
            )
            out += [m.message_id for m in r.messages]
            token = r.next_page_token
            if not token:
                return out

    assert await ids() == a + c  # enqueue order, over pages of 2
    assert await ids(conversation_id="conv-a") == a
    assert await ids(correlation_id="r3") == [a[3]]
    assert await ids(sender_id="carol") == c
    assert await ids(recipient_id="alice") == c
    assert await ids(status=pb.MESSAGE_STATUS_PENDING, recipient_id="bob") == a
    assert await ids(status=pb.MESSAGE_STATUS_DELIVERED) == []
    cut = (await get(stubs, c[0])).created_at
    assert await ids(created_before=cut) == a
    assert await ids(created_after=cut) == c
    assert (
        await ids(created_after=timestamp_pb2.Timestamp(seconds=t0 // 1_000_000 - 3600), sender_id="alice")
        == a
    )

    sub = await Sub.open(stubs, "bob")
    await sub.take(5)
    assert await ids(status=pb.MESSAGE_STATUS_DELIVERED) == a
    sub.cancel()

    for req, field in [
        (pb.ListMessagesRequest(page_size=1001), "page_size"),
        (pb.ListMessagesRequest(page_token="garbage!"), "page_token"),
        (pb.ListMessagesRequest(status=42), "status"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.messaging.ListMessages(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(field), err.value.details()


FAR = 10**15  # seconds: beyond year 9999, the end of the Timestamp range


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"ttl": duration_pb2.Duration(seconds=10**17)}, "ttl"),
        ({"expires_at": timestamp_pb2.Timestamp(seconds=FAR)}, "expires_at"),
        ({"deliver_after": timestamp_pb2.Timestamp(seconds=FAR)}, "deliver_after"),
    ],
)
async def test_out_of_range_time_is_invalid_and_does_not_fail_concurrent_sends(pair, kw, field):
    # Sends arriving together share one write job: a bad one must be refused on its own
    # (INVALID_ARGUMENT naming the field), not fail its neighbours' sends with INTERNAL.
    goods = [pair.messaging.Send(ok(payload=b"fine")) for _ in range(20)]
    results = await asyncio.gather(pair.messaging.Send(ok(**kw)), *goods, return_exceptions=True)
    bad = results[0]
    assert isinstance(bad, grpc.aio.AioRpcError), bad
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad.details().startswith(field + ":"), bad.details()
    assert all(isinstance(r, pb.SendResponse) for r in results[1:]), results[1:]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pair.messaging.SendBatch(pb.SendBatchRequest(messages=[ok(), ok(**kw)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("messages[1]." + field + ":"), err.value.details()
    assert await stored(pair) == 20


@pytest.mark.parametrize("part", [10**30, "x", None])
async def test_well_encoded_but_foreign_page_token_is_invalid(pair, part):
    from broker.models.common import encode_page_token

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pair.messaging.ListMessages(pb.ListMessagesRequest(page_token=encode_page_token(part)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("page_token:"), err.value.details()


async def test_out_of_range_list_filter_is_invalid(pair):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pair.messaging.ListMessages(
            pb.ListMessagesRequest(created_after=timestamp_pb2.Timestamp(seconds=FAR))
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("created_after:"), err.value.details()
