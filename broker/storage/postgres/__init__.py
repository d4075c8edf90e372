"""The PostgreSQL backend: several brokers, one database.

The operations are the shared ones (broker/storage/sql/) with PostgreSQL's statements
(queries.py), and messages do what PostgreSQL does its own way (messages.py). What differs because
several brokers share the database is here:

- every write transaction is SERIALIZABLE, retried when PostgreSQL aborts it, but claims and acks
  commit at READ COMMITTED (engine.py);
- the queue tables are vacuumed as fast as they churn, by one broker at a time (vacuum.py);
- the sweeps (liveness, ack deadlines, expiry, retention, leases) run once across the cluster per
  period: each takes ``pg_try_advisory_xact_lock`` and a broker that does not get it skips its turn;
- an agent's liveness as one broker sees it (open streams, recent calls) is written for all the
  agents of that broker in one statement per sweep, and only for agents whose stored heartbeat is
  getting old, so that another broker's sweep does not take them for gone, and a heartbeat costs the
  database one small write per agent and per half liveness timeout at most;
- ``shared`` is True: at start-up a broker does not release deliveries older than itself (on SQLite
  those belong to a previous run of the one broker; here they may be another live broker's): a dead
  broker's deliveries come back at their ack deadline, its leases at their lease timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import psycopg

from ...errors import StorageUnavailable
from ...models.agents import AgentGone
from ...models.stats import StorageStats
from ..message_store import MessageChanges, SweepOutcome
from ..sql.a2a import A2AOps
from ..sql.agents import AgentOps
from ..sql.census import CensusOps
from ..sql.connection import Connection
from ..sql.limits import LimitOps
from ..sql.schedules import ScheduleOps
from ..sql.tasks import TaskOps
from ..sql.tasks_lease import purge_job
from ..sql.tasks_tx import TaskTx
from ..sql.tokens import TokenOps
from .engine import PgEngine
from .history import History
from .messages import PgMessageOps
from .migrate import migrate
from .queries import POSTGRES
from .relay import Relay, new_tag
from .vacuum import Vacuumer

if TYPE_CHECKING:
    from ...config import Settings
    from ...models.tasks import Changes

__all__ = ["PgStorage"]

# pg_try_advisory_xact_lock keys of the cluster-wide sweeps.
SWEEP_AGENTS = 0x_A2A_0101
SWEEP_MESSAGES = 0x_A2A_0102
SWEEP_TASKS = 0x_A2A_0103
PURGE_TASKS = 0x_A2A_0104
SWEEP_SUBJECTS = 0x_A2A_0105

_REFRESH_ALIVE = (
    "UPDATE agents a SET last_heartbeat_at = v.seen"
    " FROM unnest(%s::text[], %s::bigint[]) AS v(agent_id, seen)"
    " WHERE a.agent_id = v.agent_id AND a.status IN ('available', 'busy', 'maintenance')"
    " AND a.last_heartbeat_at < %s"
)


def where(url: str) -> str:
    """host:port/database of a URL, for messages (never its password)."""
    u = urlsplit(url)
    return f"{u.hostname or 'localhost'}:{u.port or 5432}{u.path}"


def _turn(conn: Connection, key: int) -> bool:
    """Whether this broker runs the cluster's sweep ``key`` now (held until the commit)."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()
    return bool(row is not None and row[0])


class PgStorage(AgentOps, PgMessageOps, TaskOps, ScheduleOps, LimitOps, TokenOps, CensusOps, A2AOps):
    """Implements ``broker.storage.Storage`` on a PostgreSQL database shared by brokers."""

    shared = True  # several brokers use the database at once
    q = POSTGRES
    engine: PgEngine

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        tag = new_tag()
        self.engine = PgEngine(url, readers=settings.pg_readers, batch_max=settings.write_batch_max, tag=tag)
        self.relay = Relay(
            url, settings.pg_poll_interval_s, self.engine.stats, tag, History(self.engine.read, tag)
        )
        self.vacuumer = Vacuumer(url)  # the queue tables, as fast as they churn (vacuum.py)

    @property
    def engine_stats(self) -> StorageStats:
        return self.engine.stats

    @property
    def write_queue_depth(self) -> int:
        return self.engine.queue_depth

    async def open(self) -> None:
        try:
            await asyncio.to_thread(migrate, self.url)
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise StorageUnavailable(f"cannot reach PostgreSQL at {where(self.url)}: {first}") from None
        await self.engine.open()
        self.vacuumer.start()

    async def close(self) -> None:
        await self.vacuumer.close()
        await self.relay.close()
        await self.engine.close()

    # -- what differs with several brokers -------------------------------------------------

    async def mark_offline(
        self, heartbeat_before: int, now: int, alive: Mapping[str, int] | None = None
    ) -> list[AgentGone]:
        alive = dict(alive or {})
        stale = now - (now - heartbeat_before) // 2  # refresh heartbeats older than half the timeout

        def job(conn: Connection) -> list[AgentGone]:
            if alive:
                conn.execute(_REFRESH_ALIVE, (list(alive), list(alive.values()), stale))
            if not _turn(conn, SWEEP_AGENTS):
                return []
            return self._mark_offline_job(conn, heartbeat_before, now, alive)

        return await self.engine.write(job)

    async def sweep_messages(self, now: int, purge_before: int, limit: int) -> SweepOutcome:
        def job(conn: Connection) -> SweepOutcome:
            if not _turn(conn, SWEEP_MESSAGES):
                return SweepOutcome(MessageChanges(), [], 0)
            return self._sweep_messages_job(conn, now, purge_before, limit)

        return await self.engine.write(job)

    async def sweep_subscriptions(self, now: int, purge_before: int, limit: int) -> SweepOutcome:
        def job(conn: Connection) -> SweepOutcome:
            if not _turn(conn, SWEEP_SUBJECTS):
                return SweepOutcome(MessageChanges(), [], 0)
            return self._sweep_subscriptions_job(conn, now, purge_before, limit)

        return await self.engine.write(job)

    async def sweep_tasks(self, now: int, limit: int = 500, *, snapshots: bool = False) -> Changes:
        def job(tx: TaskTx) -> Changes:
            if not _turn(tx.conn, SWEEP_TASKS):
                return tx.changes
            return self._sweep_tasks_job(tx, limit)

        return await self._write(now, job, snapshots)

    async def purge_tasks(self, finished_before: int, limit: int = 1000) -> int:
        def job(conn: Connection) -> int:
            return purge_job(conn, self.q, finished_before, limit) if _turn(conn, PURGE_TASKS) else 0

        return await self.engine.write(job)
