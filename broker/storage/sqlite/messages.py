"""Messaging operations on SQLite.

Every operation is one write job (see engine.py): a few statements run on the
writer thread inside the group-committed transaction. Id lists travel as one
JSON array parameter (``json_each``), so each statement is prepared once and
cached whatever the number of ids.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ...domain import messages as rules
from ...errors import BrokerError
from ...models.messages import Message, NewMessage, SendResult
from ..message_store import Handoff, MessageChanges, SendOutcome, SweepOutcome
from .message_rows import COLUMNS, MessageReads, row_to_message
from .message_send import PreparedSends, send_outcome, store_sends

if TYPE_CHECKING:
    from .engine import SqliteEngine

# The rules (due, claim order, release, expiry, retention, acks) are in broker/domain/messages.py.
_DUE = rules.DUE_SQL
_ORDER = rules.CLAIM_ORDER_SQL
NEXT_DIRECT = (
    "SELECT seq, priority FROM a2a_messages WHERE recipient_id = :agent AND status = 'pending'"
    f" AND {_DUE} ORDER BY {_ORDER} LIMIT :n"
)
NEXT_ANYCAST = (
    "SELECT seq, priority FROM a2a_messages WHERE target_capability = :cap AND recipient_id IS NULL"
    f" AND status = 'pending' AND {_DUE} ORDER BY {_ORDER} LIMIT :n"
)
# A direct claim does not SET recipient_id: SQLite rewrites every index holding a column that an
# UPDATE sets, even to the same value (here three of them).
_CLAIM = f"UPDATE a2a_messages SET {rules.DELIVER_SQL}{{}} WHERE seq IN ({{}}) RETURNING {COLUMNS}"
_CLAIM_SEQS = _CLAIM.format("", "SELECT value FROM json_each(:seqs)")
# The direct claim in two single-step statements: rows come back packed in one JSON value (payload
# in hex), then one UPDATE marks them. UPDATE ... RETURNING steps once per row, and each step
# releases and retakes the GIL: under load every retake waits for the event loop thread.
_PACKED = (
    "json_group_array(json_array(seq, message_id, send_id, sender_id, recipient_id, target_kind,"
    " target_capability, message_type, hex(payload), content_type, priority, correlation_id,"
    " conversation_id, headers, idempotency_key, status, attempt, max_attempts, created_at,"
    " deliver_after, expires_at, delivered_at, ack_deadline, processed_at, last_error))"
)
PICK_DIRECT = (
    f"SELECT json_group_array(seq), {_PACKED} FROM (SELECT * FROM a2a_messages"
    f" WHERE recipient_id = :agent AND status = 'pending' AND {_DUE} ORDER BY {_ORDER} LIMIT :n)"
)
_MARK_DELIVERED = (
    f"UPDATE a2a_messages SET {rules.DELIVER_SQL} WHERE seq IN (SELECT value FROM json_each(:seqs))"
)
_CLAIM_ANYCAST_SEQS = _CLAIM.format(", recipient_id = :agent", "SELECT value FROM json_each(:seqs)")

_ACKABLE = (
    # "+recipient_id": look rows up by id (unique index), never by recipient (all its messages).
    f"message_id IN (SELECT value FROM json_each(:ids)) AND +recipient_id = :agent AND {rules.ACKABLE_SQL}"
)
ACK_PICK = f"SELECT json_group_array(json_array(message_id, attempt)) FROM a2a_messages WHERE {_ACKABLE}"
_ACK = f"UPDATE a2a_messages SET {rules.ACK_SQL} WHERE {_ACKABLE}"
_IN_IDS = "message_id IN (SELECT value FROM json_each(?))"
_OWNERS = f"SELECT message_id, recipient_id, status FROM a2a_messages WHERE {_IN_IDS}"

LAPSED = f"SELECT seq FROM a2a_messages WHERE {rules.LAPSED_SQL} ORDER BY ack_deadline LIMIT :lim"
EXPIRING = f"SELECT seq FROM a2a_messages WHERE {rules.EXPIRED_SQL} LIMIT :lim"
PURGEABLE = f"SELECT seq FROM a2a_messages WHERE {rules.PURGEABLE_SQL} LIMIT :lim"
_EXPIRE = (
    f"UPDATE a2a_messages SET {rules.EXPIRE_SQL} WHERE seq IN ({EXPIRING}) RETURNING message_id, attempt"
)


def _release_sql(where: str) -> str:
    """Hand deliveries back (``rules.release``, set-based)."""
    return f"""
UPDATE a2a_messages SET {rules.RELEASE_SQL}
WHERE status = 'delivered' AND {where}
RETURNING message_id, attempt + :refund, status, recipient_id, target_capability, deliver_after
"""


_REQUEUE = (
    f"UPDATE a2a_messages SET {rules.REQUEUE_SQL}"
    " WHERE message_id IN (SELECT value FROM json_each(?)) AND status = 'failed'"
    " RETURNING message_id, attempt, status, recipient_id, target_capability, deliver_after"
)
_RELEASE_HELD = _release_sql(
    "seq IN (SELECT m.seq FROM json_each(:held) j JOIN a2a_messages m"
    " ON m.message_id = j.value ->> 0 AND m.attempt = j.value ->> 1 WHERE m.status = 'delivered')"
)
_RELEASE_AGENT = _release_sql(
    "seq IN (SELECT seq FROM a2a_messages INDEXED BY idx_messages_delivered_to"
    " WHERE recipient_id = :agent AND status = 'delivered')"
)
_RELEASE_STALE = _release_sql("delivered_at < :before")
_RELEASE_LAPSED = _release_sql(f"seq IN ({LAPSED})")
_NACK = _release_sql("+recipient_id = :agent AND message_id IN (SELECT value FROM json_each(:ids))")


class Claimed:
    """What a claim job hands back: raw rows, turned into Messages on the event loop's thread
    (``messages()``) so that the single writer thread spends its time on SQL only."""

    __slots__ = ("packed", "rows", "now", "ack_deadline")

    def __init__(self, packed: str | None, rows: list[Any], now: int, ack_deadline: int) -> None:
        self.packed = packed  # one JSON array of rows as they were before the claim
        self.rows = rows  # or rows as the claim left them
        self.now = now
        self.ack_deadline = ack_deadline

    def messages(self) -> list[Message]:
        rows = self.rows
        if self.packed is not None:
            rows = json.loads(self.packed)
            for r in rows:  # as the UPDATE left them (rules.DELIVER_SQL)
                r[8] = bytes.fromhex(r[8])
                r[15] = "delivered"
                r[16] = rules.delivered_attempt(r[16])
                r[21] = self.now
                r[22] = self.ack_deadline
        msgs = [row_to_message(r) for r in rows]
        msgs.sort(key=lambda m: (-m.priority, m.seq))
        return msgs


def _claim(
    conn: sqlite3.Connection,
    agent_id: str,
    capabilities: tuple[str, ...],
    limit: int,
    now: int,
    ack_deadline: int,
) -> Claimed:
    """Mark up to ``limit`` due copies for the agent delivered: its own, and anycast copies for its
    capabilities, highest priority first, then enqueue order."""
    args = {"agent": agent_id, "now": now, "n": limit, "deadline": ack_deadline}
    if not capabilities:
        seqs, packed = conn.execute(PICK_DIRECT, args).fetchone()
        if seqs != "[]":
            conn.execute(_MARK_DELIVERED, {**args, "seqs": seqs})
            return Claimed(packed, [], now, ack_deadline)
        return Claimed(None, [], now, ack_deadline)
    direct, anycast = rules.pick_claims(
        conn.execute(NEXT_DIRECT, args).fetchall(),
        [conn.execute(NEXT_ANYCAST, {**args, "cap": cap}).fetchall() for cap in capabilities],
        limit,
    )
    rows = []
    for picked, sql in ((direct, _CLAIM_SEQS), (anycast, _CLAIM_ANYCAST_SEQS)):
        if picked:
            rows += conn.execute(sql, {**args, "seqs": json.dumps(picked)}).fetchall()
    return Claimed(None, rows, now, ack_deadline)


def _changed(rows: Iterable[sqlite3.Row]) -> MessageChanges:
    out = MessageChanges()
    for message_id, attempt, status, recipient, capability, after in rows:
        out.ids.append((message_id, attempt))
        if status == "pending":
            out.requeued += 1
            whom = rules.audience(recipient, capability)
            if after is None:
                out.wake.add(whom)
            else:
                out.scheduled.append((after, whom))
        else:
            out.dead += 1
    return out


def _release_args(
    now: int,
    reason: str,
    refund: bool = False,
    reject: bool = False,
    deliver_after: int | None = None,
    **kw: Any,
) -> dict[str, Any]:
    return {"now": now, **rules.release_params(reason, refund, reject, deliver_after), **kw}


def _check_owner(conn: sqlite3.Connection, agent_id: str, ids: list[str]) -> list[sqlite3.Row]:
    """NotFound / PermissionDenied for ids that are unknown or another agent's."""
    rows = conn.execute(_OWNERS, (json.dumps(ids),)).fetchall()
    found = {r[0]: r for r in rows}
    for mid in ids:
        r = found.get(mid)
        err = rules.ack_refusal(mid, r is not None, r[1] if r is not None else None, agent_id)
        if err is not None:
            raise err
    return rows


class MessageOps(MessageReads):
    engine: SqliteEngine

    # -- sending ---------------------------------------------------------------------------

    async def send_messages(
        self, msgs: list[NewMessage], now: int, batch: bool = False, handoff: dict[str, Handoff] | None = None
    ) -> SendOutcome:
        prep = PreparedSends(msgs, now)  # here, on the loop thread: the writer thread does SQL only

        def job(conn: sqlite3.Connection) -> tuple[list[SendResult | BrokerError] | None, dict[str, Claimed]]:
            stored = store_sends(conn, msgs, prep, now, batch)
            claims = {
                agent_id: _claim(conn, agent_id, c.capabilities, c.limit, now, now + c.ack_deadline_us)
                for agent_id, c in (handoff or {}).items()
            }
            return stored, claims

        stored, claims = await self.engine.write(job)
        out = send_outcome(msgs, prep, stored)
        out.claimed = {agent_id: c.messages() for agent_id, c in claims.items()}
        return out

    # -- delivering ------------------------------------------------------------------------

    async def claim_messages(
        self, agent_id: str, capabilities: tuple[str, ...], limit: int, now: int, ack_deadline: int
    ) -> list[Message]:
        claimed = await self.engine.write(
            lambda conn: _claim(conn, agent_id, capabilities, limit, now, ack_deadline)
        )
        return claimed.messages()

    async def ack_messages(self, agent_id: str, ids: list[str], now: int) -> list[tuple[str, int]]:
        def job(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            args = {"ids": json.dumps(ids), "agent": agent_id, "now": now}
            # Two single-step statements rather than UPDATE ... RETURNING (see PICK_DIRECT).
            done = [(r[0], r[1]) for r in json.loads(conn.execute(ACK_PICK, args).fetchone()[0])]
            if done:
                conn.execute(_ACK, args)
            if len(done) < len(ids):
                # Acking twice is harmless; an unknown id or another agent's message is not
                # (raising rolls this job back: a rejected Ack changes nothing).
                changed = {mid for mid, _ in done}
                _check_owner(conn, agent_id, [i for i in ids if i not in changed])
            return done

        return await self.engine.write(job)

    async def nack_messages(
        self, agent_id: str, ids: list[str], now: int, delay_us: int, reject: bool, reason: str
    ) -> MessageChanges:
        args = _release_args(
            now,
            rules.nack_reason(reason, reject),
            reject=reject,
            deliver_after=rules.redeliver_after(now, delay_us, reject),
            agent=agent_id,
            ids=json.dumps(ids),
        )

        def job(conn: sqlite3.Connection) -> MessageChanges:
            out = _changed(conn.execute(_NACK, args).fetchall())
            if len(out.ids) < len(ids):
                changed = {mid for mid, _ in out.ids}
                _check_owner(conn, agent_id, [i for i in ids if i not in changed])
            return out

        return await self.engine.write(job)

    async def release_deliveries(
        self, held: list[tuple[str, int]], now: int, reason: str, refund: bool
    ) -> MessageChanges:
        args = _release_args(now, reason, refund=refund, held=json.dumps(held))
        return await self.engine.write(lambda conn: _changed(conn.execute(_RELEASE_HELD, args).fetchall()))

    async def release_stale_deliveries(self, delivered_before: int, now: int, reason: str) -> MessageChanges:
        args = _release_args(now, reason, before=delivered_before)
        return await self.engine.write(lambda conn: _changed(conn.execute(_RELEASE_STALE, args).fetchall()))

    def _release_messages_of(self, conn: sqlite3.Connection, agent_id: str, now: int, reason: str) -> int:
        """Put the agent's delivered-but-unacked messages back to pending (same transaction as the caller)."""
        rows = conn.execute(_RELEASE_AGENT, _release_args(now, reason, agent=agent_id)).fetchall()
        return len(rows)

    # -- repair and housekeeping -----------------------------------------------------------

    async def requeue_messages(self, ids: list[str], now: int) -> MessageChanges:
        def job(conn: sqlite3.Connection) -> MessageChanges:
            rows = conn.execute(
                f"SELECT message_id, status FROM a2a_messages WHERE {_IN_IDS}",
                (json.dumps(ids),),
            ).fetchall()
            status = {r[0]: r[1] for r in rows}
            for mid in ids:
                err = rules.requeue_refusal(mid, status.get(mid))
                if err is not None:
                    raise err
            return _changed(conn.execute(_REQUEUE, (json.dumps(ids),)).fetchall())

        return await self.engine.write(job)

    async def sweep_messages(self, now: int, purge_before: int, limit: int) -> SweepOutcome:
        def job(conn: sqlite3.Connection) -> SweepOutcome:
            lapsed = _changed(
                conn.execute(
                    _RELEASE_LAPSED, _release_args(now, rules.ACK_DEADLINE_PASSED, lim=limit)
                ).fetchall()
            )
            expired = [(r[0], r[1]) for r in conn.execute(_EXPIRE, {"now": now, "lim": limit})]
            purge = {"before": purge_before, "lim": limit}
            # An idempotency record goes with its message (with the first purged copy of a
            # broadcast), not by its own age: a message still pending or dead-lettered past the
            # retention period keeps its key.
            conn.execute(
                "DELETE FROM message_sends WHERE (sender_id, idempotency_key) IN"
                f" (SELECT sender_id, idempotency_key FROM a2a_messages WHERE seq IN ({PURGEABLE})"
                " AND idempotency_key IS NOT NULL)",
                purge,
            )
            purged = conn.execute(
                f"DELETE FROM a2a_messages WHERE seq IN ({PURGEABLE})",
                purge,
            ).rowcount
            return SweepOutcome(lapsed, expired, purged)

        return await self.engine.write(job)
