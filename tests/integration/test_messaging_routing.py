"""Broadcast (a copy per recipient), anycast (exactly one of the capable agents), idempotency."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from broker.pb import messaging_pb2 as pb
from tests.conftest import eventually
from tests.integration.messaging_support import Sub, ack, get, register, send


async def test_broadcast_gives_each_agent_its_own_copy_and_a_silent_one_holds_nobody_back(stubs):
    await register(stubs, "boss")
    for name in ("w1", "w2", "w3"):
        await register(stubs, name)
    r = await stubs.messaging.Send(
        pb.SendRequest(sender_id="boss", target=pb.Target(broadcast=pb.Broadcast()), payload=b"all hands")
    )
    assert len(r.message_ids) == 3  # the sender is left out
    subs = {name: await Sub.open(stubs, name, ack_deadline={"seconds": 60}) for name in ("w1", "w2", "w3")}
    copies = {name: await sub.one() for name, sub in subs.items()}
    assert {m.recipient_id for m in copies.values()} == {"w1", "w2", "w3"}
    assert len({m.message_id for m in copies.values()}) == 3
    assert len({m.send_id for m in copies.values()}) == 1
    assert all(
        m.target_kind == pb.TARGET_KIND_BROADCAST and m.payload == b"all hands" for m in copies.values()
    )

    # w1 and w2 ack; w3 does not: the others' copies are done, w3's stays delivered.
    assert await ack(stubs, "w1", [copies["w1"].message_id]) == 1
    assert await ack(stubs, "w2", [copies["w2"].message_id]) == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:  # one's copy is not another's
        await ack(stubs, "w1", [copies["w3"].message_id])
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    statuses = {name: (await get(stubs, m.message_id)).status for name, m in copies.items()}
    assert statuses == {
        "w1": pb.MESSAGE_STATUS_PROCESSED,
        "w2": pb.MESSAGE_STATUS_PROCESSED,
        "w3": pb.MESSAGE_STATUS_DELIVERED,
    }
    # A later message still flows to w1 and w2 while w3 sits on its copy.
    nxt = await stubs.messaging.Send(
        pb.SendRequest(sender_id="boss", target=pb.Target(broadcast=pb.Broadcast()))
    )
    assert len(nxt.message_ids) == 3
    assert (await subs["w1"].one()).send_id == (await subs["w2"].one()).send_id
    for sub in subs.values():
        sub.cancel()


async def test_broadcast_filtered_by_capability_and_including_the_sender(stubs):
    await register(stubs, "boss", ["gpu"])
    await register(stubs, "g1", ["gpu"])
    await register(stubs, "c1", ["cpu"])
    r = await stubs.messaging.Send(
        pb.SendRequest(
            sender_id="boss", target=pb.Target(broadcast=pb.Broadcast(capability="gpu", include_sender=True))
        )
    )
    recipients = sorted([(await get(stubs, mid)).recipient_id for mid in r.message_ids])
    assert recipients == ["boss", "g1"]
    r = await stubs.messaging.Send(
        pb.SendRequest(sender_id="boss", target=pb.Target(broadcast=pb.Broadcast(capability="tpu")))
    )
    assert list(r.message_ids) == []  # nobody matched: nothing stored, not an error


async def test_anycast_delivers_each_message_to_exactly_one_capable_agent(stubs, broker):
    await register(stubs, "boss")
    await register(stubs, "a1", ["summarize"])
    await register(stubs, "a2", ["summarize", "translate"])
    await register(stubs, "other", ["translate"])
    s1 = await Sub.open(stubs, "a1", max_in_flight=5, max_batch=2)
    s2 = await Sub.open(stubs, "a2", max_in_flight=5, max_batch=2)
    s3 = await Sub.open(stubs, "other", broker=broker)
    n = 40
    target = pb.Target(anycast=pb.Anycast(capability="summarize"))
    # One batch: a backlog bigger than one agent's max_in_flight, so both must take part.
    r = await stubs.messaging.SendBatch(
        pb.SendBatchRequest(
            messages=[pb.SendRequest(sender_id="boss", target=target, payload=b"%d" % i) for i in range(n)]
        )
    )
    sent = [res.message_ids[0] for res in r.results]
    got: dict[str, list[str]] = {"a1": [], "a2": []}

    async def drain(name, sub):
        while len(got["a1"]) + len(got["a2"]) < n:
            try:
                batch = await sub.batch(timeout=0.5)
            except AssertionError:
                continue
            got[name].extend(m.message_id for m in batch)
            assert all(m.recipient_id == name and m.target_kind == pb.TARGET_KIND_ANYCAST for m in batch)
            await ack(stubs, name, [m.message_id for m in batch])

    await asyncio.wait_for(asyncio.gather(drain("a1", s1), drain("a2", s2)), 20)
    assert sorted(got["a1"] + got["a2"]) == sorted(sent)  # every message, exactly once
    assert not set(got["a1"]) & set(got["a2"])
    assert got["a1"] and got["a2"]  # spread over both (each holds at most 5 at a time)
    await s3.nothing()  # no capability, no copy
    for s in (s1, s2, s3):
        s.cancel()


async def test_anycast_released_by_one_agent_goes_to_another(stubs, broker):
    await register(stubs, "boss")
    await register(stubs, "a1", ["x"])
    await register(stubs, "a2", ["x"])
    mid = await send(stubs, "boss", pb.Target(anycast=pb.Anycast(capability="x")))
    s1 = await Sub.open(stubs, "a1", ack_deadline={"seconds": 3600})
    assert (await s1.one()).message_id == mid
    s2 = await Sub.open(stubs, "a2", broker=broker)
    await s2.nothing()
    s1.cancel()  # a1 leaves without acking: the copy goes back to the pool
    m = await s2.one()
    assert (m.message_id, m.recipient_id, m.attempt) == (mid, "a2", 2)
    s2.cancel()


async def test_anycast_with_no_capable_agent_is_refused_when_the_send_requires_one(stubs):
    await register(stubs, "boss")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await send(stubs, "boss", pb.Target(anycast=pb.Anycast(capability="nobody")), require_recipient=True)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "target.anycast.capability" in err.value.details()


async def test_idempotency_key_yields_one_message(stubs, broker):
    await register(stubs, "alice")
    await register(stubs, "bob")
    req = pb.SendRequest(
        sender_id="alice", target=pb.Target(agent_id="bob"), payload=b"p", idempotency_key="k-1"
    )
    first = await stubs.messaging.Send(req)
    again = await stubs.messaging.Send(req)
    assert not first.duplicate and again.duplicate
    assert list(again.message_ids) == list(first.message_ids)
    # The same key inside one batch, and from another sender, behave the same way.
    batch = await stubs.messaging.SendBatch(pb.SendBatchRequest(messages=[req, req]))
    assert [list(r.message_ids) for r in batch.results] == [list(first.message_ids)] * 2
    await register(stubs, "carol")
    other = await stubs.messaging.Send(
        pb.SendRequest(sender_id="carol", target=pb.Target(agent_id="bob"), idempotency_key="k-1")
    )
    assert not other.duplicate and list(other.message_ids) != list(first.message_ids)

    listed = await stubs.messaging.ListMessages(pb.ListMessagesRequest(recipient_id="bob"))
    assert len(listed.messages) == 2
    sub = await Sub.open(stubs, "bob", broker=broker)
    await sub.take(2)
    await sub.nothing()
    sub.cancel()


async def test_idempotent_broadcast_returns_every_copy(stubs):
    for name in ("boss", "w1", "w2"):
        await register(stubs, name)
    req = pb.SendRequest(sender_id="boss", target=pb.Target(broadcast=pb.Broadcast()), idempotency_key="b")
    first = await stubs.messaging.Send(req)
    again = await stubs.messaging.Send(req)
    assert len(first.message_ids) == 2 and list(again.message_ids) == list(first.message_ids)

    async def two_copies():
        r = await stubs.messaging.ListMessages(pb.ListMessagesRequest(sender_id="boss"))
        return len(r.messages) == 2

    await eventually(two_copies)
