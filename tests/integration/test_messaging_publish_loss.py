"""Messaging.Publish when the stream dies: whatever was confirmed is stored, and what was not can
be published again under the same idempotency keys without storing anything twice; both for a
stream the client cuts and for a broker killed (SIGKILL) under a publishing stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from broker.pb import messaging_pb2 as pb
from tests.conftest import stubs_for

from .messaging_support import register, to

# Under pytest -n (make test) the SIGKILL tests run one after another on one worker.
pytestmark = pytest.mark.xdist_group("crash")
TOTAL = 600


def entry(i: int) -> pb.PublishRequest:
    return pb.PublishRequest(
        sequence=i,
        message=pb.SendRequest(
            sender_id="alice", target=to("bob"), payload=b"%d" % i, idempotency_key=f"pub-{i}"
        ),
    )


async def publish_until(stubs, cut_after: int, cut) -> dict[int, str]:
    """Publish TOTAL entries on one stream; once ``cut_after`` are confirmed call ``cut()`` (which
    ends the stream one way or another); return the confirmed ones (sequence -> message id)."""
    confirmed: dict[int, str] = {}

    async def entries() -> AsyncIterator[pb.PublishRequest]:
        for i in range(1, TOTAL + 1):
            yield entry(i)

    call = stubs.messaging.Publish(entries())
    try:
        async for c in call:
            assert c.code == 0, c.error
            confirmed[c.sequence] = c.message_ids[0]
            if len(confirmed) == cut_after:
                await cut(call)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN)
    except asyncio.CancelledError:
        pass
    assert len(confirmed) >= cut_after
    return confirmed


async def stored(stubs) -> dict[bytes, list[str]]:
    """Every message bob holds: payload -> ids."""
    out: dict[bytes, list[str]] = {}
    token = ""
    while True:
        r = await stubs.messaging.ListMessages(
            pb.ListMessagesRequest(recipient_id="bob", page_size=500, page_token=token)
        )
        for m in r.messages:
            out.setdefault(m.payload, []).append(m.message_id)
        token = r.next_page_token
        if not token:
            return out


async def publish_again(stubs, confirmed: dict[int, str]) -> None:
    """The client's retry: every entry not confirmed, again, under its key; then every stored
    payload is there exactly once, and the confirmed ones keep their ids."""
    missing = [entry(i) for i in range(1, TOTAL + 1) if i not in confirmed]
    call = stubs.messaging.Publish(iter(missing))
    answers = [c async for c in call]
    assert [c.sequence for c in answers] == [e.sequence for e in missing]
    assert all(c.code == 0 for c in answers)
    held = await stored(stubs)
    assert sorted(held) == sorted(b"%d" % i for i in range(1, TOTAL + 1))
    assert all(len(ids) == 1 for ids in held.values()), "a message was stored twice"
    for i, message_id in confirmed.items():
        assert held[b"%d" % i] == [message_id], f"confirmed entry {i} lost or changed"


async def test_a_stream_cut_by_the_client_keeps_what_was_confirmed_and_a_retry_stores_the_rest_once(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")

    async def cancel(call) -> None:
        call.cancel()

    confirmed = await asyncio.wait_for(publish_until(stubs, 150, cancel), 30)
    assert len(confirmed) < TOTAL
    held = await stored(stubs)
    for i, message_id in confirmed.items():
        assert held[b"%d" % i] == [message_id]
    await asyncio.wait_for(publish_again(stubs, confirmed), 30)


async def test_sigkill_under_a_publishing_stream_loses_nothing_confirmed(tmp_path, broker_process):
    p = broker_process(
        tmp_path / "publish.db", A2A_BROKER_SQLITE_SYNCHRONOUS="FULL", A2A_BROKER_HTTP_ADDRESS="off"
    )
    p.start()
    stubs = stubs_for(p.address)
    try:
        await register(stubs, "alice")
        await register(stubs, "bob")

        async def kill(call) -> None:
            p.kill()  # SIGKILL while entries are in flight

        confirmed = await asyncio.wait_for(publish_until(stubs, 200, kill), 60)
    finally:
        await stubs.channel.close()
    assert len(confirmed) < TOTAL

    again = broker_process(tmp_path / "publish.db", A2A_BROKER_HTTP_ADDRESS="off")
    again.start()
    stubs = stubs_for(again.address)
    try:
        await register(stubs, "alice")
        await asyncio.wait_for(publish_again(stubs, confirmed), 60)
    finally:
        await stubs.channel.close()
