"""Rows of ``a2a_messages`` <-> domain values, and the reads (get, list, due scan)."""

from __future__ import annotations

import json
from typing import Any

from ...domain import marks
from ...domain.messages import Audience, audience, subscribers
from ...domain.subjects import parse_delivery_id
from ...errors import NotFound
from ...models.messages import Conversation, Message, MessageFilter, MessageStatus, TargetKind
from .connection import Connection, Engine, Row
from .queries import (
    DELIVERY_COLUMNS,
    DELIVERY_FROM,
    MESSAGE_COLUMNS,
    SUBJECT_MESSAGE_COLUMNS,
    Queries,
)

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
        _STATUS.get(r[15]),  # None only for a subject message as sent
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


def row_to_delivery(r: Row | list[Any]) -> Message:
    """A row of ``DELIVERY_COLUMNS`` (or ``SUBJECT_MESSAGE_COLUMNS``): a message, then its subject,
    subscription and ordering key."""
    m = row_to_message(r)
    m.subject, m.subscription, m.ordering_key = r[25], r[26], r[27]
    return m


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
    backwards): copies of ``a2a_messages``, or with ``subscription`` its deliveries, or with
    ``subject`` the messages sent to it."""
    where: list[str] = []
    args: list[object] = []
    # Each filter's column in the table (or join) listed: a subscription's deliveries name the
    # message's columns through ``m`` and the delivery's through ``d``.
    if flt.subscription is not None:
        table, columns, cols = DELIVERY_FROM, DELIVERY_COLUMNS, _DELIVERY_FILTERS
        where.append(f"s.name = {p}")
        args.append(flt.subscription)
    elif flt.subject is not None:
        table, columns, cols = "subject_messages m", SUBJECT_MESSAGE_COLUMNS, _SUBJECT_FILTERS
        where.append(f"m.subject = {p}")
        args.append(flt.subject)
    else:
        table, columns, cols = "a2a_messages", MESSAGE_COLUMNS, {}
    for column in ("conversation_id", "correlation_id", "sender_id", "recipient_id", "message_type"):
        value = getattr(flt, column)
        if value:
            where.append(f"{cols.get(column, column)} = {p}")
            args.append(value)
    sender, recipient = cols.get("sender_id", "sender_id"), cols.get("recipient_id", "recipient_id")
    if flt.party:
        if flt.party.endswith("*"):  # a fleet: its id prefix (substr: no LIKE wildcards to escape)
            prefix = flt.party[:-1]
            where.append(f"(substr({sender}, 1, {p}) = {p} OR substr({recipient}, 1, {p}) = {p})")
            args += [len(prefix), prefix, len(prefix), prefix]
        else:
            where.append(f"({sender} = {p} OR {recipient} = {p})")
            args += [flt.party, flt.party]
    if flt.status is not None:
        where.append(f"{cols.get('status', 'status')} = {p}")
        args.append(flt.status.value)
    created, seq = cols.get("created_at", "created_at"), cols.get("seq", "seq")
    if flt.created_after is not None:
        where.append(f"{created} >= {p}")
        args.append(flt.created_after)
    if flt.created_before is not None:
        where.append(f"{created} < {p}")
        args.append(flt.created_before)
    if flt.after_seq is not None:
        where.append(f"{seq} < {p}" if flt.newest_first else f"{seq} > {p}")
        args.append(flt.after_seq)
    sql = f"SELECT {columns} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {seq} DESC LIMIT {p}" if flt.newest_first else f" ORDER BY {seq} LIMIT {p}"
    args.append(flt.page_size + 1)
    return sql, args


# The columns ListMessages filters on, for a subscription's deliveries and for a subject's messages.
_DELIVERY_FILTERS = {
    **{c: f"m.{c}" for c in ("conversation_id", "correlation_id", "sender_id", "message_type", "created_at")},
    "recipient_id": "d.recipient_id",
    "status": "d.status",
    "seq": "d.message_seq",
}
_SUBJECT_FILTERS = {
    **{c: f"m.{c}" for c in ("conversation_id", "correlation_id", "sender_id", "message_type", "created_at")},
    "recipient_id": "NULL",
    "status": "NULL",
    "seq": "m.seq",
}


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
            delivery = parse_delivery_id(message_id)
            if delivery is not None:  # a subscription's delivery of a subject message
                row = conn.execute(q.subjects.delivery, delivery).fetchone()
                if row is None:
                    raise NotFound(f"message {message_id!r} not found")
                return row_to_delivery(row)
            row = conn.execute(q.messages.get, (message_id,)).fetchone()
            if row is None:  # a subject message as sent?
                sent = conn.execute(q.subjects.subject_message, (message_id,)).fetchone()
                if sent is None:
                    raise NotFound(f"message {message_id!r} not found")
                return row_to_delivery(sent)
            return mark_awaiting(conn, q, [row_to_message(row)])[0]

        return await self.engine.read(job)

    async def list_conversations(
        self, participant: str | None, after: str | None, limit: int
    ) -> tuple[list[Conversation], str | None]:
        return await self.engine.read(lambda conn: conversations_job(conn, self.q, participant, after, limit))

    async def list_messages(self, flt: MessageFilter) -> tuple[list[Message], int | None]:
        q = self.q
        sql, args = list_messages_sql(q.param, flt)

        convert = row_to_message if flt.subscription is None and flt.subject is None else row_to_delivery

        def job(conn: Connection) -> tuple[list[Message], int | None]:
            rows = conn.execute(sql, args).fetchall()
            msgs = mark_awaiting(conn, q, [convert(r) for r in rows[: flt.page_size]])
            more = len(rows) > flt.page_size
            return msgs, (msgs[-1].seq if more else None)

        return await self.engine.read(job)

    async def purge_messages(self, status: MessageStatus, created_before: int, limit: int) -> int:
        return await self.engine.write(
            lambda conn: purge_job(conn, self.q, status.value, created_before, limit)
        )

    async def due_scheduled(self, after: int, upto: int) -> set[Audience]:
        """Audiences of pending copies whose deliver-after time fell in (after, upto]."""
        q = self.q

        def job(conn: Connection) -> set[Audience]:
            window = {"before": after, "now": upto}
            rows = conn.execute(q.messages.due_scheduled, window).fetchall()
            subs = conn.execute(q.subjects.due_scheduled, window).fetchall()
            return {audience(r[0], r[1]) for r in rows} | {subscribers(int(r[0])) for r in subs}

        return await self.engine.read(job)
