"""Publish's batched form: several messages in one entry, each judged as Send judges it, confirmed
together by one response with one result per message; each message counts against the window."""

from __future__ import annotations

import asyncio

import grpc

import broker.servicers.messaging as messaging_servicer
from broker.pb import messaging_pb2 as pb

from .messaging_support import get, register, to
from .test_messaging_publish import entry, publish


def msg(payload: bytes, sender: str = "alice", recipient: str = "bob", **kw) -> pb.SendRequest:
    return pb.SendRequest(sender_id=sender, target=to(recipient), payload=payload, **kw)


async def test_a_batched_entry_is_confirmed_once_with_a_result_per_message(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    batch = pb.PublishRequest(
        sequence=2,
        messages=[
            msg(b"a"),
            msg(b"b", priority=99),  # refused alone
            msg(b"c", sender="ghost"),  # refused alone
            msg(b"d", idempotency_key="k"),
            msg(b"e", idempotency_key="k"),  # the same key: the first one's ids
        ],
    )
    confirms, _ = await asyncio.wait_for(publish(stubs, [entry(1), batch, entry(3)]), 30)
    assert [c.sequence for c in confirms] == [1, 2, 3]
    single, batched, last = confirms
    assert single.code == last.code == 0 and len(single.message_ids) == 1 and not single.results
    assert batched.code == 0 and len(batched.results) == 5
    a, bad_priority, ghost, d, e = batched.results
    assert a.code == 0 and len(a.message_ids) == 1
    assert bad_priority.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "messages[1].priority" in bad_priority.error and not bad_priority.message_ids
    assert ghost.code == grpc.StatusCode.NOT_FOUND.value[0] and not ghost.message_ids
    assert d.code == e.code == 0 and e.duplicate and e.message_ids == d.message_ids and not d.duplicate
    r = await stubs.messaging.ListMessages(pb.ListMessagesRequest(sender_id="alice"))
    assert sorted(m.payload for m in r.messages) == [b"1", b"3", b"a", b"d"]  # committed when confirmed


async def test_a_batched_entry_with_both_forms_or_over_the_window_ends_the_stream(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    window = messaging_servicer.PUBLISH_WINDOW
    for bad, word in [
        (pb.PublishRequest(sequence=2, message=msg(b"x"), messages=[msg(b"y")]), "messages"),
        (pb.PublishRequest(sequence=2, messages=[msg(b"z")] * (window + 1)), f"at most {window}"),
    ]:
        call = stubs.messaging.Publish(iter([entry(1), bad]))
        got = []
        try:
            async for c in call:
                got.append(c)
            raise AssertionError("the stream should have ended with INVALID_ARGUMENT")
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and word in (err.details() or "")
        assert [c.sequence for c in got] == [1]  # what came before is still answered
    r = await stubs.messaging.ListMessages(pb.ListMessagesRequest(sender_id="alice"))
    assert sorted(m.payload for m in r.messages) == [b"1", b"1"]  # nothing of the bad entries


async def test_a_reply_and_a_traced_message_in_a_batched_entry_are_sent_as_send_sends_them(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    (first,), _ = await asyncio.wait_for(publish(stubs, [entry(1, conversation_id="c1")]), 30)
    original = first.message_ids[0]
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    batch = pb.PublishRequest(
        sequence=2,
        messages=[
            msg(b"plain"),
            msg(b"reply", sender="bob", recipient="alice", in_reply_to=original),
            msg(b"traced", headers={"traceparent": tp}),
            msg(b"orphan", in_reply_to="no-such-message"),  # refused alone
        ],
    )
    (confirm,), _ = await asyncio.wait_for(publish(stubs, [batch]), 30)
    plain, reply, traced, orphan = confirm.results
    assert plain.code == reply.code == traced.code == 0
    assert orphan.code == grpc.StatusCode.NOT_FOUND.value[0] and "in_reply_to" in orphan.error
    got = await get(stubs, reply.message_ids[0])
    assert got.conversation_id == "c1" and got.headers["a2a.in_reply_to"] == original
    assert (await get(stubs, traced.message_ids[0])).headers["traceparent"].split("-")[1] == tp.split("-")[1]
