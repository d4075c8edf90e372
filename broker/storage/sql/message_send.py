"""Sending messages: the send job and what is prepared for it.

A send job checks that the senders exist (one SELECT for all; recipients only for a send that
requires them: otherwise a message waits for a recipient that has not registered yet), then
inserts the rows as the dialect does it best (``RowInserter``: multi-row VALUES on SQLite, one
array per column on PostgreSQL); a broadcast makes its copies with one INSERT ... SELECT over the
agents. Everything that needs no database (ids, rows, parameters, results, wake-up keys) is done
on the event loop's thread, before or after the job: the single writer thread is the serial stage.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Protocol

from ...domain.messages import Audience, audience, subscribers
from ...errors import BrokerError, FailedPrecondition, NotFound
from ...models.messages import NewMessage, SendResult, TargetKind
from ..message_store import SendOutcome
from .connection import Connection
from .deliveries import store_subject
from .queries import Queries
from .subject_index import Matcher

MessageRow = tuple[Any, ...]  # the values of ``queries.MESSAGE_INSERT_COLUMNS``, in order


class RowInserter(Protocol):
    """How a dialect inserts many message rows: ``prepare`` (on the event loop's thread, before
    the job) makes the parameters, ``insert`` (in the job) runs the statements."""

    def prepare(self, rows: list[MessageRow]) -> Any: ...

    def insert(self, conn: Connection, prepared: Any) -> None: ...


_last_stamp = 0
_PROCESS = os.urandom(8).hex()  # ids of two processes (brokers sharing a database) never meet


def new_id() -> str:
    """32 hex digits: a strictly increasing microsecond stamp, then this process's random tag.

    Increasing ids append at the right edge of the unique index, as seq does: random ids
    (uuid4) scatter a batch of 100 inserts over ~100 index pages, every one of them written to
    the WAL at the commit and again at the checkpoint. Called on the event loop's thread only.
    """
    global _last_stamp
    stamp = max(time.time_ns() // 1000, _last_stamp + 1)
    _last_stamp = stamp
    return f"{stamp:016x}{_PROCESS}"


def _field(i: int, name: str, batch: bool) -> str:
    return f"messages[{i}].{name}" if batch else name


def _check(conn: Connection, q: Queries, msgs: list[NewMessage], batch: bool) -> list[BrokerError | None]:
    """Why each message cannot be sent, or None: an unknown sender; and, only for a send that sets
    ``require_recipient``, a direct recipient not registered or an anycast nobody can take (without
    it such a message is stored and waits for its recipient). A broadcast's recipients are checked
    when its copies are made (``store_sends``)."""
    ids = {m.sender_id for m in msgs}
    ids.update(
        m.target.agent_id  # type: ignore[misc]
        for m in msgs
        if m.require_recipient and m.target.kind is TargetKind.DIRECT
    )
    live = {r[0] for r in conn.execute(q.messages.registered, (q.messages.pack(list(ids)),))}
    capable: dict[str, bool] = {}
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
        elif t.kind is TargetKind.ANYCAST:
            cap = t.capability or ""
            if cap not in capable:
                capable[cap] = conn.execute(q.messages.capable, (cap,)).fetchone() is not None
            if not capable[cap]:
                err = FailedPrecondition(
                    f"{_field(i, 'target.anycast.capability', batch)}: no registered agent has capability"
                    f" {cap!r} (require_recipient is set)"
                )
        if err is not None and batch:
            raise err  # all or nothing
        errors.append(err)
    return errors


class PreparedSends:
    """The part of a send that needs no database, done on the event loop's thread before the job:
    ids, rows, and (when every message is a plain insert) the insert statements' parameters."""

    __slots__ = ("send_ids", "headers", "rows", "prepared")

    def __init__(self, msgs: list[NewMessage], now: int, inserter: RowInserter) -> None:
        self.send_ids = [new_id() for _ in msgs]
        self.headers = [json.dumps(m.headers) if m.headers else "{}" for m in msgs]
        self.rows: list[MessageRow | None] = []
        plain = True
        for m, send_id, headers in zip(msgs, self.send_ids, self.headers, strict=True):
            t = m.target
            if t.kind is TargetKind.BROADCAST or t.kind is TargetKind.SUBJECT:
                self.rows.append(None)
                plain = False
                continue
            plain = plain and m.idempotency_key is None
            self.rows.append(
                (
                    send_id,
                    send_id,
                    m.sender_id,
                    t.agent_id if t.kind is TargetKind.DIRECT else None,
                    t.kind.value,
                    t.capability,
                    m.message_type,
                    m.payload,
                    m.content_type,
                    m.priority,
                    m.correlation_id,
                    m.conversation_id,
                    headers,
                    m.idempotency_key,
                    m.max_attempts,
                    now,
                    m.deliver_after,
                    m.expires_at,
                )
            )
        plain_rows = [r for r in self.rows if r is not None]
        self.prepared = inserter.prepare(plain_rows) if plain else None


def store_sends(
    conn: Connection,
    q: Queries,
    inserter: RowInserter,
    msgs: list[NewMessage],
    prep: PreparedSends,
    now: int,
    batch: bool,
    matcher: Matcher,
) -> list[SendResult | BrokerError] | None:
    """Store sends. ``batch``: all or nothing, fields named messages[i].x; otherwise each message
    stands alone (coalesced Send calls) and its result may be the error that refused it. A
    message to a subject goes to the subscriptions ``matcher`` finds.
    Returns None when every message was inserted as prepared (the common case: the results are
    then built on the loop thread), else the result of each message."""
    errors = _check(conn, q, msgs, batch)
    if prep.prepared is not None and not any(errors):
        inserter.insert(conn, prep.prepared)
        return None
    results: list[SendResult | BrokerError] = []
    rows: list[MessageRow] = []  # direct and anycast rows, inserted together (in order)
    for i, (m, err, send_id, row, headers) in enumerate(
        zip(msgs, errors, prep.send_ids, prep.rows, prep.headers, strict=True)
    ):
        if err is not None:
            results.append(err)
            continue
        if m.idempotency_key is not None:
            prior = conn.execute(q.messages.prior_send, (m.sender_id, m.idempotency_key)).fetchone()
            if prior is not None:
                results.append(SendResult(json.loads(prior[0]), duplicate=True))
                continue
        t = m.target
        if t.kind is TargetKind.SUBJECT:  # stored once, a delivery per matching subscription
            subs = store_subject(conn, q, matcher, m, send_id, headers, now)
            if subs is None:
                err = FailedPrecondition(
                    f"{_field(i, 'target.subject', batch)}: no subscription matches {t.subject!r}"
                    " (require_recipient is set)"
                )
                if batch:
                    raise err
                results.append(err)
                continue
            result = SendResult([send_id])
            result.subscriptions = subs
        elif row is None:  # broadcast: a copy per recipient, made by SQL
            if rows:  # keep enqueue order within the request
                inserter.insert(conn, inserter.prepare(rows))
                rows = []
            copies = conn.execute(
                q.messages.broadcast,
                {
                    "send_id": send_id,
                    "sender": m.sender_id,
                    "cap": t.capability,
                    "type": m.message_type,
                    "payload": m.payload,
                    "ctype": m.content_type,
                    "prio": m.priority,
                    "corr": m.correlation_id,
                    "conv": m.conversation_id,
                    "headers": headers,
                    "key": m.idempotency_key,
                    "max": m.max_attempts,
                    "now": now,
                    "after": m.deliver_after,
                    "expires": m.expires_at,
                    "incl": bool(t.include_sender),
                },
            ).fetchall()
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
                q.messages.record_send,
                (m.sender_id, m.idempotency_key, send_id, json.dumps(result.message_ids), now),
            )
        results.append(result)
    if rows:
        inserter.insert(conn, inserter.prepare(rows))
    return results


def send_outcome(
    msgs: list[NewMessage], prep: PreparedSends, stored: list[SendResult | BrokerError] | None
) -> SendOutcome:
    """Results and audiences of a send job, put together on the loop thread."""
    if stored is None:
        stored = [SendResult([send_id]) for send_id in prep.send_ids]
    wake: set[Audience] = set()
    scheduled: list[tuple[int, Audience]] = []
    for m, res in zip(msgs, stored, strict=True):
        if not isinstance(res, SendResult) or res.duplicate:
            continue
        t = m.target
        if t.kind is TargetKind.BROADCAST:
            whom = [Audience(r, None) for r in res.recipients or ()]
        elif t.kind is TargetKind.SUBJECT:
            whom = [subscribers(s) for s in res.subscriptions or ()]
        else:
            whom = [audience(t.agent_id if t.kind is TargetKind.DIRECT else None, t.capability)]
        if m.deliver_after is None:
            wake.update(whom)
        else:
            scheduled.extend((m.deliver_after, w) for w in whom)
    return SendOutcome(stored, wake, scheduled, {})
