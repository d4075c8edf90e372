"""Messaging on PostgreSQL: what it does its own way (the rest is ``sql/messages.py``).

Lists are arrays (``= ANY(%s)``); rows are inserted with one statement, an array per column
(``unnest``); and every claim and sweep locks the rows it picks with ``FOR UPDATE SKIP LOCKED``,
so that brokers claiming one queue or sweeping at the same moment take different rows rather than
wait or abort. What happens to a row is the same rule on both backends: ``broker.domain.messages``
and its SQL fragments.
"""

from __future__ import annotations

from typing import Any

from ...domain import messages as rules
from ..message_store import SweepOutcome
from ..sql.connection import Connection
from ..sql.message_send import MessageRow
from ..sql.messages import Claimed, MessageOps, changed, claim_across, release_args
from ..sql.queries import MESSAGE_COLUMNS, MESSAGE_INSERT_COLUMNS
from .queries import named, release

_DUE = rules.due_sql(named)
_CLAIM_DIRECT_NOW = (
    f"UPDATE a2a_messages SET {rules.deliver_sql(named)} WHERE seq IN ("
    "SELECT seq FROM a2a_messages WHERE recipient_id = %(agent)s AND status = 'pending'"
    f" AND {_DUE} ORDER BY {rules.CLAIM_ORDER_SQL} LIMIT %(n)s FOR UPDATE SKIP LOCKED)"
    f" RETURNING {MESSAGE_COLUMNS}"
)
ACK = (
    f"UPDATE a2a_messages SET {rules.ack_sql(named)} WHERE message_id = ANY(%(ids)s)"
    f" AND recipient_id = %(agent)s AND {rules.ACKABLE_SQL} RETURNING message_id, attempt"
)
LAPSED = (
    f"SELECT seq FROM a2a_messages WHERE {rules.lapsed_sql(named)} ORDER BY ack_deadline LIMIT %(lim)s"
    " FOR UPDATE SKIP LOCKED"
)
EXPIRING = (
    f"SELECT seq FROM a2a_messages WHERE {rules.expired_sql(named)} LIMIT %(lim)s FOR UPDATE SKIP LOCKED"
)
PURGEABLE = (
    f"SELECT seq FROM a2a_messages WHERE {rules.purgeable_sql(named)} LIMIT %(lim)s FOR UPDATE SKIP LOCKED"
)
_EXPIRE = (
    f"UPDATE a2a_messages SET {rules.expire_sql(named)} WHERE seq IN ({EXPIRING})"
    " RETURNING message_id, attempt"
)
_RELEASE_LAPSED = release(f"seq IN ({LAPSED})")
# An idempotency record goes with its message (see the SQLite version).
_PURGE_SENDS = (
    "DELETE FROM message_sends WHERE (sender_id, idempotency_key) IN"
    " (SELECT sender_id, idempotency_key FROM a2a_messages WHERE seq = ANY(%s)"
    " AND idempotency_key IS NOT NULL)"
)
_PURGE = "DELETE FROM a2a_messages WHERE seq = ANY(%s)"
_COLUMN_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "bytea", "text", "int", "text", "text",
    "text", "text", "int", "bigint", "bigint", "bigint",
)  # fmt: skip
_INSERT = (
    f"INSERT INTO a2a_messages ({MESSAGE_INSERT_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"%s::{t}[]" for t in _COLUMN_TYPES)
    + ")"
)


class ArrayInserter:
    """Many rows in one statement: one array per column."""

    def prepare(self, rows: list[MessageRow]) -> list[list[Any]]:
        return [list(col) for col in zip(*rows, strict=True)]

    def insert(self, conn: Connection, prepared: list[list[Any]]) -> None:
        if prepared:
            conn.execute(_INSERT, prepared)


class PgMessageOps(MessageOps):
    inserter = ArrayInserter()

    def _claim(
        self,
        conn: Connection,
        agent_id: str,
        capabilities: tuple[str, ...],
        limit: int,
        now: int,
        ack_deadline: int,
    ) -> Claimed:
        """Rows another broker is claiming at this moment are skipped, not waited for."""
        if capabilities:
            return claim_across(conn, self.q, agent_id, capabilities, limit, now, ack_deadline)
        args = {"agent": agent_id, "now": now, "n": limit, "deadline": ack_deadline}
        return Claimed(None, conn.execute(_CLAIM_DIRECT_NOW, args).fetchall(), now, ack_deadline)

    def _ack(self, conn: Connection, agent_id: str, ids: list[str], now: int) -> list[tuple[str, int]]:
        return [(r[0], r[1]) for r in conn.execute(ACK, {"ids": ids, "agent": agent_id, "now": now})]

    def _sweep_messages_job(self, conn: Connection, now: int, purge_before: int, limit: int) -> SweepOutcome:
        args = release_args(now, rules.ACK_DEADLINE_PASSED, lim=limit)
        lapsed = changed(conn.execute(_RELEASE_LAPSED, args).fetchall())
        expired = [(r[0], r[1]) for r in conn.execute(_EXPIRE, {"now": now, "lim": limit})]
        seqs = [r[0] for r in conn.execute(PURGEABLE, {"before": purge_before, "lim": limit})]
        if not seqs:
            return SweepOutcome(lapsed, expired, 0)
        conn.execute(_PURGE_SENDS, (seqs,))
        purged = conn.execute(_PURGE, (seqs,)).rowcount
        return SweepOutcome(lapsed, expired, purged)
