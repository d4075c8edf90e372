"""Counts for the metrics endpoint: messages by status and kind, the largest backlogs, tasks and
agents by status, the database's size. One read transaction; the SQL is portable (PostgreSQL
runs it too, through postgres/sql.py), except the size, which each backend names (``SIZE_SQL``).

The message counts scan ``a2a_messages`` (its partial indexes serve the backlog queries): the
metrics layer caches a census for a few seconds, so scrapes do not multiply that cost.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from ..base import Census

if TYPE_CHECKING:
    from .engine import SqliteEngine

_BY_STATUS_KIND = "SELECT status, target_kind, count(*) FROM a2a_messages GROUP BY status, target_kind"
_SCHEDULED = (
    "SELECT target_kind, count(*) FROM a2a_messages WHERE deliver_after IS NOT NULL AND status = 'pending'"
    " AND deliver_after > ? GROUP BY target_kind"
)
_AGENT_BACKLOG = (
    "SELECT recipient_id, count(*) FROM a2a_messages WHERE status = 'pending' AND recipient_id IS NOT NULL"
    " GROUP BY recipient_id ORDER BY count(*) DESC, recipient_id LIMIT ?"
)
_CAPABILITY_BACKLOG = (
    "SELECT target_capability, count(*) FROM a2a_messages WHERE status = 'pending' AND recipient_id IS NULL"
    " GROUP BY target_capability ORDER BY count(*) DESC, target_capability LIMIT ?"
)
_TASKS = "SELECT status, count(*) FROM tasks GROUP BY status"
_AGENTS = "SELECT status, count(*) FROM agents WHERE status != 'deregistered' GROUP BY status"


def census(conn: sqlite3.Connection, top_n: int, now: int, size_sql: str) -> Census:
    messages = {(r[0], r[1]): int(r[2]) for r in conn.execute(_BY_STATUS_KIND)}
    pending = {k: n for (status, k), n in messages.items() if status == "pending"}
    agents_top = [(r[0], int(r[1])) for r in conn.execute(_AGENT_BACKLOG, (top_n,))]
    caps_top = [(r[0], int(r[1])) for r in conn.execute(_CAPABILITY_BACKLOG, (top_n,))]
    with_recipient = pending.get("direct", 0) + pending.get("broadcast", 0)
    row = conn.execute(size_sql).fetchone()
    return Census(
        messages=messages,
        scheduled={r[0]: int(r[1]) for r in conn.execute(_SCHEDULED, (now,))},
        tasks={r[0]: int(r[1]) for r in conn.execute(_TASKS)},
        agents={r[0]: int(r[1]) for r in conn.execute(_AGENTS)},
        agent_backlog=agents_top,
        agent_backlog_rest=with_recipient - sum(n for _, n in agents_top),
        capability_backlog=caps_top,
        capability_backlog_rest=pending.get("anycast", 0) - sum(n for _, n in caps_top),
        size_bytes=int(row[0]) if row is not None and row[0] is not None else None,
    )


class CensusOps:
    engine: SqliteEngine
    SIZE_SQL = "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"

    async def census(self, top_n: int, now: int) -> Census:
        return await self.engine.read(lambda conn: census(conn, top_n, now, self.SIZE_SQL))

    async def probe(self) -> None:
        """A write job that changes nothing: the writer runs and commits (readiness)."""
        await self.engine.write(lambda conn: conn.execute("SELECT 1").fetchall())
