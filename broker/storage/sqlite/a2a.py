"""The A2A gateway's tables: the index of A2A tasks (``a2a_tasks``), the push-notification
configurations (``a2a_push_configs``) and the notifications to POST (``a2a_push_events``).

Plain SQL shared with the PostgreSQL backend (through postgres/sql.py), like the task operations.
What goes in them is decided by the gateway (``broker/gateway/tracker.py`` and ``push.py``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ...models.a2a import A2AIndexEntry, A2AListQuery, PushConfig, PushCounts, PushDelivery
from .engine import SqliteEngine

_ENTRY = "task_id, owner, context_id, state, status_at, root_seq, turns, artifacts"
_CONFIG = "task_id, config_id, owner, url, token, auth_scheme, auth_credentials, created_at"
_EVENT = "seq, task_id, config_id, body, attempt, status, next_at, created_at, last_error"


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


def _where(q: A2AListQuery) -> tuple[str, list[Any]]:
    """The filters of a list or count (each combination served by one of the table's indexes)."""
    terms: list[str] = []
    args: list[Any] = []
    if q.owner is not None:
        terms.append("owner = ?")
        args.append(q.owner)
    if q.state:
        terms.append("state = ?")
        args.append(q.state)
    if q.context_id:
        terms.append("context_id = ?")
        args.append(q.context_id)
    if q.since_us is not None:
        terms.append("status_at >= ?")
        args.append(q.since_us)
    return (" AND ".join(terms) or "1 = 1"), args


def list_entries(conn: sqlite3.Connection, q: A2AListQuery) -> list[A2AIndexEntry]:
    where, args = _where(q)
    if q.after is not None:
        where += " AND (status_at < ? OR (status_at = ? AND task_id < ?))"
        args += [q.after[0], q.after[0], q.after[1]]
    rows = conn.execute(
        f"SELECT {_ENTRY} FROM a2a_tasks WHERE {where} ORDER BY status_at DESC, task_id DESC LIMIT ?",
        (*args, q.limit),
    ).fetchall()
    return [_entry(r) for r in rows]


def count_entries(conn: sqlite3.Connection, q: A2AListQuery) -> int:
    where, args = _where(q)
    return int(conn.execute(f"SELECT count(*) FROM a2a_tasks WHERE {where}", args).fetchone()[0])


def get_entry(conn: sqlite3.Connection, task_id: str) -> A2AIndexEntry | None:
    row = conn.execute(f"SELECT {_ENTRY} FROM a2a_tasks WHERE task_id = ?", (task_id,)).fetchone()
    return None if row is None else _entry(row)


def save_entry_job(
    conn: sqlite3.Connection,
    entry: A2AIndexEntry,
    expected: A2AIndexEntry | None,
    bodies: list[bytes],
    now: int,
) -> bool:
    """Store ``entry`` if the stored one is still ``expected`` (False: another writer got there
    first; read again), and queue each notification body for each configuration of the task."""
    if get_entry(conn, entry.task_id) != expected:
        return False
    conn.execute(
        f"INSERT INTO a2a_tasks ({_ENTRY}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, status_at = excluded.status_at,"
        " turns = excluded.turns, artifacts = excluded.artifacts, context_id = excluded.context_id",
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
        configs = [
            r[0]
            for r in conn.execute(
                "SELECT config_id FROM a2a_push_configs WHERE task_id = ? ORDER BY config_id",
                (entry.task_id,),
            )
        ]
        for config_id in configs:
            for body in bodies:
                _queue(conn, entry.task_id, config_id, body, now)
    return True


def _queue(conn: sqlite3.Connection, task_id: str, config_id: str, body: bytes, now: int) -> None:
    conn.execute(
        "INSERT INTO a2a_push_events (task_id, config_id, body, next_at, created_at) VALUES (?, ?, ?, ?, ?)",
        (task_id, config_id, body, now, now),
    )


def unsettled(conn: sqlite3.Connection, final: list[str], limit: int) -> list[str]:
    """Ids of indexed A2A tasks not in a final state (checked again at start-up)."""
    marks = ", ".join("?" for _ in final)
    rows = conn.execute(
        f"SELECT task_id FROM a2a_tasks WHERE state NOT IN ({marks}) ORDER BY root_seq LIMIT ?",
        (*final, limit),
    ).fetchall()
    return [r[0] for r in rows]


def unindexed(conn: sqlite3.Connection, task_type: str, window: int, limit: int) -> list[str]:
    """First turns among the last ``window`` submitted A2A tasks that have no index entry (a
    crash between the submission and the index write)."""
    top = conn.execute("SELECT coalesce(max(root_seq), 0) FROM a2a_tasks").fetchone()[0]
    rows = conn.execute(
        "SELECT t.task_id FROM tasks t WHERE t.task_type = ? AND t.level = 0 AND t.seq > ?"
        " AND NOT EXISTS (SELECT 1 FROM a2a_tasks a WHERE a.task_id = t.task_id) ORDER BY t.seq LIMIT ?",
        (task_type, max(0, top - window), limit),
    ).fetchall()
    return [r[0] for r in rows]


# ---------------------------------------------------------------- push configurations


def save_config_job(conn: sqlite3.Connection, cfg: PushConfig, snapshot: bytes | None) -> PushConfig:
    """Create or replace a configuration; ``snapshot`` (the task as it is) is its first notification."""
    conn.execute(
        f"INSERT INTO a2a_push_configs ({_CONFIG}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (task_id, config_id) DO UPDATE SET owner = excluded.owner, url = excluded.url,"
        " token = excluded.token, auth_scheme = excluded.auth_scheme,"
        " auth_credentials = excluded.auth_credentials",
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
        _queue(conn, cfg.task_id, cfg.config_id, snapshot, cfg.created_at)
    return cfg


def get_config(conn: sqlite3.Connection, task_id: str, config_id: str) -> PushConfig | None:
    row = conn.execute(
        f"SELECT {_CONFIG} FROM a2a_push_configs WHERE task_id = ? AND config_id = ?", (task_id, config_id)
    ).fetchone()
    return None if row is None else _config(row)


def list_configs(conn: sqlite3.Connection, task_id: str, after: str, limit: int) -> list[PushConfig]:
    rows = conn.execute(
        f"SELECT {_CONFIG} FROM a2a_push_configs WHERE task_id = ? AND config_id > ?"
        " ORDER BY config_id LIMIT ?",
        (task_id, after, limit),
    ).fetchall()
    return [_config(r) for r in rows]


def delete_config_job(conn: sqlite3.Connection, task_id: str, config_id: str) -> bool:
    """Remove a configuration and what it still had to send (nothing is POSTed for it after)."""
    n = conn.execute(
        "DELETE FROM a2a_push_configs WHERE task_id = ? AND config_id = ?", (task_id, config_id)
    ).rowcount
    conn.execute(
        "DELETE FROM a2a_push_events WHERE task_id = ? AND config_id = ? AND status = 'pending'",
        (task_id, config_id),
    )
    return n > 0


# ---------------------------------------------------------------- deliveries

_HEADS = (
    f"SELECT {_EVENT} FROM a2a_push_events e WHERE e.status = 'pending' AND e.next_at <= ?"
    " AND (e.lease_until IS NULL OR e.lease_until < ?)"
    " AND NOT EXISTS (SELECT 1 FROM a2a_push_events p WHERE p.status = 'pending'"
    " AND p.task_id = e.task_id AND p.config_id = e.config_id AND p.seq < e.seq)"
    " ORDER BY e.next_at, e.seq LIMIT ?"
)


def take_due_job(conn: sqlite3.Connection, now: int, lease_us: int, limit: int) -> list[PushDelivery]:
    """The oldest pending notification of each configuration that is due and not being POSTed,
    leased to the caller until ``now + lease_us`` (another broker's lease is left alone)."""
    out = []
    for row in conn.execute(_HEADS, (now, now, limit)).fetchall():
        taken = conn.execute(
            "UPDATE a2a_push_events SET lease_until = ? WHERE seq = ? AND status = 'pending'"
            " AND (lease_until IS NULL OR lease_until < ?)",
            (now + lease_us, row[0], now),
        ).rowcount
        if taken:
            out.append(_delivery(row))
    return out


def next_due(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT min(next_at) FROM a2a_push_events WHERE status = 'pending'").fetchone()
    return None if row is None else row[0]


def settle_job(
    conn: sqlite3.Connection, seq: int, now: int, *, ok: bool, retry_at: int | None, error: str | None
) -> None:
    """A POST's outcome: delivered; or failed, then tried again at ``retry_at`` (None: dead)."""
    if ok:
        conn.execute(
            "UPDATE a2a_push_events SET status = 'delivered', attempt = attempt + 1, lease_until = NULL,"
            " settled_at = ? WHERE seq = ? AND status = 'pending'",
            (now, seq),
        )
    elif retry_at is not None:
        conn.execute(
            "UPDATE a2a_push_events SET attempt = attempt + 1, next_at = ?, lease_until = NULL,"
            " last_error = ? WHERE seq = ? AND status = 'pending'",
            (retry_at, error, seq),
        )
    else:
        conn.execute(
            "UPDATE a2a_push_events SET status = 'dead', attempt = attempt + 1, lease_until = NULL,"
            " last_error = ?, settled_at = ? WHERE seq = ? AND status = 'pending'",
            (error, now, seq),
        )


def counts(conn: sqlite3.Connection) -> PushCounts:
    out = PushCounts()
    for status, n in conn.execute("SELECT status, count(*) FROM a2a_push_events GROUP BY status"):
        setattr(out, status, int(n))
    return out


def list_deliveries(conn: sqlite3.Connection, status: str, limit: int) -> list[PushDelivery]:
    rows = conn.execute(
        f"SELECT {_EVENT} FROM a2a_push_events WHERE status = ? ORDER BY seq DESC LIMIT ?", (status, limit)
    ).fetchall()
    return [_delivery(r) for r in rows]


def purge_job(conn: sqlite3.Connection, before: int, limit: int) -> int:
    """Forget delivered notifications settled before ``before`` (dead ones stay for the operator)."""
    return int(
        conn.execute(
            "DELETE FROM a2a_push_events WHERE seq IN (SELECT seq FROM a2a_push_events"
            " WHERE status = 'delivered' AND settled_at < ? LIMIT ?)",
            (before, limit),
        ).rowcount
    )


class A2AOps:
    """A2AStore: the gateway's index and push notifications."""

    engine: SqliteEngine

    async def a2a_entry(self, task_id: str) -> A2AIndexEntry | None:
        return await self.engine.read(lambda c: get_entry(c, task_id))

    async def a2a_save(
        self, entry: A2AIndexEntry, expected: A2AIndexEntry | None, bodies: list[bytes], now: int
    ) -> bool:
        return await self.engine.write(lambda c: save_entry_job(c, entry, expected, bodies, now))

    async def a2a_list(self, q: A2AListQuery) -> tuple[list[A2AIndexEntry], int]:
        def read(c: sqlite3.Connection) -> tuple[list[A2AIndexEntry], int]:
            return list_entries(c, q), count_entries(c, q)

        return await self.engine.read(read)

    async def a2a_unsettled(self, final: list[str], limit: int) -> list[str]:
        return await self.engine.read(lambda c: unsettled(c, final, limit))

    async def a2a_unindexed(self, task_type: str, window: int, limit: int) -> list[str]:
        return await self.engine.read(lambda c: unindexed(c, task_type, window, limit))

    async def push_config_save(self, cfg: PushConfig, snapshot: bytes | None) -> PushConfig:
        return await self.engine.write(lambda c: save_config_job(c, cfg, snapshot))

    async def push_config_get(self, task_id: str, config_id: str) -> PushConfig | None:
        return await self.engine.read(lambda c: get_config(c, task_id, config_id))

    async def push_config_list(self, task_id: str, after: str, limit: int) -> list[PushConfig]:
        return await self.engine.read(lambda c: list_configs(c, task_id, after, limit))

    async def push_config_delete(self, task_id: str, config_id: str) -> bool:
        return await self.engine.write(lambda c: delete_config_job(c, task_id, config_id))

    async def push_take_due(self, now: int, lease_us: int, limit: int) -> list[PushDelivery]:
        return await self.engine.write(lambda c: take_due_job(c, now, lease_us, limit))

    async def push_next_due(self) -> int | None:
        return await self.engine.read(next_due)

    async def push_settle(
        self, seq: int, now: int, *, ok: bool, retry_at: int | None = None, error: str | None = None
    ) -> None:
        await self.engine.write(lambda c: settle_job(c, seq, now, ok=ok, retry_at=retry_at, error=error))

    async def push_counts(self) -> PushCounts:
        return await self.engine.read(counts)

    async def push_list(self, status: str, limit: int) -> list[PushDelivery]:
        return await self.engine.read(lambda c: list_deliveries(c, status, limit))

    async def push_purge(self, before: int, limit: int = 1000) -> int:
        return await self.engine.write(lambda c: purge_job(c, before, limit))
