"""Messaging operations on PostgreSQL.

The SQLite versions (broker/storage/sqlite/messages.py, message_send.py) are tuned to SQLite: id
lists travel as one JSON parameter (``json_each``), claims come back packed in one JSON value. Here
lists are arrays (``= ANY(%s)``), and every claim locks the rows it picks with ``FOR UPDATE SKIP
LOCKED``, so that brokers claiming one queue at the same moment take different rows rather than
wait or abort. What happens to a row (due, claim order, delivery, release, expiry, retention, acks)
is the same rule on both backends: ``broker.domain.messages`` and its ``*_SQL`` fragments.
The parts of a send that need no SQL dialect (ids, rows, outcome) are shared with SQLite.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...domain import messages as rules
from ...domain.messages import Audience, audience
from ...errors import BrokerError, FailedPrecondition, NotFound
from ...models.messages import (
    Conversation,
    Message,
    MessageFilter,
    MessageStatus,
    NewMessage,
    SendResult,
    TargetKind,
)
from ..message_store import Handoff, MessageChanges, SendOutcome, SweepOutcome
from ..sqlite.message_rows import (
    COLUMNS,
    DUE_SCHEDULED,
    conversations_job,
    list_messages_sql,
    purge_job,
    row_to_message,
)
from ..sqlite.message_rows import mark_awaiting as shared_mark_awaiting
from ..sqlite.message_send import PreparedSends, send_outcome
from ..sqlite.messages import Claimed, _changed, _release_args
from .sql import PgConnection

if TYPE_CHECKING:
    from .engine import PgEngine

_DUE = rules.DUE_SQL
_ORDER = rules.CLAIM_ORDER_SQL
_NEXT_DIRECT = (
    "SELECT seq, priority FROM a2a_messages WHERE recipient_id = :agent AND status = 'pending'"
    f" AND {_DUE} ORDER BY {_ORDER} LIMIT :n FOR UPDATE SKIP LOCKED"
)
_NEXT_ANYCAST = (
    "SELECT seq, priority FROM a2a_messages WHERE target_capability = :cap AND recipient_id IS NULL"
    f" AND status = 'pending' AND {_DUE} ORDER BY {_ORDER} LIMIT :n FOR UPDATE SKIP LOCKED"
)
_CLAIM_DIRECT_NOW = (
    f"UPDATE a2a_messages SET {rules.DELIVER_SQL} WHERE seq IN ("
    "SELECT seq FROM a2a_messages WHERE recipient_id = :agent AND status = 'pending'"
    f" AND {_DUE} ORDER BY {_ORDER} LIMIT :n FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}"
)
_CLAIM_SEQS = f"UPDATE a2a_messages SET {rules.DELIVER_SQL} WHERE seq = ANY(:seqs) RETURNING {COLUMNS}"
_CLAIM_ANYCAST_SEQS = (
    f"UPDATE a2a_messages SET {rules.DELIVER_SQL}, recipient_id = :agent WHERE seq = ANY(:seqs)"
    f" RETURNING {COLUMNS}"
)
_ACK = (
    f"UPDATE a2a_messages SET {rules.ACK_SQL} WHERE message_id = ANY(:ids) AND recipient_id = :agent"
    f" AND {rules.ACKABLE_SQL} RETURNING message_id, attempt"
)
_OWNERS = "SELECT message_id, recipient_id, status FROM a2a_messages WHERE message_id = ANY(?)"
_LAPSED = (
    f"SELECT seq FROM a2a_messages WHERE {rules.LAPSED_SQL} ORDER BY ack_deadline LIMIT :lim"
    " FOR UPDATE SKIP LOCKED"
)
_EXPIRING = f"SELECT seq FROM a2a_messages WHERE {rules.EXPIRED_SQL} LIMIT :lim FOR UPDATE SKIP LOCKED"
_PURGEABLE = f"SELECT seq FROM a2a_messages WHERE {rules.PURGEABLE_SQL} LIMIT :lim FOR UPDATE SKIP LOCKED"
_EXPIRE = (
    f"UPDATE a2a_messages SET {rules.EXPIRE_SQL} WHERE seq IN ({_EXPIRING}) RETURNING message_id, attempt"
)


def _release_sql(where: str) -> str:
    return (
        f"UPDATE a2a_messages SET {rules.RELEASE_SQL} WHERE status = 'delivered' AND {where}"
        " RETURNING message_id, attempt + :refund, status, recipient_id, target_capability, deliver_after"
    )


_RELEASE_HELD = _release_sql(
    "(message_id, attempt) IN"
    " (SELECT * FROM unnest(CAST(:held_ids AS text[]), CAST(:held_attempts AS int[])))"
)
_RELEASE_AGENT = _release_sql("recipient_id = :agent")
_RELEASE_STALE = _release_sql("delivered_at < :before")
_RELEASE_LAPSED = _release_sql(f"seq IN ({_LAPSED})")
_NACK = _release_sql("recipient_id = :agent AND message_id = ANY(:ids)")
_REQUEUE = (
    f"UPDATE a2a_messages SET {rules.REQUEUE_SQL} WHERE message_id = ANY(?) AND status = 'failed'"
    " RETURNING message_id, attempt, status, recipient_id, target_capability, deliver_after"
)
_LIVE = "SELECT agent_id FROM agents WHERE agent_id = ANY(?) AND status != 'deregistered'"
_CAPABLE = (
    "SELECT DISTINCT c.capability FROM agent_capabilities c JOIN agents a ON a.agent_id = c.agent_id"
    " WHERE c.capability = ANY(?) AND a.status != 'deregistered'"
)
_FIELDS = (
    "message_id, send_id, sender_id, recipient_id, target_kind, target_capability, message_type, payload,"
    " content_type, priority, correlation_id, conversation_id, headers, idempotency_key, max_attempts,"
    " created_at, deliver_after, expires_at"
)
_INSERT = f"INSERT INTO a2a_messages ({_FIELDS}) SELECT * FROM unnest(" + ", ".join(
    f"?::{t}[]"
    for t in (
        "text", "text", "text", "text", "text", "text", "text", "bytea", "text", "int", "text", "text",
        "text", "text", "int", "bigint", "bigint", "bigint",
    )
) + ")"  # fmt: skip
_BROADCAST = f"""
INSERT INTO a2a_messages ({_FIELDS})
SELECT :send_id || '.' || row_number() OVER (ORDER BY a.agent_id), :send_id, :sender, a.agent_id,
       'broadcast', :cap, :type, :payload, :ctype, :prio, :corr, :conv, :headers, :key, :max, :now,
       :after, :expires
FROM agents a
WHERE a.status != 'deregistered' AND (:incl OR a.agent_id != :sender)
  AND (CAST(:cap AS text) IS NULL OR a.agent_id IN
       (SELECT agent_id FROM agent_capabilities WHERE capability = :cap))
ORDER BY a.agent_id
RETURNING message_id, recipient_id
"""


def _pg_release_args(*args: Any, **kw: Any) -> dict[str, Any]:
    out = _release_args(*args, **kw)
    out["reject"] = bool(out["reject"])  # a boolean in PostgreSQL's OR
    return out


def _claim(
    conn: PgConnection, agent_id: str, capabilities: tuple[str, ...], limit: int, now: int, ack_deadline: int
) -> Claimed:
    """Mark up to ``limit`` due copies for the agent delivered: its own, and anycast copies for its
    capabilities, highest priority first, then enqueue order; rows another broker is claiming at
    this moment are skipped, not waited for."""
    args = {"agent": agent_id, "now": now, "n": limit, "deadline": ack_deadline}
    if not capabilities:
        return Claimed(None, conn.execute(_CLAIM_DIRECT_NOW, args).fetchall(), now, ack_deadline)
    direct, anycast = rules.pick_claims(
        conn.execute(_NEXT_DIRECT, args).fetchall(),
        [conn.execute(_NEXT_ANYCAST, {**args, "cap": cap}).fetchall() for cap in capabilities],
        limit,
    )
    rows = []
    for picked, sql in ((direct, _CLAIM_SEQS), (anycast, _CLAIM_ANYCAST_SEQS)):
        if picked:
            rows += conn.execute(sql, {**args, "seqs": list(picked)}).fetchall()
    return Claimed(None, rows, now, ack_deadline)


def _check_owner(conn: PgConnection, agent_id: str, ids: list[str]) -> None:
    """NotFound / PermissionDenied for ids that are unknown or another agent's."""
    found = {r[0]: r for r in conn.execute(_OWNERS, (ids,)).fetchall()}
    for mid in ids:
        r = found.get(mid)
        err = rules.ack_refusal(mid, r is not None, r[1] if r is not None else None, agent_id)
        if err is not None:
            raise err


def _field(i: int, name: str, batch: bool) -> str:
    return f"messages[{i}].{name}" if batch else name


def _check(conn: PgConnection, msgs: list[NewMessage], batch: bool) -> list[BrokerError | None]:
    """As ``sqlite.message_send._check``: an unknown sender; with ``require_recipient``, a direct
    recipient not registered or an anycast nobody can take."""
    ids = {m.sender_id for m in msgs}
    ids.update(m.target.agent_id for m in msgs if m.require_recipient and m.target.kind is TargetKind.DIRECT)  # type: ignore[misc]
    live = {r[0] for r in conn.execute(_LIVE, (list(ids),))}
    caps = {
        m.target.capability or "" for m in msgs if m.require_recipient and m.target.kind is TargetKind.ANYCAST
    }
    capable = {r[0] for r in conn.execute(_CAPABLE, (list(caps),))} if caps else set()
    errors: list[BrokerError | None] = []
    for i, m in enumerate(msgs):
        err: BrokerError | None = None
        t = m.target
        if m.sender_id not in live:
            err = NotFound(f"{_field(i, 'sender_id', batch)}: agent {m.sender_id!r} is not registered")
        elif not m.require_recipient:
            pass
        elif t.kind is TargetKind.DIRECT and t.agent_id not in live:
            err = NotFound(
                f"{_field(i, 'target.agent_id', batch)}: agent {t.agent_id!r} is not registered"
                " (require_recipient is set)"
            )
        elif t.kind is TargetKind.ANYCAST and (t.capability or "") not in capable:
            err = FailedPrecondition(
                f"{_field(i, 'target.anycast.capability', batch)}: no registered agent has capability"
                f" {t.capability or ''!r} (require_recipient is set)"
            )
        if err is not None and batch:
            raise err  # all or nothing
        errors.append(err)
    return errors


def _insert(conn: PgConnection, rows: list[tuple[Any, ...]]) -> None:
    """Many rows in one statement: one array per column."""
    if rows:
        conn.execute(_INSERT, [list(col) for col in zip(*rows, strict=True)])


def store_sends(
    conn: PgConnection, msgs: list[NewMessage], prep: PreparedSends, now: int, batch: bool
) -> list[SendResult | BrokerError]:
    """Store sends (see ``sqlite.message_send.store_sends``): the result of each message."""
    errors = _check(conn, msgs, batch)
    results: list[SendResult | BrokerError] = []
    rows: list[tuple[Any, ...]] = []
    for i, (m, err, send_id, row, headers) in enumerate(
        zip(msgs, errors, prep.send_ids, prep.rows, prep.headers, strict=True)
    ):
        if err is not None:
            results.append(err)
            continue
        if m.idempotency_key is not None:
            prior = conn.execute(
                "SELECT message_ids FROM message_sends WHERE sender_id = ? AND idempotency_key = ?",
                (m.sender_id, m.idempotency_key),
            ).fetchone()
            if prior is not None:
                results.append(SendResult(json.loads(prior[0]), duplicate=True))
                continue
        t = m.target
        if row is None:  # broadcast: a copy per recipient, made by SQL
            _insert(conn, rows)  # keep enqueue order within the request
            rows = []
            copies = conn.execute(
                _BROADCAST,
                {
                    "send_id": send_id, "sender": m.sender_id, "cap": t.capability, "type": m.message_type,
                    "payload": m.payload, "ctype": m.content_type, "prio": m.priority,
                    "corr": m.correlation_id, "conv": m.conversation_id, "headers": headers,
                    "key": m.idempotency_key, "max": m.max_attempts, "now": now, "after": m.deliver_after,
                    "expires": m.expires_at, "incl": bool(t.include_sender),
                },
            ).fetchall()  # fmt: skip
            if not copies and m.require_recipient:
                err = FailedPrecondition(
                    f"{_field(i, 'target.broadcast', batch)}: no registered agent would receive it"
                    " (require_recipient is set)"
                )
                if batch:
                    raise err
                results.append(err)
                continue
            copies.sort(key=lambda r: r[1])
            result = SendResult([r[0] for r in copies])
            result.recipients = [r[1] for r in copies]
        else:
            rows.append(row)
            result = SendResult([send_id])
        if m.idempotency_key is not None:
            conn.execute(
                "INSERT INTO message_sends (sender_id, idempotency_key, send_id, message_ids, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (m.sender_id, m.idempotency_key, send_id, json.dumps(result.message_ids), now),
            )
        results.append(result)
    _insert(conn, rows)
    return results


def mark_awaiting(conn: PgConnection, msgs: list[Message]) -> list[Message]:
    """``sqlite.message_rows.mark_awaiting`` with id lists as arrays."""
    return shared_mark_awaiting(conn, msgs, _LIVE, _CAPABLE, list)  # type: ignore[arg-type]


class PgMessageOps:
    engine: PgEngine

    async def send_messages(
        self, msgs: list[NewMessage], now: int, batch: bool = False, handoff: dict[str, Handoff] | None = None
    ) -> SendOutcome:
        prep = PreparedSends(msgs, now)

        def job(conn: PgConnection) -> tuple[list[SendResult | BrokerError], dict[str, Claimed]]:
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

    async def claim_messages(
        self, agent_id: str, capabilities: tuple[str, ...], limit: int, now: int, ack_deadline: int
    ) -> list[Message]:
        claimed = await self.engine.write(
            lambda conn: _claim(conn, agent_id, capabilities, limit, now, ack_deadline)
        )
        return claimed.messages()

    async def ack_messages(self, agent_id: str, ids: list[str], now: int) -> list[tuple[str, int]]:
        def job(conn: PgConnection) -> list[tuple[str, int]]:
            done = [(r[0], r[1]) for r in conn.execute(_ACK, {"ids": ids, "agent": agent_id, "now": now})]
            if len(done) < len(ids):
                changed = {mid for mid, _ in done}
                _check_owner(conn, agent_id, [i for i in ids if i not in changed])
            return done

        return await self.engine.write(job)

    async def nack_messages(
        self, agent_id: str, ids: list[str], now: int, delay_us: int, reject: bool, reason: str
    ) -> MessageChanges:
        args = _pg_release_args(
            now,
            rules.nack_reason(reason, reject),
            reject=reject,
            deliver_after=rules.redeliver_after(now, delay_us, reject),
            agent=agent_id,
            ids=ids,
        )

        def job(conn: PgConnection) -> MessageChanges:
            out = _changed(conn.execute(_NACK, args).fetchall())
            if len(out.ids) < len(ids):
                changed = {mid for mid, _ in out.ids}
                _check_owner(conn, agent_id, [i for i in ids if i not in changed])
            return out

        return await self.engine.write(job)

    async def release_deliveries(
        self, held: list[tuple[str, int]], now: int, reason: str, refund: bool
    ) -> MessageChanges:
        args = _pg_release_args(
            now, reason, refund=refund, held_ids=[h[0] for h in held], held_attempts=[h[1] for h in held]
        )
        return await self.engine.write(lambda conn: _changed(conn.execute(_RELEASE_HELD, args).fetchall()))

    async def release_stale_deliveries(self, delivered_before: int, now: int, reason: str) -> MessageChanges:
        args = _pg_release_args(now, reason, before=delivered_before)
        return await self.engine.write(lambda conn: _changed(conn.execute(_RELEASE_STALE, args).fetchall()))

    def _release_messages_of(self, conn: PgConnection, agent_id: str, now: int, reason: str) -> int:
        """Put the agent's delivered-but-unacked messages back to pending (same transaction as the caller)."""
        return len(conn.execute(_RELEASE_AGENT, _pg_release_args(now, reason, agent=agent_id)).fetchall())

    async def requeue_messages(self, ids: list[str], now: int) -> MessageChanges:
        def job(conn: PgConnection) -> MessageChanges:
            rows = conn.execute(
                "SELECT message_id, status FROM a2a_messages WHERE message_id = ANY(?)", (ids,)
            )
            status = {r[0]: r[1] for r in rows.fetchall()}
            for mid in ids:
                err = rules.requeue_refusal(mid, status.get(mid))
                if err is not None:
                    raise err
            return _changed(conn.execute(_REQUEUE, (ids,)).fetchall())

        return await self.engine.write(job)

    def _sweep_messages_job(
        self, conn: PgConnection, now: int, purge_before: int, limit: int
    ) -> SweepOutcome:
        lapsed = _changed(
            conn.execute(
                _RELEASE_LAPSED, _pg_release_args(now, rules.ACK_DEADLINE_PASSED, lim=limit)
            ).fetchall()
        )
        expired = [(r[0], r[1]) for r in conn.execute(_EXPIRE, {"now": now, "lim": limit})]
        purge = {"before": purge_before, "lim": limit}
        seqs = [r[0] for r in conn.execute(_PURGEABLE, purge)]
        if not seqs:
            return SweepOutcome(lapsed, expired, 0)
        # An idempotency record goes with its message (see the SQLite version).
        conn.execute(
            "DELETE FROM message_sends WHERE (sender_id, idempotency_key) IN"
            " (SELECT sender_id, idempotency_key FROM a2a_messages WHERE seq = ANY(?)"
            " AND idempotency_key IS NOT NULL)",
            (seqs,),
        )
        purged = conn.execute("DELETE FROM a2a_messages WHERE seq = ANY(?)", (seqs,)).rowcount
        return SweepOutcome(lapsed, expired, purged)

    # -- reads ------------------------------------------------------------------------------

    async def get_message(self, message_id: str) -> Message:
        def job(conn: PgConnection) -> Message:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM a2a_messages WHERE message_id = ?", (message_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"message {message_id!r} not found")
            return mark_awaiting(conn, [row_to_message(row)])[0]

        return await self.engine.read(job)

    async def list_conversations(
        self, participant: str | None, after: str | None, limit: int
    ) -> tuple[list[Conversation], str | None]:
        return await self.engine.read(lambda conn: conversations_job(conn, participant, after, limit))

    async def list_messages(self, flt: MessageFilter) -> tuple[list[Message], int | None]:
        sql, args = list_messages_sql(flt)

        def job(conn: PgConnection) -> tuple[list[Message], int | None]:
            rows = conn.execute(sql, args).fetchall()
            msgs = mark_awaiting(conn, [row_to_message(r) for r in rows[: flt.page_size]])
            more = len(rows) > flt.page_size
            return msgs, (msgs[-1].seq if more else None)

        return await self.engine.read(job)

    async def purge_messages(self, status: MessageStatus, created_before: int, limit: int) -> int:
        return await self.engine.write(lambda conn: purge_job(conn, status.value, created_before, limit))

    async def due_scheduled(self, after: int, upto: int) -> set[Audience]:
        def job(conn: PgConnection) -> set[Audience]:
            rows = conn.execute(DUE_SCHEDULED, {"before": after, "now": upto}).fetchall()
            return {audience(r[0], r[1]) for r in rows}

        return await self.engine.read(job)
