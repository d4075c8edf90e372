"""An agent that goes offline or deregisters gives its deliveries back at once; retention purges
final messages. Short liveness and retention periods for this module."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2

from broker.clock import now_us
from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as pb
from tests.conftest import eventually
from tests.integration.messaging_support import Sub, ack, get, register, send


@pytest.fixture
def settings_overrides():
    return {"heartbeat_interval_s": 0.2, "liveness_timeout_s": 0.6, "message_retention_s": 0.3}


HOUR = duration_pb2.Duration(seconds=3600)


async def status_of(stubs, agent_id):
    return (await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id=agent_id))).status


async def test_offline_agent_has_its_deliveries_redelivered_to_its_next_stream(stubs, broker):
    await register(stubs, "alice")
    await register(stubs, "bob")
    mid = await send(stubs, "alice", "bob")
    old = await Sub.open(stubs, "bob", ack_deadline=HOUR)
    assert (await old.one()).attempt == 1
    # bob is marked offline (an open stream keeps an agent online, so this is the sweeper's job
    # run directly, as for an agent silent with no stream): that ends its stream and releases
    # the delivery in the same transaction, an hour before its ack deadline.
    for gone in await broker.storage.mark_offline(now_us() + 1, now_us()):
        await broker.registry._tell_gone(gone)
    assert await old.ended(timeout=10) == grpc.StatusCode.FAILED_PRECONDITION
    assert await status_of(stubs, "bob") == apb.AGENT_STATUS_OFFLINE
    m = await get(stubs, mid)
    assert m.status == pb.MESSAGE_STATUS_PENDING and "heartbeat" in m.last_error

    await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="bob"))
    new = await Sub.open(stubs, "bob", ack_deadline=HOUR)
    again = await new.one()
    assert (again.message_id, again.attempt) == (mid, 2)
    assert await ack(stubs, "bob", [mid]) == 1
    new.cancel()


async def test_deregistered_agent_releases_its_deliveries_and_keeps_its_queue(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    mid = await send(stubs, "alice", "bob")
    sub = await Sub.open(stubs, "bob", ack_deadline=HOUR)
    await sub.one()
    r = await stubs.agents.Deregister(apb.DeregisterRequest(agent_id="bob"))
    assert r.released_messages == 1
    assert await sub.ended() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await get(stubs, mid)).status == pb.MESSAGE_STATUS_PENDING
    await register(stubs, "bob")  # comes back: its queue waited for it
    sub = await Sub.open(stubs, "bob")
    assert (await sub.one()).message_id == mid
    sub.cancel()


async def test_retention_purges_processed_and_expired_but_keeps_dead_letters(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    done = await send(stubs, "alice", "bob")
    dead = await send(stubs, "alice", "bob")
    expiring = await send(stubs, "alice", "bob", ttl=duration_pb2.Duration(nanos=100_000_000))
    sub = await Sub.open(stubs, "bob", ack_deadline=HOUR)
    got = {m.message_id for m in await sub.take(2)}
    assert got == {done, dead}
    await ack(stubs, "bob", [done])
    await stubs.messaging.Nack(pb.NackRequest(agent_id="bob", message_ids=[dead], reject=True))
    sub.cancel()

    async def purged(mid):
        try:
            await get(stubs, mid)
        except grpc.aio.AioRpcError as err:
            return err.code() == grpc.StatusCode.NOT_FOUND
        return False

    await eventually(lambda: purged(done), what="processed message purged")
    await eventually(lambda: purged(expiring), what="expired message purged")
    assert (await get(stubs, dead)).status == pb.MESSAGE_STATUS_FAILED


async def test_idempotency_keys_are_kept_as_long_as_messages(stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")
    ttl = duration_pb2.Duration(nanos=100_000_000)
    first = await send(stubs, "alice", "bob", idempotency_key="k", ttl=ttl)
    assert await send(stubs, "alice", "bob", idempotency_key="k", ttl=ttl) == first

    async def key_forgotten():
        return await send(stubs, "alice", "bob", idempotency_key="k", ttl=ttl) != first

    # The message expires; past the retention period it is purged, and its key with it: a new
    # send is a new message.
    await eventually(key_forgotten, what="idempotency key purged")


async def test_idempotency_key_outlives_retention_while_its_message_is_kept(stubs, broker):
    # The (sender, key) record is kept as long as its message: a pending message older than the
    # retention period still makes a retry with the same key a duplicate, not a second copy.
    await register(stubs, "alice")
    await register(stubs, "bob")
    first = await stubs.messaging.Send(
        pb.SendRequest(sender_id="alice", target=pb.Target(agent_id="bob"), idempotency_key="k")
    )
    # A message that expires at once, then is purged by retention: when it is gone, retention
    # has run over everything sent before it.
    gone = await send(stubs, "alice", "bob", ttl=duration_pb2.Duration(nanos=50_000_000))

    async def purged() -> bool:
        try:
            await get(stubs, gone)
        except grpc.aio.AioRpcError as err:
            return err.code() == grpc.StatusCode.NOT_FOUND
        return False

    await eventually(purged, timeout=10, what="the expired message purged")
    rounds = broker.sweeper.rounds
    await eventually(lambda: _true(broker.sweeper.rounds >= rounds + 2), what="two more sweeps")
    again = await stubs.messaging.Send(
        pb.SendRequest(sender_id="alice", target=pb.Target(agent_id="bob"), idempotency_key="k")
    )
    assert again.duplicate and list(again.message_ids) == list(first.message_ids)
    listed = await stubs.messaging.ListMessages(pb.ListMessagesRequest(sender_id="alice"))
    assert [m.message_id for m in listed.messages] == list(first.message_ids)


async def _true(value: bool) -> bool:
    return value
