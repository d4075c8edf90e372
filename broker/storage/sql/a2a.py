"""The A2A gateway's tables: the index of A2A tasks (``a2a_tasks``), the push-notification
configurations (``a2a_push_configs``) and the notifications to POST (``a2a_push_events``).

What goes in them is decided by the gateway (``broker/gateway/tracker.py`` and ``push.py``); the
statements are each dialect's (``Queries.a2a``), the filtered lists assembled here with its
parameter marker.
"""

from __future__ import annotations

import json
from typing import Any

from ...models.a2a import A2AIndexEntry, A2AListQuery, PushConfig, PushCounts, PushDelivery
from .connection import Connection, Engine
from .queries import A2A_ENTRY, Queries


def _entry(row: Any) -> A2AIndexEntry:
    return A2AIndexEntry(
        task_id=row[0],
        owner=row[1],
        context_id=row[2],
        state=row[3],
        status_at=row[4],
        root_seq=row[5],
        turns=row[6],
        artifacts=tuple(json.loads(row[7])),
    )


def _config(row: Any) -> PushConfig:
    return PushConfig(*row)


def _delivery(row: Any) -> PushDelivery:
    return PushDelivery(
        seq=row[0],
        task_id=row[1],
        config_id=row[2],
        body=bytes(row[3]),
        attempt=row[4],
        status=row[5],
        next_at=row[6],
        created_at=row[7],
        last_error=row[8],
    )


def _where(p: str, flt: A2AListQuery) -> tuple[str, list[Any]]:
    """The filters of a list or count (each combination served by one of the table's indexes);
    ``p``: the dialect's parameter marker."""
    terms: list[str] = []
    args: list[Any] = []
    if flt.owner is not None:
        terms.append(f"owner = {p}")
        args.append(flt.owner)
    if flt.state:
        terms.append(f"state = {p}")
        args.append(flt.state)
    if flt.context_id:
        terms.append(f"context_id = {p}")
        args.append(flt.context_id)
    if flt.since_us is not None:
        terms.append(f"status_at >= {p}")
        args.append(flt.since_us)
    return (" AND ".join(terms) or "1 = 1"), args


def list_sql(p: str, flt: A2AListQuery) -> tuple[str, list[Any]]:
    """One page, newest status first (``flt.limit`` rows after ``flt.after``), and its arguments."""
    where, args = _where(p, flt)
    if flt.after is not None:
        where += f" AND (status_at < {p} OR (status_at = {p} AND task_id < {p}))"
        args += [flt.after[0], flt.after[0], flt.after[1]]
    sql = f"SELECT {A2A_ENTRY} FROM a2a_tasks WHERE {where} ORDER BY status_at DESC, task_id DESC LIMIT {p}"
    return sql, [*args, flt.limit]


def count_sql(p: str, flt: A2AListQuery) -> tuple[str, list[Any]]:
    """How many match in all (the page's filters, no cursor), and its arguments."""
    where, args = _where(p, flt)
    return f"SELECT count(*) FROM a2a_tasks WHERE {where}", args


def list_entries(conn: Connection, q: Queries, flt: A2AListQuery) -> list[A2AIndexEntry]:
    sql, args = list_sql(q.param, flt)
    return [_entry(r) for r in conn.execute(sql, args).fetchall()]


def count_entries(conn: Connection, q: Queries, flt: A2AListQuery) -> int:
    sql, args = count_sql(q.param, flt)
    return int(conn.execute(sql, args).fetchone()[0])


def get_entry(conn: Connection, q: Queries, task_id: str) -> A2AIndexEntry | None:
    row = conn.execute(q.a2a.entry, (task_id,)).fetchone()
    return None if row is None else _entry(row)


def save_entry_job(
    conn: Connection,
    q: Queries,
    entry: A2AIndexEntry,
    expected: A2AIndexEntry | None,
    bodies: list[bytes],
    now: int,
) -> bool:
    """Store ``entry`` if the stored one is still ``expected`` (False: another writer got there
    first; read again), and queue each notification body for each configuration of the task."""
    if get_entry(conn, q, entry.task_id) != expected:
        return False
    conn.execute(
        q.a2a.save_entry,
        (
            entry.task_id,
            entry.owner,
            entry.context_id,
            entry.state,
            entry.status_at,
            entry.root_seq,
            entry.turns,
            json.dumps(list(entry.artifacts)),
        ),
    )
    if bodies:
        configs = [r[0] for r in conn.execute(q.a2a.configs_of_task, (entry.task_id,))]
        for config_id in configs:
            for body in bodies:
                _queue(conn, q, entry.task_id, config_id, body, now)
    return True


def _queue(conn: Connection, q: Queries, task_id: str, config_id: str, body: bytes, now: int) -> None:
    conn.execute(q.a2a.queue_event, (task_id, config_id, body, now, now))


def unsettled(conn: Connection, q: Queries, final: list[str], limit: int) -> list[str]:
    """Ids of indexed A2A tasks not in a final state (checked again at start-up)."""
    p = q.param
    marks = ", ".join(p for _ in final)
    rows = conn.execute(
        f"SELECT task_id FROM a2a_tasks WHERE state NOT IN ({marks}) ORDER BY root_seq LIMIT {p}",
        (*final, limit),
    ).fetchall()
    return [r[0] for r in rows]


def unindexed(conn: Connection, q: Queries, task_type: str, window: int, limit: int) -> list[str]:
    """First turns among the last ``window`` submitted A2A tasks that have no index entry (a
    crash between the submission and the index write)."""
    top = conn.execute(q.a2a.top_root_seq).fetchone()[0]
    rows = conn.execute(q.a2a.unindexed, (task_type, max(0, top - window), limit)).fetchall()
    return [r[0] for r in rows]


# ---------------------------------------------------------------- push configurations


def save_config_job(conn: Connection, q: Queries, cfg: PushConfig, snapshot: bytes | None) -> PushConfig:
    """Create or replace a configuration; ``snapshot`` (the task as it is) is its first notification."""
    conn.execute(
        q.a2a.save_config,
        (
            cfg.task_id,
            cfg.config_id,
            cfg.owner,
            cfg.url,
            cfg.token,
            cfg.auth_scheme,
            cfg.auth_credentials,
            cfg.created_at,
        ),
    )
    if snapshot is not None:
        _queue(conn, q, cfg.task_id, cfg.config_id, snapshot, cfg.created_at)
    return cfg


def get_config(conn: Connection, q: Queries, task_id: str, config_id: str) -> PushConfig | None:
    row = conn.execute(q.a2a.config, (task_id, config_id)).fetchone()
    return None if row is None else _config(row)


def list_configs(conn: Connection, q: Queries, task_id: str, after: str, limit: int) -> list[PushConfig]:
    rows = conn.execute(q.a2a.configs_after, (task_id, after, limit)).fetchall()
    return [_config(r) for r in rows]


def delete_config_job(conn: Connection, q: Queries, task_id: str, config_id: str) -> bool:
    """Remove a configuration and what it still had to send (nothing is POSTed for it after)."""
    n = conn.execute(q.a2a.delete_config, (task_id, config_id)).rowcount
    conn.execute(q.a2a.delete_pending_events, (task_id, config_id))
    return n > 0


# ---------------------------------------------------------------- deliveries


def take_due_job(conn: Connection, q: Queries, now: int, lease_us: int, limit: int) -> list[PushDelivery]:
    """The oldest pending notification of each configuration that is due and not being POSTed,
    leased to the caller until ``now + lease_us`` (another broker's lease is left alone)."""
    out = []
    for row in conn.execute(q.a2a.due_heads, (now, now, limit)).fetchall():
        if conn.execute(q.a2a.lease_event, (now + lease_us, row[0], now)).rowcount:
            out.append(_delivery(row))
    return out


def next_due(conn: Connection, q: Queries) -> int | None:
    row = conn.execute(q.a2a.next_due).fetchone()
    return None if row is None else row[0]


def settle_job(
    conn: Connection, q: Queries, seq: int, now: int, *, ok: bool, retry_at: int | None, error: str | None
) -> None:
    """A POST's outcome: delivered; or failed, then tried again at ``retry_at`` (None: dead)."""
    if ok:
        conn.execute(q.a2a.settle_delivered, (now, seq))
    elif retry_at is not None:
        conn.execute(q.a2a.settle_retry, (retry_at, error, seq))
    else:
        conn.execute(q.a2a.settle_dead, (error, now, seq))


def counts(conn: Connection, q: Queries) -> PushCounts:
    out = PushCounts()
    for status, n in conn.execute(q.a2a.event_counts):
        setattr(out, status, int(n))
    return out


def list_deliveries(conn: Connection, q: Queries, status: str, limit: int) -> list[PushDelivery]:
    rows = conn.execute(q.a2a.events_by_status, (status, limit)).fetchall()
    return [_delivery(r) for r in rows]


def purge_job(conn: Connection, q: Queries, before: int, limit: int) -> int:
    """Forget delivered notifications settled before ``before`` (dead ones stay for the operator)."""
    return int(conn.execute(q.a2a.purge_events, (before, limit)).rowcount)


class A2AOps:
    """A2AStore: the gateway's index and push notifications."""

    engine: Engine
    q: Queries

    async def a2a_entry(self, task_id: str) -> A2AIndexEntry | None:
        return await self.engine.read(lambda c: get_entry(c, self.q, task_id))

    async def a2a_save(
        self, entry: A2AIndexEntry, expected: A2AIndexEntry | None, bodies: list[bytes], now: int
    ) -> bool:
        return await self.engine.write(lambda c: save_entry_job(c, self.q, entry, expected, bodies, now))

    async def a2a_list(self, q: A2AListQuery) -> tuple[list[A2AIndexEntry], int]:
        def read(c: Connection) -> tuple[list[A2AIndexEntry], int]:
            return list_entries(c, self.q, q), count_entries(c, self.q, q)

        return await self.engine.read(read)

    async def a2a_unsettled(self, final: list[str], limit: int) -> list[str]:
        return await self.engine.read(lambda c: unsettled(c, self.q, final, limit))

    async def a2a_unindexed(self, task_type: str, window: int, limit: int) -> list[str]:
        return await self.engine.read(lambda c: unindexed(c, self.q, task_type, window, limit))

    async def push_config_save(self, cfg: PushConfig, snapshot: bytes | None) -> PushConfig:
        return await self.engine.write(lambda c: save_config_job(c, self.q, cfg, snapshot))

    async def push_config_get(self, task_id: str, config_id: str) -> PushConfig | None:
        return await self.engine.read(lambda c: get_config(c, self.q, task_id, config_id))

    async def push_config_list(self, task_id: str, after: str, limit: int) -> list[PushConfig]:
        return await self.engine.read(lambda c: list_configs(c, self.q, task_id, after, limit))

    async def push_config_delete(self, task_id: str, config_id: str) -> bool:
        return await self.engine.write(lambda c: delete_config_job(c, self.q, task_id, config_id))

    async def push_take_due(self, now: int, lease_us: int, limit: int) -> list[PushDelivery]:
        return await self.engine.write(lambda c: take_due_job(c, self.q, now, lease_us, limit))

    async def push_next_due(self) -> int | None:
        return await self.engine.read(lambda c: next_due(c, self.q))

    async def push_settle(
        self, seq: int, now: int, *, ok: bool, retry_at: int | None = None, error: str | None = None
    ) -> None:
        await self.engine.write(
            lambda c: settle_job(c, self.q, seq, now, ok=ok, retry_at=retry_at, error=error)
        )

    async def push_counts(self) -> PushCounts:
        return await self.engine.read(lambda c: counts(c, self.q))

    async def push_list(self, status: str, limit: int) -> list[PushDelivery]:
        return await self.engine.read(lambda c: list_deliveries(c, self.q, status, limit))

    async def push_purge(self, before: int, limit: int = 1000) -> int:
        return await self.engine.write(lambda c: purge_job(c, self.q, before, limit))
