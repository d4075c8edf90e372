"""What a write job does to a subscription's deliveries, beside what it does to message copies:
a subject message stored and fanned out, acks, nacks, releases and requeues of deliveries (named
by their ids, ``domain.subjects.delivery_id``), per-key ordering kept, and what changed.

The message operations (``sql/messages.py``) call these in the same job as their work on
``a2a_messages``, so that one Ack, Nack or Requeue naming ids of both kinds is one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...domain import messages as rules
from ...domain.messages import subscribers
from ...errors import BrokerError
from ...models.messages import DEFAULT_MAX_ATTEMPTS, NewMessage, Target, TargetKind
from ..message_store import MessageChanges
from .connection import Connection, Row
from .queries import Queries
from .subject_index import Matcher

FINAL = ("processed", "failed", "expired")
Delivery = tuple[str, str, int]  # (its id, the subject message's id, the subscription)


def store_subject(
    conn: Connection, q: Queries, matcher: Matcher, m: NewMessage, send_id: str, headers: str, now: int
) -> list[int] | None:
    """Store a subject message once, and a delivery of it for each subscription whose filter
    matches its subject now; returns those subscriptions (None, storing nothing, for a message
    that requires a recipient and that no subscription matches)."""
    s = q.subjects
    subs = matcher.match(m.target.subject or "")
    if not subs and m.require_recipient:
        return None
    seq = conn.execute(
        s.insert_message,
        {
            "id": send_id,
            "subject": m.target.subject,
            "sender": m.sender_id,
            "type": m.message_type,
            "payload": m.payload,
            "ctype": m.content_type,
            "prio": m.priority,
            "corr": m.correlation_id,
            "conv": m.conversation_id,
            "headers": headers,
            "key": m.idempotency_key,
            "okey": m.ordering_key,
            "now": now,
            "after": m.deliver_after,
            "expires": m.expires_at,
        },
    ).fetchone()[0]
    if subs:
        conn.execute(
            s.fan_out,
            {
                "seq": seq,
                "prio": m.priority,
                "okey": m.ordering_key,
                "after": m.deliver_after,
                "expires": m.expires_at,
                "base": m.deliver_after if m.deliver_after is not None else now,
                **subs_param(q, subs),
            },
        )
    return subs


def subs_param(q: Queries, subs: list[int]) -> dict[str, Any]:
    """A list of subscriptions as ``fan_out`` takes it (one JSON value, or an array)."""
    return {"subs": q.messages.pack(subs)}


def delivery_changes(conn: Connection, q: Queries, rows: Iterable[Row]) -> MessageChanges:
    """What changed deliveries (rows of ``delivery_returning``) changed, whom to wake for them,
    and, when one of a key finished, the next of its key unblocked."""
    out = MessageChanges()
    finished: set[tuple[int, str]] = set()
    for message_id, attempt, status, sub, after, key in rows:
        out.ids.append((message_id, attempt))
        if status == "pending":
            out.requeued += 1
            if after is None:
                out.wake.add(subscribers(sub))
            else:
                out.scheduled.append((after, subscribers(sub)))
        elif status == "failed":
            out.dead += 1
        if status in FINAL and key is not None:
            finished.add((sub, key))
    out.wake.update(subscribers(sub) for sub in unblock(conn, q, finished))
    return out


def unblock(conn: Connection, q: Queries, keys: set[tuple[int, str]]) -> set[int]:
    """Per-key ordering: a delivery of each (subscription, key) finished; the earliest unfinished
    one of the key becomes claimable. Returns the subscriptions where one did."""
    if not keys:
        return set()
    rows = conn.execute(q.subjects.unblock, q.subjects.pack_keys(sorted(keys))).fetchall()
    return {int(r[0]) for r in rows}


def merge(into: MessageChanges, other: MessageChanges) -> MessageChanges:
    into.ids += other.ids
    into.wake |= other.wake
    into.scheduled += other.scheduled
    into.requeued += other.requeued
    into.dead += other.dead
    return into


def _named(items: list[Delivery]) -> list[tuple[str, int]]:
    return [(send_id, sub) for _, send_id, sub in items]


def refuse_others(conn: Connection, q: Queries, agent_id: str, items: list[Delivery]) -> None:
    """NotFound for deliveries that do not exist, PermissionDenied for those delivered to another
    agent (as ``rules.ack_refusal`` for message copies)."""
    if not items:
        return
    found = {
        (r[0], int(r[1])): r[2]
        for r in conn.execute(q.subjects.owners, q.subjects.pack_deliveries(_named(items))).fetchall()
    }
    for message_id, send_id, sub in items:
        key = (send_id, sub)
        err = rules.ack_refusal(message_id, key in found, found.get(key), agent_id)
        if err is not None:
            raise err


def ack(conn: Connection, q: Queries, agent_id: str, items: list[Delivery], now: int) -> MessageChanges:
    """Mark the agent's ackable deliveries among ``items`` processed (refusing unknown ids and
    other agents' deliveries: raising rolls the whole job back)."""
    if not items:
        return MessageChanges()
    rows = conn.execute(
        q.subjects.ack, {"agent": agent_id, "now": now, **q.subjects.pack_deliveries(_named(items))}
    ).fetchall()
    out = delivery_changes(conn, q, rows)
    if len(out.ids) < len(items):
        acked = {mid for mid, _ in out.ids}
        refuse_others(conn, q, agent_id, [i for i in items if i[0] not in acked])
    return out


def nack(
    conn: Connection, q: Queries, agent_id: str, items: list[Delivery], args: dict[str, Any]
) -> MessageChanges:
    """Hand the agent's deliveries back (``args``: the release's parameters)."""
    if not items:
        return MessageChanges()
    params = {**args, "agent": agent_id, **q.subjects.pack_deliveries(_named(items))}
    out = delivery_changes(conn, q, conn.execute(q.subjects.nack, params).fetchall())
    if len(out.ids) < len(items):
        released = {mid for mid, _ in out.ids}
        refuse_others(conn, q, agent_id, [i for i in items if i[0] not in released])
    return out


def release_held(
    conn: Connection, q: Queries, held: list[tuple[Delivery, int]], args: dict[str, Any]
) -> MessageChanges:
    """Release deliveries still outstanding at the attempt a stream held them at."""
    if not held:
        return MessageChanges()
    packed = q.subjects.pack_held([(send_id, sub, attempt) for (_, send_id, sub), attempt in held])
    return delivery_changes(conn, q, conn.execute(q.subjects.release_held, {**args, **packed}).fetchall())


def requeue_refusals(conn: Connection, q: Queries, items: list[Delivery]) -> None:
    """Only dead letters may be requeued (``rules.requeue_refusal``)."""
    if not items:
        return
    status = {
        (r[0], int(r[1])): r[3]
        for r in conn.execute(q.subjects.owners, q.subjects.pack_deliveries(_named(items))).fetchall()
    }
    for message_id, send_id, sub in items:
        err: BrokerError | None = rules.requeue_refusal(message_id, status.get((send_id, sub)))
        if err is not None:
            raise err


def requeue(conn: Connection, q: Queries, items: list[Delivery]) -> MessageChanges:
    if not items:
        return MessageChanges()
    requeue_refusals(conn, q, items)
    rows = conn.execute(q.subjects.requeue, q.subjects.pack_deliveries(_named(items))).fetchall()
    return delivery_changes(conn, q, rows)


def forwarded(
    subject: str,
    sender_id: str,
    message_type: str,
    payload: bytes,
    content_type: str,
    priority: int,
    correlation_id: str | None,
    conversation_id: str | None,
    headers: dict[str, str],
    ordering_key: str | None,
) -> NewMessage:
    """A dead letter as it is published to its subscription's dead-letter subject: the message as
    it was sent, from its sender (``headers`` say whence and why)."""
    return NewMessage(
        sender_id,
        Target(TargetKind.SUBJECT, subject=subject),
        message_type,
        payload,
        content_type,
        priority,
        correlation_id,
        conversation_id,
        None,
        None,
        DEFAULT_MAX_ATTEMPTS,
        None,
        headers,
        ordering_key=ordering_key,
    )
