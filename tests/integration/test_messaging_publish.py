"""Messaging.Publish: Send on one stream with publisher confirms, in order, each entry judged on
its own, idempotent, within the window the broker states, and each entry's sender checked."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

import broker.servicers.messaging as messaging_servicer
from broker.pb import messaging_pb2 as pb
from broker.server import start_server
from tests.conftest import eventually, make_settings

from .messaging_support import get, register, to
from .security_support import authed_stubs, issue


def entry(seq: int, sender: str = "alice", recipient: str = "bob", **kw) -> pb.PublishRequest:
    return pb.PublishRequest(
        sequence=seq,
        message=pb.SendRequest(sender_id=sender, target=to(recipient), payload=b"%d" % seq, **kw),
    )


async def publish(stubs, entries: list[pb.PublishRequest]) -> tuple[list[pb.PublishResponse], dict]:
    call = stubs.messaging.Publish(iter(entries))
    headers = dict(await asyncio.wait_for(call.initial_metadata(), 10))
    confirms = [c async for c in call]
    return confirms, headers


async def test_confirms_come_in_order_after_commit_and_state_the_window(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    confirms, headers = await asyncio.wait_for(publish(stubs, [entry(i) for i in range(1, 301)]), 30)
    assert headers["a2a-publish-window"] == str(messaging_servicer.PUBLISH_WINDOW)
    assert [c.sequence for c in confirms] == list(range(1, 301))
    assert all(c.code == 0 and len(c.message_ids) == 1 for c in confirms)
    for c in (confirms[0], confirms[-1]):  # committed before its confirm
        m = await get(stubs, c.message_ids[0])
        assert m.payload == b"%d" % c.sequence and m.status == pb.MESSAGE_STATUS_PENDING


async def test_a_refused_entry_is_answered_alone_and_the_others_commit(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    entries = [entry(1), entry(2, priority=99), entry(3, sender="ghost"), entry(4)]
    confirms, _ = await asyncio.wait_for(publish(stubs, entries), 30)
    assert [c.sequence for c in confirms] == [1, 2, 3, 4]
    ok, bad_priority, ghost, last = confirms
    assert ok.code == last.code == 0 and ok.message_ids and last.message_ids
    assert bad_priority.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "message.priority" in bad_priority.error and not bad_priority.message_ids
    assert ghost.code == grpc.StatusCode.NOT_FOUND.value[0] and not ghost.message_ids
    r = await stubs.messaging.ListMessages(pb.ListMessagesRequest(sender_id="alice"))
    assert sorted(m.payload for m in r.messages) == [b"1", b"4"]


async def test_a_repeated_idempotency_key_confirms_the_first_ids(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    confirms, _ = await asyncio.wait_for(
        publish(stubs, [entry(1, idempotency_key="k"), entry(2, idempotency_key="k")]), 30
    )
    assert confirms[1].duplicate and confirms[1].message_ids == confirms[0].message_ids
    assert not confirms[0].duplicate


async def test_the_broker_holds_at_most_the_window_unconfirmed(stubs, broker, monkeypatch):
    """With a window of 5 and commits held back, the broker takes 5 entries and reads no further
    until one is confirmed; then every entry is confirmed, in order."""
    await register(stubs, "alice")
    await register(stubs, "bob")
    monkeypatch.setattr(messaging_servicer, "PUBLISH_WINDOW", 5)
    gate = asyncio.Event()
    started = 0
    real_send = broker.mailbox.send

    async def held_send(msg):
        nonlocal started
        started += 1
        await gate.wait()
        return await real_send(msg)

    monkeypatch.setattr(broker.mailbox, "send", held_send)
    # What the broker's window reads and hands on, counted as it happens (one step of its reader
    # reads an entry and, unless the window is full, hands it on).
    read = handed = 0
    real_windowed = messaging_servicer.windowed

    def counted(requests: Any, handle: Any, window: int, weight: Any = None) -> Any:
        async def reading() -> Any:
            nonlocal read
            async for req in requests:
                read += 1
                yield req

        def handing(req: Any) -> Any:
            nonlocal handed
            handed += 1
            return handle(req)

        return real_windowed(reading(), handing, window, weight)

    monkeypatch.setattr(messaging_servicer, "windowed", counted)
    run = asyncio.ensure_future(publish(stubs, [entry(i) for i in range(1, 21)]))
    try:

        async def window_full() -> bool:
            return started == 5 and read == 6

        await eventually(window_full, timeout=10, what="five entries taken and a sixth read")
        assert (handed, started) == (5, 5)  # the sixth waits for a confirm: none starts while five are held
        gate.set()
        confirms, headers = await asyncio.wait_for(run, 30)
    finally:
        gate.set()
        run.cancel()
    assert headers["a2a-publish-window"] == "5"
    assert [c.sequence for c in confirms] == list(range(1, 21)) and all(c.code == 0 for c in confirms)


@pytest.fixture
async def token_broker(tmp_path):
    b = await start_server(make_settings(tmp_path, auth="token"))
    try:
        yield b
    finally:
        await b.stop(0.2)


async def test_each_entry_must_be_sent_as_the_caller(token_broker):
    db = token_broker.settings.db
    admin = authed_stubs(token_broker.address, issue(db, "root", "admin"))
    alice = authed_stubs(token_broker.address, issue(db, "alice"))
    try:
        await register(admin, "alice")
        await register(admin, "bob")
        confirms, _ = await asyncio.wait_for(publish(alice, [entry(1), entry(2, sender="bob"), entry(3)]), 30)
        assert [c.code for c in confirms] == [0, grpc.StatusCode.PERMISSION_DENIED.value[0], 0]
        assert "message.sender_id" in confirms[1].error
        r = await admin.messaging.ListMessages(pb.ListMessagesRequest(sender_id="bob"))
        assert not r.messages
        nobody = authed_stubs(token_broker.address, None)
        try:
            call = nobody.messaging.Publish()  # refused when it opens, before any entry
            assert await asyncio.wait_for(call.code(), 10) == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await nobody.channel.close()
    finally:
        await admin.channel.close()
        await alice.channel.close()
