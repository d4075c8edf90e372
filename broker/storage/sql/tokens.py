"""Access tokens (table ``tokens``) and the pending counts the security layer reads.

The functions take a connection and the dialect's statements, so that the ``a2a-broker tokens``
command can manage tokens on the database directly (``storage/token_file.py``; on a SQLite file
without the broker's file lock: SQLite lets a second connection write while the broker runs), and
the broker through its engine (the Admin RPCs).
"""

from __future__ import annotations

from ..base import TokenRecord
from .connection import Connection, Engine
from .queries import Queries


def _record(row: tuple[object, ...]) -> TokenRecord:
    return TokenRecord(*row)  # type: ignore[arg-type]


def insert_token(conn: Connection, q: Queries, rec: TokenRecord) -> None:
    conn.execute(
        q.tokens.insert,
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


def fetch_token(conn: Connection, q: Queries, token_id: str) -> TokenRecord | None:
    row = conn.execute(q.tokens.fetch, (token_id,)).fetchone()
    return None if row is None else _record(tuple(row))


def list_tokens(conn: Connection, q: Queries) -> list[TokenRecord]:
    return [_record(tuple(r)) for r in conn.execute(q.tokens.list).fetchall()]


def revoke_token(conn: Connection, q: Queries, token_id: str, now: int) -> bool:
    """Revoke a token; False when there is no such token (revoking twice is fine). The other
    brokers of the database, if any, are told at the commit (``Queries.tokens.changed``)."""
    found = conn.execute(q.tokens.revoke, (now, token_id)).rowcount > 0
    if found and q.tokens.changed is not None:
        conn.execute(q.tokens.changed)
    return found


def count_pending(conn: Connection, q: Queries, agent_id: str, limit: int) -> int:
    # Walks the partial index idx_messages_next (pending copies by recipient), at most limit rows.
    n: int = conn.execute(q.tokens.count_pending, (agent_id, limit)).fetchone()[0]
    return n


def pending_by_sender(conn: Connection, q: Queries, agent_id: str, limit: int) -> tuple[int, dict[str, int]]:
    """Pending messages held for the agent, counted up to ``limit``; when it holds that many, also
    how many each sender holds among the first ``2 * limit`` (the pending cap's fair shares)."""
    total = count_pending(conn, q, agent_id, limit)
    if total < limit:
        return total, {}
    rows = conn.execute(q.tokens.pending_by_sender, (agent_id, 2 * limit)).fetchall()
    return total, {r[0]: r[1] for r in rows}


class TokenOps:
    """TokenStore and SecurityStore: what the security layer reads."""

    engine: Engine
    q: Queries

    async def get_token(self, token_id: str) -> TokenRecord | None:
        return await self.engine.read(lambda conn: fetch_token(conn, self.q, token_id))

    async def create_token(self, rec: TokenRecord) -> None:
        await self.engine.write(lambda conn: insert_token(conn, self.q, rec))

    async def list_tokens(self) -> list[TokenRecord]:
        return await self.engine.read(lambda conn: list_tokens(conn, self.q))

    async def revoke_token(self, token_id: str, now: int) -> TokenRecord | None:
        def job(conn: Connection) -> TokenRecord | None:
            revoke_token(conn, self.q, token_id, now)
            return fetch_token(conn, self.q, token_id)

        return await self.engine.write(job)

    async def count_pending(self, agent_id: str, limit: int) -> int:
        return await self.engine.read(lambda conn: count_pending(conn, self.q, agent_id, limit))

    async def pending_by_sender(self, agent_id: str, limit: int) -> tuple[int, dict[str, int]]:
        return await self.engine.read(lambda conn: pending_by_sender(conn, self.q, agent_id, limit))
