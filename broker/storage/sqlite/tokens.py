"""Access tokens in the SQLite file (table ``tokens``, migration 0006).

The functions take a ``sqlite3`` connection, so that the ``a2a-broker tokens`` command can
manage tokens on the database file directly (without the broker's file lock: SQLite lets a
second connection write while the broker runs), and the broker reads them through its engine.
"""

from __future__ import annotations

import sqlite3

from ..base import TokenRecord
from .engine import SqliteEngine

_COLUMNS = "token_id, secret_hash, subject, role, created_at, expires_at, revoked_at, note"


def _record(row: tuple[object, ...]) -> TokenRecord:
    return TokenRecord(*row)  # type: ignore[arg-type]


def insert_token(conn: sqlite3.Connection, rec: TokenRecord) -> None:
    conn.execute(
        f"INSERT INTO tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            rec.token_id,
            rec.secret_hash,
            rec.subject,
            rec.role,
            rec.created_at,
            rec.expires_at,
            rec.revoked_at,
            rec.note,
        ),
    )


def fetch_token(conn: sqlite3.Connection, token_id: str) -> TokenRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM tokens WHERE token_id = ?", (token_id,)).fetchone()
    return None if row is None else _record(tuple(row))


def list_tokens(conn: sqlite3.Connection) -> list[TokenRecord]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM tokens ORDER BY created_at, token_id").fetchall()
    return [_record(tuple(r)) for r in rows]


def revoke_token(conn: sqlite3.Connection, token_id: str, now: int) -> bool:
    """Revoke a token; False when there is no such token (revoking twice is fine)."""
    cur = conn.execute(
        "UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE token_id = ?", (now, token_id)
    )
    return cur.rowcount > 0


def count_pending(conn: sqlite3.Connection, agent_id: str, limit: int) -> int:
    # Walks the partial index idx_messages_next (pending copies by recipient), at most limit rows.
    return conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM a2a_messages WHERE recipient_id = ? AND status = 'pending'"
        " LIMIT ?) AS held",  # PostgreSQL 15 wants the alias
        (agent_id, limit),
    ).fetchone()[0]


def pending_by_sender(conn: sqlite3.Connection, agent_id: str, limit: int) -> tuple[int, dict[str, int]]:
    """Pending messages held for the agent, counted up to ``limit``; when it holds that many, also
    how many each sender holds among the first ``2 * limit`` (the pending cap's fair shares)."""
    total = count_pending(conn, agent_id, limit)
    if total < limit:
        return total, {}
    rows = conn.execute(
        "SELECT sender_id, count(*) FROM (SELECT sender_id FROM a2a_messages WHERE recipient_id = ?"
        " AND status = 'pending' LIMIT ?) AS held GROUP BY sender_id",
        (agent_id, 2 * limit),
    ).fetchall()
    return total, {r[0]: r[1] for r in rows}


class TokenOps:
    """TokenStore and SecurityStore: what the security layer reads."""

    engine: SqliteEngine

    async def get_token(self, token_id: str) -> TokenRecord | None:
        return await self.engine.read(lambda conn: fetch_token(conn, token_id))

    async def count_pending(self, agent_id: str, limit: int) -> int:
        return await self.engine.read(lambda conn: count_pending(conn, agent_id, limit))

    async def pending_by_sender(self, agent_id: str, limit: int) -> tuple[int, dict[str, int]]:
        return await self.engine.read(lambda conn: pending_by_sender(conn, agent_id, limit))
