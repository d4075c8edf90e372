"""Counts for the metrics endpoint: messages by status and kind, the largest backlogs, tasks and
agents by status, the database's size (each dialect names its own way of asking). One read
transaction.

The message counts scan ``a2a_messages`` (its partial indexes serve the backlog queries): the
metrics layer caches a census for a few seconds, so scrapes do not multiply that cost.
"""

from __future__ import annotations

from ..base import Census
from .connection import Connection, Engine
from .limits import key_census
from .queries import Queries


def census(conn: Connection, q: Queries, top_n: int, now: int) -> Census:
    c = q.census
    messages = {(r[0], r[1]): int(r[2]) for r in conn.execute(c.by_status_kind)}
    pending = {k: n for (status, k), n in messages.items() if status == "pending"}
    agents_top = [(r[0], int(r[1])) for r in conn.execute(c.agent_backlog, (top_n,))]
    caps_top = [(r[0], int(r[1])) for r in conn.execute(c.capability_backlog, (top_n,))]
    with_recipient = pending.get("direct", 0) + pending.get("broadcast", 0)
    row = conn.execute(c.size).fetchone()
    key_running, key_running_total, key_waiting, key_waiting_total = key_census(conn, q, top_n)
    return Census(
        messages=messages,
        scheduled={r[0]: int(r[1]) for r in conn.execute(c.scheduled, (now,))},
        tasks={r[0]: int(r[1]) for r in conn.execute(c.tasks)},
        agents={r[0]: int(r[1]) for r in conn.execute(c.agents)},
        agent_backlog=agents_top,
        agent_backlog_rest=with_recipient - sum(n for _, n in agents_top),
        capability_backlog=caps_top,
        capability_backlog_rest=pending.get("anycast", 0) - sum(n for _, n in caps_top),
        size_bytes=int(row[0]) if row is not None and row[0] is not None else None,
        key_running=key_running,
        key_running_total=key_running_total,
        key_waiting=key_waiting,
        key_waiting_total=key_waiting_total,
    )


class CensusOps:
    engine: Engine
    q: Queries

    async def census(self, top_n: int, now: int) -> Census:
        return await self.engine.read(lambda conn: census(conn, self.q, top_n, now))

    async def probe(self) -> None:
        """A write job that changes nothing: the writer runs and commits (readiness)."""
        await self.engine.write(lambda conn: conn.execute("SELECT 1").fetchall())
