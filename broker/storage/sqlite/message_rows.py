"""Rows of ``a2a_messages`` <-> domain values, and the reads (get, list, due scan)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...domain import marks
from ...domain.messages import Audience, audience
from ...errors import NotFound
from ...models.messages import Conversation, Message, MessageFilter, MessageStatus, TargetKind

if TYPE_CHECKING:
    from .engine import SqliteEngine

COLUMNS = (
    "seq, message_id, send_id, sender_id, recipient_id, target_kind, target_capability, message_type,"
    " payload, content_type, priority, correlation_id, conversation_id, headers, idempotency_key, status,"
    " attempt, max_attempts, created_at, deliver_after, expires_at, delivered_at, ack_deadline,"
    " processed_at, last_error"
)
DUE_SCHEDULED = (
    "SELECT DISTINCT recipient_id, target_capability FROM a2a_messages"
    " WHERE deliver_after IS NOT NULL AND status = 'pending'"
    " AND deliver_after > :before AND deliver_after <= :now"
)
_KIND = {k.value: k for k in TargetKind}
_STATUS = {s.value: s for s in MessageStatus}


def row_to_message(r: sqlite3.Row | tuple) -> Message:
    headers = r[13]
    return Message(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        _KIND[r[5]],
        r[6],
        r[7],
        r[8],
        r[9],
        r[10],
        r[11],
        r[12],
        {} if headers == "{}" else json.loads(headers),
        r[14],
        _STATUS[r[15]],
        r[16],
        r[17],
        r[18],
        r[19],
        r[20],
        r[21],
        r[22],
        r[23],
        r[24],
    )


_REGISTERED = (
    "SELECT agent_id FROM agents WHERE agent_id IN (SELECT value FROM json_each(?))"
    " AND status != 'deregistered'"
)
_CAPABILITIES = (
    "SELECT DISTINCT c.capability FROM agent_capabilities c JOIN agents a ON a.agent_id = c.agent_id"
    " WHERE c.capability IN (SELECT value FROM json_each(?)) AND a.status != 'deregistered'"
)


def mark_awaiting(
    conn: sqlite3.Connection,
    msgs: list[Message],
    registered_sql: str = _REGISTERED,
    capabilities_sql: str = _CAPABILITIES,
    pack: Callable[[list[str]], Any] = json.dumps,
) -> list[Message]:
    """Set ``awaiting_recipient`` on the pending copies that nobody registered could take: their
    direct recipient is not a registered agent, or no registered agent has their capability.
    (PostgreSQL passes its own statements, which take the id lists as arrays: ``pack=list``.)"""
    waiting = [m for m in msgs if m.status is MessageStatus.PENDING]
    if not waiting:
        return msgs
    agents = sorted({m.recipient_id for m in waiting if m.recipient_id is not None})
    caps = sorted(
        {
            marks.unpooled(m.target_capability)
            for m in waiting
            if m.recipient_id is None and m.target_capability
        }
    )
    live = {r[0] for r in conn.execute(registered_sql, (pack(agents),))} if agents else set()
    capable = {r[0] for r in conn.execute(capabilities_sql, (pack(caps),))} if caps else set()
    for m in waiting:
        if m.recipient_id is not None:
            m.awaiting_recipient = m.recipient_id not in live
        else:
            m.awaiting_recipient = marks.unpooled(m.target_capability or "") not in capable
    return msgs


_PURGE_PICK = "SELECT seq FROM a2a_messages WHERE status = ? AND created_at < ? ORDER BY seq LIMIT ?"


def purge_job(conn: sqlite3.Connection, status: str, created_before: int, limit: int) -> int:
    """Delete up to ``limit`` copies in ``status`` created before the time, oldest first, with the
    idempotency records of their sends (portable SQL: PostgreSQL runs it too)."""
    args = (status, created_before, limit)
    conn.execute(
        "DELETE FROM message_sends WHERE (sender_id, idempotency_key) IN"
        f" (SELECT sender_id, idempotency_key FROM a2a_messages WHERE seq IN ({_PURGE_PICK})"
        " AND idempotency_key IS NOT NULL)",
        args,
    )
    n: int = conn.execute(f"DELETE FROM a2a_messages WHERE seq IN ({_PURGE_PICK})", args).rowcount
    return n


def list_messages_sql(flt: MessageFilter) -> tuple[str, list[object]]:
    """The ListMessages query for a filter, and its arguments (one row more than a page), in seq
    order (newest first: the same index read backwards)."""
    where: list[str] = []
    args: list[object] = []
    for column in ("conversation_id", "correlation_id", "sender_id", "recipient_id", "message_type"):
        value = getattr(flt, column)
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if flt.party:
        if flt.party.endswith("*"):  # a fleet: its id prefix (substr: no LIKE wildcards to escape)
            prefix = flt.party[:-1]
            where.append("(substr(sender_id, 1, ?) = ? OR substr(recipient_id, 1, ?) = ?)")
            args += [len(prefix), prefix, len(prefix), prefix]
        else:
            where.append("(sender_id = ? OR recipient_id = ?)")
            args += [flt.party, flt.party]
    if flt.status is not None:
        where.append("status = ?")
        args.append(flt.status.value)
    if flt.created_after is not None:
        where.append("created_at >= ?")
        args.append(flt.created_after)
    if flt.created_before is not None:
        where.append("created_at < ?")
        args.append(flt.created_before)
    if flt.after_seq is not None:
        where.append("seq < ?" if flt.newest_first else "seq > ?")
        args.append(flt.after_seq)
    sql = f"SELECT {COLUMNS} FROM a2a_messages"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC LIMIT ?" if flt.newest_first else " ORDER BY seq LIMIT ?"
    args.append(flt.page_size + 1)
    return sql, args


_CONVERSATIONS = (
    "SELECT conversation_id FROM a2a_messages WHERE conversation_id IS NOT NULL AND conversation_id > ?"
    " GROUP BY conversation_id ORDER BY conversation_id LIMIT ?"
)
# A participant's conversations: its sends (idx_messages_sender) and its copies (idx_messages_recipient).
_CONVERSATIONS_OF = (
    "SELECT conversation_id FROM a2a_messages WHERE conversation_id IS NOT NULL AND conversation_id > ?"
    " AND (sender_id = ? OR recipient_id = ?) GROUP BY conversation_id ORDER BY conversation_id LIMIT ?"
)
_CONVERSATION_STATS = (
    "SELECT count(DISTINCT send_id), max(created_at) FROM a2a_messages WHERE conversation_id = ?"
)
_CONVERSATION_PEOPLE = (
    "SELECT sender_id, recipient_id FROM a2a_messages WHERE conversation_id = ?"
    " GROUP BY sender_id, recipient_id"
)


def conversations_job(
    conn: Any, participant: str | None, after: str | None, limit: int
) -> tuple[list[Conversation], str | None]:
    """ListConversations on either backend (plain SQL: PostgreSQL runs it through sql.py)."""
    start = after or ""
    if participant:
        rows = conn.execute(_CONVERSATIONS_OF, (start, participant, participant, limit + 1)).fetchall()
    else:
        rows = conn.execute(_CONVERSATIONS, (start, limit + 1)).fetchall()
    ids = [r[0] for r in rows[:limit]]
    out = []
    for cid in ids:
        count, last = conn.execute(_CONVERSATION_STATS, (cid,)).fetchone()
        people: set[str] = set()
        for sender, recipient in conn.execute(_CONVERSATION_PEOPLE, (cid,)).fetchall():
            people.add(sender)
            if recipient:
                people.add(recipient)
        out.append(Conversation(cid, sorted(people), count, last))
    return out, (ids[-1] if len(rows) > limit and ids else None)


class MessageReads:
    engine: SqliteEngine

    async def get_message(self, message_id: str) -> Message:
        def job(conn: sqlite3.Connection) -> Message:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM a2a_messages WHERE message_id = ?",
                (message_id,),
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

        def job(conn: sqlite3.Connection) -> tuple[list[Message], int | None]:
            rows = conn.execute(sql, args).fetchall()
            msgs = mark_awaiting(conn, [row_to_message(r) for r in rows[: flt.page_size]])
            more = len(rows) > flt.page_size
            return msgs, (msgs[-1].seq if more else None)

        return await self.engine.read(job)

    async def purge_messages(self, status: MessageStatus, created_before: int, limit: int) -> int:
        return await self.engine.write(lambda conn: purge_job(conn, status.value, created_before, limit))

    async def due_scheduled(self, after: int, upto: int) -> set[Audience]:
        """Audiences of pending copies whose deliver-after time fell in (after, upto]."""

        def job(conn: sqlite3.Connection) -> set[Audience]:
            rows = conn.execute(DUE_SCHEDULED, {"before": after, "now": upto}).fetchall()
            return {audience(r[0], r[1]) for r in rows}

        return await self.engine.read(job)
