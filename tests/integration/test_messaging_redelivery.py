"""At-least-once delivery: ack deadlines, nacks, dead letters, requeue, release when a stream ends,
scheduled delivery and expiry."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from broker.pb import messaging_pb2 as pb
from broker.server import start_server
from tests.clock_support import later, manual_clock
from tests.conftest import eventually, make_settings, stubs_for
from tests.integration.messaging_support import Sub, ack, get, register, send


@pytest.fixture
async def pair(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    return stubs


def seconds(s: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMicroseconds(int(s * 1_000_000))
    return d


def at(us: int) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromMicroseconds(us)
    return t


def now_us() -> int:
    return time.time_ns() // 1000


async def status_is(stubs, mid, status):
    async def check():
        return (await get(stubs, mid)).status == status

    await eventually(check, what=f"message {mid} {pb.MessageStatus.Name(status)}")


async def test_unacked_message_is_redelivered_then_dead_lettered_and_requeue_delivers_it(pair, broker):
    """On the real clock, end to end: the ack deadline lapses and the sweeper redelivers."""
    stubs = pair
    mid = await send(stubs, "alice", "bob", max_attempts=2)
    sub = await Sub.open(stubs, "bob", ack_deadline=seconds(1), broker=broker)
    first = await sub.one()
    assert (first.message_id, first.attempt) == (mid, 1)
    again = await sub.one(timeout=5)  # after the 1 s ack deadline, on the same stream
    assert (again.message_id, again.attempt) == (mid, 2)
    assert again.delivered_at.ToMicroseconds() - first.delivered_at.ToMicroseconds() >= 900_000

    await status_is(stubs, mid, pb.MESSAGE_STATUS_FAILED)  # past the last attempt: dead letter
    await sub.nothing()
    dead = await stubs.messaging.ListMessages(pb.ListMessagesRequest(status=pb.MESSAGE_STATUS_FAILED))
    assert [m.message_id for m in dead.messages] == [mid]
    assert "ack deadline" in dead.messages[0].last_error and "2 of 2" in dead.messages[0].last_error

    r = await stubs.messaging.Requeue(pb.RequeueRequest(message_ids=[mid]))
    assert r.requeued == 1
    back = await sub.one()
    assert (back.message_id, back.attempt) == (mid, 1)
    assert await ack(stubs, "bob", [mid]) == 1
    assert (await get(stubs, mid)).status == pb.MESSAGE_STATUS_PROCESSED


@manual_clock
async def test_an_unacked_delivery_lapses_at_its_ack_deadline_not_before(pair, broker):
    stubs = pair
    mid = await send(stubs, "alice", "bob", max_attempts=2)
    sub = await Sub.open(stubs, "bob", ack_deadline=seconds(30), broker=broker)
    first = await sub.one()
    await later(broker, 29.9)
    await sub.nothing()  # not before its deadline
    assert (await get(stubs, mid)).status == pb.MESSAGE_STATUS_DELIVERED
    await later(broker, 0.2)
    again = await sub.one()  # at the deadline, on the same stream
    assert (again.message_id, again.attempt) == (mid, 2)
    assert again.delivered_at.ToMicroseconds() - first.delivered_at.ToMicroseconds() == 30_100_000
    await later(broker, 30.1)
    await status_is(stubs, mid, pb.MESSAGE_STATUS_FAILED)  # past the last attempt: dead letter
    await sub.nothing()
    assert "ack deadline" in (await get(stubs, mid)).last_error


async def test_requeue_refuses_what_is_not_a_dead_letter(pair):
    stubs = pair
    mid = await send(stubs, "alice", "bob")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.messaging.Requeue(pb.RequeueRequest(message_ids=[mid]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.messaging.Requeue(pb.RequeueRequest(message_ids=["nope"]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_nack_redelivers_at_once_after_a_delay_or_dead_letters_on_reject(pair, broker):
    """On the real clock, end to end: a nack's delay, through the mailbox's timer."""
    stubs = pair
    ids = [await send(stubs, "alice", "bob", b"%d" % i) for i in range(3)]
    sub = await Sub.open(stubs, "bob", ack_deadline=seconds(60), broker=broker)
    got = await sub.take(3)
    assert [m.message_id for m in got] == ids

    r = await stubs.messaging.Nack(pb.NackRequest(agent_id="bob", message_ids=[ids[0]], reason="busy"))
    assert (r.requeued, r.dead_lettered) == (1, 0)
    m = await sub.one()
    assert (m.message_id, m.attempt) == (ids[0], 2)
    assert m.last_error.startswith("busy")

    t0 = now_us()
    r = await stubs.messaging.Nack(pb.NackRequest(agent_id="bob", message_ids=[ids[1]], delay=seconds(0.6)))
    assert r.requeued == 1
    m = await sub.one()
    assert m.message_id == ids[1] and m.delivered_at.ToMicroseconds() - t0 >= 600_000

    r = await stubs.messaging.Nack(
        pb.NackRequest(agent_id="bob", message_ids=[ids[2]], reject=True, reason="malformed")
    )
    assert (r.requeued, r.dead_lettered) == (0, 1)
    dead = await get(stubs, ids[2])
    assert dead.status == pb.MESSAGE_STATUS_FAILED and dead.last_error.startswith("malformed")
    await sub.nothing()


@manual_clock
async def test_a_nacked_message_comes_back_when_its_delay_is_over_not_before(pair, broker):
    stubs = pair
    clock = broker.mailbox.clock
    mid = await send(stubs, "alice", "bob")
    sub = await Sub.open(stubs, "bob", ack_deadline=seconds(60), broker=broker)
    await sub.one()
    t0 = clock.now_us()
    r = await stubs.messaging.Nack(pb.NackRequest(agent_id="bob", message_ids=[mid], delay=seconds(30)))
    assert r.requeued == 1
    await clock.advance(29.9)
    await sub.nothing()  # not before its delay
    await clock.advance(0.2)  # the mailbox's timer (no sweep) delivers it
    m = await sub.one()
    assert (m.message_id, m.attempt) == (mid, 2)
    assert m.delivered_at.ToMicroseconds() - t0 == 30_100_000


async def test_nack_of_another_agents_or_an_unknown_message_is_refused(pair):
    stubs = pair
    await register(stubs, "carol")
    mid = await send(stubs, "alice", "bob")
    sub = await Sub.open(stubs, "bob", ack_deadline=seconds(60))
    await sub.one()
    for agent, ids, code in [
        ("carol", [mid], grpc.StatusCode.PERMISSION_DENIED),
        ("bob", [mid, "nosuch"], grpc.StatusCode.NOT_FOUND),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.messaging.Nack(pb.NackRequest(agent_id=agent, message_ids=ids, reject=True))
        assert err.value.code() == code
    assert (await get(stubs, mid)).status == pb.MESSAGE_STATUS_DELIVERED  # nothing changed
    sub.cancel()


async def test_ended_stream_releases_its_deliveries_at_once(pair):
    stubs = pair
    mid = await send(stubs, "alice", "bob")
    s1 = await Sub.open(stubs, "bob", ack_deadline=seconds(3600))
    assert (await s1.one()).attempt == 1
    s1.cancel()
    await status_is(stubs, mid, pb.MESSAGE_STATUS_PENDING)  # released, not waiting an hour
    s2 = await Sub.open(stubs, "bob")
    m = await s2.one()
    assert (m.message_id, m.attempt) == (mid, 2)
    assert "subscription ended" in m.last_error
    s2.cancel()


async def test_broker_shutdown_releases_deliveries_and_gives_the_attempt_back(tmp_path):
    settings = make_settings(tmp_path)
    b = await start_server(settings)
    stubs = stubs_for(b.address)
    try:
        await register(stubs, "alice")
        await register(stubs, "bob")
        mid = await send(stubs, "alice", "bob")
        sub = await Sub.open(stubs, "bob", ack_deadline=seconds(3600))
        assert (await sub.one()).attempt == 1
        await b.stop(1.0)
        assert await sub.ended() == grpc.StatusCode.UNAVAILABLE
    finally:
        await stubs.channel.close()
    b = await start_server(settings)
    stubs = stubs_for(b.address)
    try:
        m = await get(stubs, mid)
        assert (m.status, m.attempt) == (pb.MESSAGE_STATUS_PENDING, 0)
        sub = await Sub.open(stubs, "bob")
        assert (await sub.one()).attempt == 1
        sub.cancel()
    finally:
        await stubs.channel.close()
        await b.stop(0.2)


async def test_scheduled_message_does_not_arrive_early(pair):
    """On the real clock, end to end: the mailbox's timer for scheduled messages."""
    stubs = pair
    sub = await Sub.open(stubs, "bob")
    due = now_us() + 700_000
    mid = await send(stubs, "alice", "bob", deliver_after=at(due))
    other = await send(stubs, "alice", "bob")
    assert (await sub.one()).message_id == other  # the unscheduled one is not held back
    assert (await get(stubs, mid)).status == pb.MESSAGE_STATUS_PENDING
    m = await sub.one(timeout=5)
    arrived = now_us()
    assert m.message_id == mid
    assert arrived >= due and m.delivered_at.ToMicroseconds() >= due
    assert arrived - due < 500_000  # woken by the timer, not by the next sweep or a poll
    sub.cancel()


@manual_clock
async def test_expired_message_never_arrives_and_reads_expired(pair, broker):
    stubs = pair
    mid = await send(stubs, "alice", "bob", ttl=seconds(0.2))
    await later(broker, 0.2)
    await status_is(stubs, mid, pb.MESSAGE_STATUS_EXPIRED)
    fresh = await send(stubs, "alice", "bob")
    sub = await Sub.open(stubs, "bob", broker=broker)
    assert (await sub.one()).message_id == fresh
    await sub.nothing()
    m = await get(stubs, mid)
    assert m.attempt == 0 and "expired" in m.last_error
    sub.cancel()


async def test_delivered_message_expires_and_frees_its_room(pair):
    """On the real clock, end to end: expiry by the sweeper."""
    stubs = pair
    mid = await send(stubs, "alice", "bob", ttl=seconds(0.5))
    nxt = await send(stubs, "alice", "bob")
    sub = await Sub.open(stubs, "bob", max_in_flight=1, ack_deadline=seconds(60))
    assert (await sub.one()).message_id == mid
    await status_is(stubs, mid, pb.MESSAGE_STATUS_EXPIRED)
    assert (await sub.one()).message_id == nxt  # the expired delivery no longer counts in flight
    assert await ack(stubs, "bob", [mid]) == 0  # acking it is harmless and changes nothing
    assert (await get(stubs, mid)).status == pb.MESSAGE_STATUS_EXPIRED
    sub.cancel()


async def test_scheduled_message_past_its_expiry_is_refused(pair):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await send(pair, "alice", "bob", deliver_after=at(now_us() + 2_000_000), ttl=seconds(1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expires_at" in err.value.details()
