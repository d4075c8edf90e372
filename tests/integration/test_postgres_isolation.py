"""#23.3: claims and acks run at the isolation level they need. A claim (``FOR UPDATE SKIP LOCKED``)
and an ack (one conditional UPDATE) are right at READ COMMITTED, so a group made only of them runs
there: a row another broker changed meanwhile is read again instead of aborting the group and
running it again (``a2a_storage_retried``). Any other job keeps the group SERIALIZABLE."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from broker.errors import StorageUnavailable
from broker.storage.group_commit import row_locking
from broker.storage.postgres.engine import PgEngine
from tests.conftest import eventually
from tests.integration.messaging_support import Sub, ack, register, send


def _sleep(conn: Any) -> None:
    conn.execute("SELECT pg_sleep(0.2)")


def _level(conn: Any) -> str:
    return str(conn.execute("SHOW transaction_isolation").fetchone()[0])


async def test_an_ack_waiting_on_a_row_another_broker_changed_is_not_aborted_and_retried(
    cluster, pg_url: str
):
    _, a = await cluster()
    broker_b, b = await cluster()
    await register(a, "sender")
    await register(b, "reader")
    sub = await Sub.open(b, "reader")
    mid = await send(a, "sender", "reader", b"once")
    assert (await sub.one()).message_id == mid  # claimed on B: delivered, waiting for its ack
    before = broker_b.storage.engine_stats.retried
    # Another writer (as another broker's sweep or nack would) changes the row and holds it until
    # B's ack is waiting on it: B's transaction began before that change committed.
    with psycopg.connect(pg_url) as other:
        other.execute("UPDATE a2a_messages SET priority = priority WHERE message_id = %s", (mid,))
        acking = asyncio.ensure_future(ack(b, "reader", [mid]))

        async def ack_waits_on_the_row() -> bool:
            with psycopg.connect(pg_url, autocommit=True) as watch:
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'UPDATE a2a_messages SET%%' AND pid <> %s",
                    (other.info.backend_pid,),
                ).fetchone()
                return bool(row and row[0])

        await eventually(ack_waits_on_the_row, what="the ack waiting on the row lock")
        other.commit()
    assert await asyncio.wait_for(acking, 5.0) == 1
    assert broker_b.storage.engine_stats.retried == before  # read again, not aborted and re-run
    sub.cancel()


async def test_claims_and_acks_run_at_read_committed_and_apart_from_any_other_job(pg_url: str):
    engine = PgEngine(pg_url)
    await engine.open()
    try:
        assert await engine.write(row_locking(_level)) == "read committed"
        assert await engine.write(_level) == "serializable"
        # Queued together behind a slow job (or with it), they share the writer's next turn: each
        # still runs at its own level (two transactions).
        blocker = asyncio.ensure_future(engine.write(row_locking(_sleep)))
        mixed = await asyncio.gather(engine.write(row_locking(_level)), engine.write(_level))
        await blocker
        assert mixed == ["read committed", "serializable"]
    finally:
        await engine.close()


async def test_a_claim_is_not_aborted_with_a_serializable_job_that_keeps_conflicting(pg_url: str):
    """A SERIALIZABLE job aborted again and again (another broker keeps writing what it read: seen
    with a heartbeat beside a stream's claims while another broker sent to the queue) fails
    alone: the claim or ack waiting beside it commits."""
    engine = PgEngine(pg_url, retries=2)
    await engine.open()

    def conflicting(conn: Any) -> None:
        raise psycopg.errors.SerializationFailure("could not serialize access")

    try:
        blocker = asyncio.ensure_future(engine.write(row_locking(_sleep)))
        claim, other = await asyncio.gather(
            engine.write(row_locking(_level)), engine.write(conflicting), return_exceptions=True
        )
        await blocker
        assert claim == "read committed", claim
        assert isinstance(other, StorageUnavailable) and "aborted 3 times" in str(other), other
    finally:
        await engine.close()


async def test_the_tables_every_message_and_task_rewrites_are_vacuumed_as_they_churn(pg_url: str):
    """Migration 0012: vacuum after 1% of a queue table changed (not the default 20%), unthrottled,
    and room on each page for HOT updates."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        opts = {
            r[0]: dict(o.split("=", 1) for o in r[1] or [])
            for r in conn.execute(
                "SELECT relname, reloptions FROM pg_class"
                " WHERE relname IN ('a2a_messages', 'tasks', 'agents', 'message_sends')"
            )
        }
    for table in ("a2a_messages", "tasks", "agents", "message_sends"):
        assert opts[table]["autovacuum_vacuum_scale_factor"] == "0.01", (table, opts[table])
        assert opts[table]["autovacuum_vacuum_cost_delay"] == "0", (table, opts[table])
    assert {t: opts[t]["fillfactor"] for t in ("a2a_messages", "tasks", "agents")} == {
        "a2a_messages": "85",
        "tasks": "85",
        "agents": "70",
    }


async def test_a_queue_table_with_many_dead_rows_is_vacuumed_by_a_broker_within_seconds(cluster, pg_url: str):
    """Autovacuum comes by once a minute at best; a broker vacuums a queue table once its dead rows
    pass ``min_dead`` (here lowered), one broker at a time."""
    broker_a, _ = await cluster()
    broker_b, _ = await cluster()
    vacuumers = [broker_a.storage.vacuumer, broker_b.storage.vacuumer]
    assert vacuumers[0].tables == ("a2a_messages", "tasks")
    for v in vacuumers:
        v.every_s, v.min_dead, v.tables = 0.1, 500, ("churn",)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE churn (id int PRIMARY KEY, status text) WITH (autovacuum_enabled = off)")
        conn.execute("INSERT INTO churn SELECT g, 'pending' FROM generate_series(1, 2000) g")
        conn.execute("UPDATE churn SET status = 'done'")  # 2,000 dead versions

        async def vacuumed() -> bool:
            row = conn.execute(
                "SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relname = 'churn'"
            ).fetchone()
            # by a broker: its count moves once its VACUUM call has returned, after the stats do
            return bool(row and row[0] >= 1 and row[1] < 500) and sum(v.vacuumed for v in vacuumers) >= 1

        await eventually(vacuumed, timeout=10.0, what="churn vacuumed by a broker")
