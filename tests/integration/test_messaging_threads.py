"""Threads: a reply names the message it answers and joins its conversation and correlation;
ListConversations shows who took part, how many sends (a broadcast once) and the latest."""

from __future__ import annotations

import grpc

from broker.pb import messaging_pb2 as pb
from tests.conftest import next_within

from .messaging_support import get, register, send


async def test_a_reply_inherits_the_conversation_and_correlation_unless_it_names_its_own(stubs):
    for a in ("asker", "expert"):
        await register(stubs, a)
    question = await send(stubs, "asker", "expert", b"why?", conversation_id="c-1", correlation_id="q-7")
    answer = await send(stubs, "expert", "asker", b"because", in_reply_to=question)
    m = await get(stubs, answer)
    assert (m.in_reply_to, m.conversation_id, m.correlation_id) == (question, "c-1", "q-7")
    assert m.headers["a2a.in_reply_to"] == question
    own = await send(stubs, "asker", "expert", b"new topic", in_reply_to=answer, conversation_id="c-2")
    m = await get(stubs, own)
    assert (m.in_reply_to, m.conversation_id, m.correlation_id) == (answer, "c-2", "q-7")
    assert not (await get(stubs, question)).in_reply_to
    with_error = pb.SendRequest(
        sender_id="asker", target=pb.Target(agent_id="expert"), in_reply_to="m-missing"
    )
    try:
        await stubs.messaging.Send(with_error)
        raise AssertionError("a reply to no message was accepted")
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND and "in_reply_to" in (exc.details() or "")
    bad = pb.SendRequest(sender_id="asker", target=pb.Target(agent_id="expert"), in_reply_to="no spaces!")
    try:
        await stubs.messaging.Send(bad)
        raise AssertionError("a malformed in_reply_to was accepted")
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "in_reply_to" in (exc.details() or "")


async def test_conversations_are_listed_with_participants_counts_and_latest_activity(stubs):
    for a, caps in (("lead", ()), ("w1", ("crew",)), ("w2", ("crew",)), ("stranger", ())):
        await register(stubs, a, caps)
    shout = pb.SendRequest(
        sender_id="lead", target=pb.Target(broadcast=pb.Broadcast(capability="crew")), conversation_id="c-a"
    )
    assert len((await stubs.messaging.Send(shout)).message_ids) == 2  # a copy each for w1 and w2
    first = await send(stubs, "w1", "lead", b"on it", conversation_id="c-a")
    await send(stubs, "lead", "w1", b"thanks", in_reply_to=first)
    await send(stubs, "stranger", "stranger", b"note to self", conversation_id="c-b")
    r = await stubs.messaging.ListConversations(pb.ListConversationsRequest(participant="lead"))
    (c,) = r.conversations
    assert (c.conversation_id, list(c.participants), c.message_count) == ("c-a", ["lead", "w1", "w2"], 3)
    assert c.last_activity.seconds > 0 and not r.next_page_token
    everyone = await stubs.messaging.ListConversations(pb.ListConversationsRequest(page_size=1))
    assert [x.conversation_id for x in everyone.conversations] == ["c-a"] and everyone.next_page_token
    rest = await stubs.messaging.ListConversations(
        pb.ListConversationsRequest(page_size=1, page_token=everyone.next_page_token)
    )
    assert [x.conversation_id for x in rest.conversations] == ["c-b"] and not rest.next_page_token


async def test_the_python_client_replies_and_lists_conversations(broker):
    from a2a_broker_client import BrokerClient

    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("asker")
        await client.register("expert")
        await client.send("asker", "expert", "what time is it?", conversation_id="c-9", correlation_id="r-1")
        consumption = client.consume("expert")
        async with consumption:
            question = await anext(aiter(consumption))
            sent = await client.reply(question, "noon")
            await consumption.ack(question.message_id)
        answer = await client.get_message(sent.message_ids[0])
        assert (answer.in_reply_to, answer.conversation_id, answer.correlation_id) == (
            question.message_id,
            "c-9",
            "r-1",
        )
        assert (answer.sender_id, answer.recipient_id) == ("expert", "asker")
        (c,) = (await client.list_conversations(participant="asker")).items
        assert (c.conversation_id, c.participants, c.message_count) == ("c-9", ("asker", "expert"), 2)


async def test_a_conversation_lists_a_broadcast_once_with_each_recipients_state(stubs):
    for a, caps in (("host", ()), ("g1", ("guest",)), ("g2", ("guest",))):
        await register(stubs, a, caps)
    invite = pb.SendRequest(
        sender_id="host",
        target=pb.Target(broadcast=pb.Broadcast(capability="guest")),
        conversation_id="party",
    )
    copies = list((await stubs.messaging.Send(invite)).message_ids)
    rsvp = await send(stubs, "g1", "host", b"coming", in_reply_to=copies[0])
    sub = stubs.messaging.Subscribe(pb.SubscribeRequest(agent_id="g1"))
    got = await next_within(sub)
    await stubs.messaging.Ack(pb.AckRequest(agent_id="g1", message_ids=[m.message_id for m in got.messages]))
    sub.cancel()
    plain = await stubs.messaging.ListMessages(pb.ListMessagesRequest(conversation_id="party"))
    assert len(plain.messages) == 3  # two copies and the reply
    folded = await stubs.messaging.ListMessages(
        pb.ListMessagesRequest(conversation_id="party", fold_broadcasts=True)
    )
    first, reply = folded.messages
    assert first.send_id == reply.send_id or reply.message_id == rsvp
    states = {(r.recipient_id, pb.MessageStatus.Name(r.status)) for r in first.recipients}
    assert states == {("g1", "MESSAGE_STATUS_PROCESSED"), ("g2", "MESSAGE_STATUS_PENDING")}
    assert sorted(r.message_id for r in first.recipients) == sorted(copies)
    assert reply.message_id == rsvp and list(reply.recipients) == []


async def test_the_python_client_folds_a_broadcast(broker):
    from a2a_broker_client import BrokerClient, MessageStatus, Target

    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("h")
        for g in ("x1", "x2"):
            await client.register(g, capabilities=["g"])
        await client.send("h", Target.broadcast("g"), "hi all", conversation_id="fold")
        (m,) = (await client.list_messages(conversation_id="fold", fold_broadcasts=True)).items
        assert sorted((r[1], r[2]) for r in m.recipients) == [
            ("x1", MessageStatus.PENDING),
            ("x2", MessageStatus.PENDING),
        ]
