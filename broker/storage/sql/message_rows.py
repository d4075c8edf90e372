"""Rows of ``a2a_messages`` <-> domain values, and the reads (get, list, due scan)."""

from __future__ import annotations

import json
from typing import Any

from ...domain import marks
from ...domain.messages import Audience, audience
from ...errors import NotFound
from ...models.messages import Conversation, Message, MessageFilter, MessageStatus, TargetKind
from .connection import Connection, Engine, Row
from .queries import MESSAGE_COLUMNS, Queries

_KIND = {k.value: k for k in TargetKind}
_STATUS = {s.value: s for s in MessageStatus}


def row_to_message(r: Row | list[Any]) -> Message:
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


def mark_awaiting(conn: Connection, q: Queries, msgs: list[Message]) -> list[Message]:
    """Set ``awaiting_recipient`` on the pending copies that nobody registered could take: their
    direct recipient is not a registered agent, or no registered agent has their capability."""
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
    m_q = q.messages
    live = {r[0] for r in conn.execute(m_q.registered, (m_q.pack(agents),))} if agents else set()
    capable = {r[0] for r in conn.execute(m_q.capabilities, (m_q.pack(caps),))} if caps else set()
    for m in waiting:
        if m.recipient_id is not None:
            m.awaiting_recipient = m.recipient_id not in live
        else:
            m.awaiting_recipient = marks.unpooled(m.target_capability or "") not in capable
    return msgs


def purge_job(conn: Connection, q: Queries, status: str, created_before: int, limit: int) -> int:
    """Delete up to ``limit`` copies in ``status`` created before the time, oldest first, with the
    idempotency records of their sends."""
    args = (status, created_before, limit)
    conn.execute(q.messages.purge_sends_of, args)
    n: int = conn.execute(q.messages.purge, args).rowcount
    return n


def list_messages_sql(p: str, flt: MessageFilter) -> tuple[str, list[object]]:
    """The ListMessages query for a filter (``p``: the dialect's parameter marker), and its
    arguments (one row more than a page), in seq order (newest first: the same index read
    backwards)."""
    where: list[str] = []
    args: list[object] = []
    for column in ("conversation_id", "correlation_id", "sender_id", "recipient_id", "message_type"):
        value = getattr(flt, column)
        if value:
            where.append(f"{column} = {p}")
            args.append(value)
    if flt.party:
        if flt.party.endswith("*"):  # a fleet: its id prefix (substr: no LIKE wildcards to escape)
            prefix = flt.party[:-1]
            where.append(f"(substr(sender_id, 1, {p}) = {p} OR substr(recipient_id, 1, {p}) = {p})")
            args += [len(prefix), prefix, len(prefix), prefix]
        else:
            where.append(f"(sender_id = {p} OR recipient_id = {p})")
            args += [flt.party, flt.party]
    if flt.status is not None:
        where.append(f"status = {p}")
        args.append(flt.status.value)
    if flt.created_after is not None:
        where.append(f"created_at >= {p}")
        args.append(flt.created_after)
    if flt.created_before is not None:
        where.append(f"created_at < {p}")
        args.append(flt.created_before)
    if flt.after_seq is not None:
        where.append(f"seq < {p}" if flt.newest_first else f"seq > {p}")
        args.append(flt.after_seq)
    sql = f"SELECT {MESSAGE_COLUMNS} FROM a2a_messages"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY seq DESC LIMIT {p}" if flt.newest_first else f" ORDER BY seq LIMIT {p}"
    args.append(flt.page_size + 1)
    return sql, args


def conversations_job(
    conn: Connection, q: Queries, participant: str | None, after: str | None, limit: int
) -> tuple[list[Conversation], str | None]:
    """A page of ListConversations."""
    start = after or ""
    if participant:
        rows = conn.execute(
            q.messages.conversations_of, (start, participant, participant, limit + 1)
        ).fetchall()
    else:
        rows = conn.execute(q.messages.conversations, (start, limit + 1)).fetchall()
    ids = [r[0] for r in rows[:limit]]
    out = []
    for cid in ids:
        count, last = conn.execute(q.messages.conversation_stats, (cid,)).fetchone()
        people: set[str] = set()
        for sender, recipient in conn.execute(q.messages.conversation_people, (cid,)).fetchall():
            people.add(sender)
            if recipient:
                people.add(recipient)
        out.append(Conversation(cid, sorted(people), count, last))
    return out, (ids[-1] if len(rows) > limit and ids else None)


class MessageReads:
    engine: Engine
    q: Queries

    async def get_message(self, message_id: str) -> Message:
        q = self.q

        def job(conn: Connection) -> Message:
            row = conn.execute(q.messages.get, (message_id,)).fetchone()
            if row is None:
                raise NotFound(f"message {message_id!r} not found")
            return mark_awaiting(conn, q, [row_to_message(row)])[0]

        return await self.engine.read(job)

    async def list_conversations(
        self, participant: str | None, after: str | None, limit: int
    ) -> tuple[list[Conversation], str | None]:
        return await self.engine.read(lambda conn: conversations_job(conn, self.q, participant, after, limit))

    async def list_messages(self, flt: MessageFilter) -> tuple[list[Message], int | None]:
        q = self.q
        sql, args = list_messages_sql(q.param, flt)

        def job(conn: Connection) -> tuple[list[Message], int | None]:
            rows = conn.execute(sql, args).fetchall()
            msgs = mark_awaiting(conn, q, [row_to_message(r) for r in rows[: flt.page_size]])
            more = len(rows) > flt.page_size
            return msgs, (msgs[-1].seq if more else None)

        return await self.engine.read(job)

    async def purge_messages(self, status: MessageStatus, created_before: int, limit: int) -> int:
        return await self.engine.write(
            lambda conn: purge_job(conn, self.q, status.value, created_before, limit)
        )

    async def due_scheduled(self, after: int, upto: int) -> set[Audience]:
        """Audiences of pending copies whose deliver-after time fell in (after, upto]."""
        sql = self.q.messages.due_scheduled

        def job(conn: Connection) -> set[Audience]:
            rows = conn.execute(sql, {"before": after, "now": upto}).fetchall()
            return {audience(r[0], r[1]) for r in rows}

        return await self.engine.read(job)
