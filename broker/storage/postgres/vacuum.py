"""Queue tables vacuumed as fast as they churn.

Every message a broker handles leaves two dead row versions in ``a2a_messages`` (the claim and the
ack each write a new one; the status sits in the partial indexes' predicates, so none is a HOT
update) and every task a few in ``tasks``. Until a VACUUM removes them, each claim walks their
index entries: at 1,000 msgs/s, 2,000 more a second, and the claim (hence the latency) grows with
them. Autovacuum visits a database once per ``autovacuum_naptime`` (a minute by default, a
cluster-wide setting a broker does not own), however low the per-table thresholds migration 0012
sets. So each broker looks every ``every_s`` seconds, and when a table has ``min_dead`` dead rows or
more, vacuums it, from a connection of its own (VACUUM runs outside a transaction); a session
advisory lock keeps the brokers of a database from vacuuming at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger("broker.storage")

TABLES = ("a2a_messages", "tasks")
VACUUM_LOCK = 0x0A2A_7AC0  # session advisory lock: one broker vacuums at a time
_DEAD = "SELECT relname, n_dead_tup FROM pg_stat_user_tables WHERE relname = ANY(%s)"


class Vacuumer:
    def __init__(
        self, url: str, every_s: float = 5.0, min_dead: int = 5000, tables: tuple[str, ...] = TABLES
    ) -> None:
        self.url = url
        self.every_s = every_s
        self.min_dead = min_dead
        self.tables = tables
        self.vacuumed = 0  # VACUUMs run by this broker (for tests and benchmarks)
        self._conn: psycopg.Connection[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="pg-vacuum")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            await asyncio.to_thread(self._conn.close)
            self._conn = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                self.vacuumed += await asyncio.to_thread(self.once)
            except psycopg.Error as exc:  # the database is away: autovacuum still runs
                log.warning("could not vacuum the queue tables: %r", exc)
                self._conn = None

    def once(self) -> int:
        """On a thread: vacuum the tables with ``min_dead`` dead rows or more, unless another
        broker is vacuuming; how many were."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.url, autocommit=True)
        conn = self._conn
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (VACUUM_LOCK,)).fetchone()[0]:  # type: ignore[index]
            return 0
        try:
            due = [r[0] for r in conn.execute(_DEAD, (list(self.tables),)) if r[1] >= self.min_dead]
            for table in due:
                conn.execute(sql.SQL("VACUUM (SKIP_LOCKED) {}").format(sql.Identifier(table)))
            return len(due)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (VACUUM_LOCK,))
