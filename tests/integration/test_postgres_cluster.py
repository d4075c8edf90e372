"""Several brokers, one PostgreSQL database: what a client sees whichever broker it talks to.

Brokers run in this process (each with its own connections, sweeper and relay) except where a
broker must die by SIGKILL, which runs as a subprocess. The relay's polling fallback is set far
beyond each test's timeouts, so a delivery across brokers within them proves the notification.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
from prometheus_client import generate_latest

from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as mpb
from broker.server import start_server
from broker.storage.postgres.migrate import MIGRATIONS_DIR, load_migrations
from tests.conftest import BrokerProcess, eventually, make_settings, stubs_for
from tests.integration import tasks_helpers as th
from tests.integration.messaging_support import Sub, ack, register, send
from tests.integration.tasks_helpers import duration
from tests.pg_support import PgCluster


async def test_a_message_sent_through_one_broker_reaches_a_subscriber_on_another(cluster):
    broker_a, a = await cluster()
    broker_b, b = await cluster()
    await register(a, "sender")
    await register(b, "reader")
    sub = await Sub.open(b, "reader")
    mid = await send(a, "sender", "reader", b"across")
    got = await sub.one(timeout=5.0)
    assert (got.message_id, got.payload) == (mid, b"across")
    assert await ack(b, "reader", [mid]) == 1
    sub.cancel()
    # The wake-up travelled as a notification, and /metrics counts it on both sides.
    assert broker_a.metrics is not None and broker_b.metrics is not None
    sent = generate_latest(broker_a.metrics.registry).decode()
    heard = generate_latest(broker_b.metrics.registry).decode()
    assert re.search(r'a2a_storage_notifications_total\{direction="sent"\} [1-9]', sent), sent
    assert re.search(r'a2a_storage_notifications_total\{direction="received"\} [1-9]', heard), heard


async def test_a_broadcast_reaches_subscribers_on_every_broker_once_each(cluster):
    nodes = [await cluster() for _ in range(3)]
    await register(nodes[0][1], "sender")
    subs = []
    for i, (b, s) in enumerate(nodes):
        await register(s, f"agent-{i}")
        subs.append(await Sub.open(s, f"agent-{i}", broker=b))
    r = await nodes[0][1].messaging.Send(
        mpb.SendRequest(sender_id="sender", target=mpb.Target(broadcast=mpb.Broadcast()), payload=b"all")
    )
    assert len(r.message_ids) == 3
    for i, sub in enumerate(subs):
        got = await sub.one(timeout=5.0)
        assert got.recipient_id == f"agent-{i}" and got.payload == b"all"
        await sub.nothing()
        sub.cancel()


async def test_anycast_over_agents_on_different_brokers_delivers_each_message_once(cluster):
    _, a = await cluster()
    _, b = await cluster()
    await register(a, "sender")
    await register(a, "x", ["summarise"])
    await register(b, "y", ["summarise"])
    subs = {"x": await Sub.open(a, "x", max_in_flight=5), "y": await Sub.open(b, "y", max_in_flight=5)}
    stubs = {"x": a, "y": b}
    target = mpb.Target(anycast=mpb.Anycast(capability="summarise"))
    sent = {await send(a, "sender", target, f"job {i}".encode()) for i in range(40)}
    seen: list[str] = []

    async def drain(agent: str) -> None:
        while len(seen) < len(sent):
            try:
                batch = await subs[agent].batch(timeout=0.5)
            except AssertionError:
                continue
            seen.extend(m.message_id for m in batch)
            await ack(stubs[agent], agent, [m.message_id for m in batch])

    await asyncio.wait_for(asyncio.gather(drain("x"), drain("y")), 20)
    assert sorted(seen) == sorted(sent)  # each once: no message twice, none lost
    for s in subs.values():
        s.cancel()


async def test_racing_claims_across_brokers_never_exceed_an_agents_capacity(cluster):
    (_, a), (_, b) = await cluster(), await cluster()
    await th.register(a, "w", capacity=3)
    for i in range(20):
        await th.submit(a, f"t{i}")
    claims = [th.claim(s, "w", n=2) for s in (a, b) for _ in range(10)]
    got = [x for batch in await asyncio.gather(*claims) for x in batch]
    assert len(got) == 3
    assert len({x.task.task_id for x in got}) == 3
    agent = await a.agents.GetAgent(apb.GetAgentRequest(agent_id="w"))
    assert agent.current_task_count == 3


async def test_an_agent_streaming_on_one_broker_is_not_taken_for_gone_by_another(cluster):
    # Broker A knows nothing of the stream on B, and sweeps five times as often: it is almost
    # always first to find the agent's stored heartbeat overdue. Only B's liveness writes keep it
    # from looking overdue at all.
    (_, a) = await cluster(liveness_timeout_s=0.6, sweeper_period_s=0.01)
    (_, b) = await cluster(liveness_timeout_s=0.6, sweeper_period_s=0.05)
    await register(b, "streamer")
    sub = await Sub.open(b, "streamer")

    async def status(agent_id: str) -> int:
        return (await a.agents.GetAgent(apb.GetAgentRequest(agent_id=agent_id))).status

    for i in range(3):  # three liveness timeouts, each seen pass by an agent that does go offline
        await register(a, f"silent-{i}")
        await eventually(
            lambda i=i: _is(status(f"silent-{i}"), apb.AGENT_STATUS_OFFLINE), timeout=10, what="offline"
        )
        assert await status("streamer") != apb.AGENT_STATUS_OFFLINE, "A took B's streaming agent for gone"
    sub.cancel()


async def _is(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_a_killed_brokers_deliveries_and_leases_are_taken_over_by_another(
    cluster, pg_url: str, broker_process: Callable[..., BrokerProcess]
):
    doomed = broker_process(pg_url, A2A_BROKER_SWEEPER_PERIOD_S="0.05")  # type: ignore[arg-type]
    doomed.start()
    a = stubs_for(doomed.address)
    _, b = await cluster(sweeper_period_s=0.05)
    try:
        await register(a, "sender")
        await register(a, "reader")
        await th.register(a, "worker")
        sub = await Sub.open(a, "reader", ack_deadline=duration(1.0))
        mid = await send(a, "sender", "reader", b"held")
        assert (await sub.one()).message_id == mid
        task = await th.submit(a, "held task", lease=1.0)
        (lease,) = await th.claim(a, "worker")
        assert lease.task.task_id == task.task_id

        doomed.kill()  # SIGKILL: no goodbye, the delivery and the lease stay held in the database
        sub.cancel()

        again = await Sub.open(b, "reader")
        redelivered = await again.one(timeout=10.0)  # once its ack deadline passes
        assert (redelivered.message_id, redelivered.attempt) == (mid, 2)
        (retaken,) = await th.claim(b, "worker", wait=10.0)  # once its lease times out
        assert (retaken.task.task_id, retaken.attempt) == (task.task_id, 2)
        again.cancel()
    finally:
        await a.channel.close()


async def test_brokers_starting_together_on_an_empty_database_migrate_it_once(
    tmp_path: Path, pg_cluster: PgCluster
):
    url = pg_cluster.url(pg_cluster.create_database())  # empty: not copied from the template
    brokers = await asyncio.gather(*(start_server(make_settings(tmp_path, db=url)) for _ in range(3)))
    try:
        with psycopg.connect(url) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [m.version for m in load_migrations(MIGRATIONS_DIR)]
    finally:
        for b in brokers:
            await b.stop(0.2)


async def test_connections_lost_while_idle_are_reopened_and_no_call_fails(cluster, pg_url: str):
    broker, s = await cluster()
    await register(s, "before")
    with psycopg.connect(pg_url, autocommit=True) as admin:  # a failover, a restart, an idle timeout
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] >= 3  # the broker's writer, readers and listener
    await register(s, "after")  # a write on a new connection
    assert (await s.agents.GetAgent(apb.GetAgentRequest(agent_id="before"))).agent_id == "before"
