"""Messaging operations, both dialects: sends, claims, acks, nacks, releases, requeues.

Every operation is one write job (see the engines): a few statements run on the writer thread
inside the group-committed transaction. What happens to a row (due, claim order, delivery,
release, expiry, retention, acks) is ``broker.domain.messages``' rule, its SQL fragments composed
into each dialect's statements (``Queries.messages``). Where the dialects part ways, a backend's
``MessageOps`` says how (``sqlite/messages.py``: rows packed in JSON, one statement where SQLite
would step row by row; ``postgres/messages.py``: arrays, and ``FOR UPDATE SKIP LOCKED`` so that
brokers claiming one queue take different rows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ...domain import messages as rules
from ...domain.subjects import split_ids
from ...errors import BrokerError
from ...models.messages import Message, NewMessage, SendResult
from ..group_commit import row_locking
from ..message_store import Handoff, MessageChanges, SendOutcome, SweepOutcome
from . import deliveries
from .connection import Connection, Row
from .departures import Departures
from .message_rows import MessageReads, row_to_message
from .message_send import PreparedSends, RowInserter, send_outcome, store_sends
from .queries import Queries
from .subject_index import Matcher
from .subscriptions import SubscriptionOps


class Claimed:
    """What a claim job hands back: raw rows, turned into Messages on the event loop's thread
    (``messages()``) so that the single writer thread spends its time on SQL only."""

    __slots__ = ("packed", "rows", "now", "ack_deadline")

    def __init__(self, packed: str | None, rows: list[Any], now: int, ack_deadline: int) -> None:
        self.packed = packed  # one JSON array of rows as they were before the claim (SQLite)
        self.rows = rows  # or rows as the claim left them
        self.now = now
        self.ack_deadline = ack_deadline

    def messages(self) -> list[Message]:
        rows = self.rows
        if self.packed is not None:
            rows = json.loads(self.packed)
            for r in rows:  # as the UPDATE left them (rules.deliver_sql)
                r[8] = bytes.fromhex(r[8])
                r[15] = "delivered"
                r[16] = rules.delivered_attempt(r[16])
                r[21] = self.now
                r[22] = self.ack_deadline
        msgs = [row_to_message(r) for r in rows]
        msgs.sort(key=rules.claim_key)
        return msgs


def claim_across(
    conn: Connection,
    q: Queries,
    agent_id: str,
    capabilities: tuple[str, ...],
    limit: int,
    now: int,
    ack_deadline: int,
) -> Claimed:
    """Mark up to ``limit`` due copies for the agent delivered, its own and anycast copies for its
    capabilities competing in one claim order (``rules.pick_claims``)."""
    m = q.messages
    args = {"agent": agent_id, "now": now, "n": limit, "deadline": ack_deadline}
    direct, anycast = rules.pick_claims(
        conn.execute(m.next_direct, args).fetchall(),
        [conn.execute(m.next_anycast, {**args, "cap": cap}).fetchall() for cap in capabilities],
        limit,
    )
    rows = []
    for picked, sql in ((direct, m.claim_seqs), (anycast, m.claim_anycast_seqs)):
        if picked:
            rows += conn.execute(sql, {**args, "seqs": m.pack(picked)}).fetchall()
    return Claimed(None, rows, now, ack_deadline)


def changed(rows: Iterable[Row]) -> MessageChanges:
    """What released or requeued rows (message_id, attempt, status, recipient, capability,
    deliver_after) changed, and whom to wake for them."""
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


def release_args(
    now: int,
    reason: str,
    refund: bool = False,
    reject: bool = False,
    deliver_after: int | None = None,
    **kw: Any,
) -> dict[str, Any]:
    return {"now": now, **rules.release_params(reason, refund, reject, deliver_after), **kw}


def check_owner(conn: Connection, q: Queries, agent_id: str, ids: list[str]) -> None:
    """NotFound / PermissionDenied for ids that are unknown or another agent's."""
    found = {r[0]: r for r in conn.execute(q.messages.owners, (q.messages.pack(ids),)).fetchall()}
    for mid in ids:
        r = found.get(mid)
        err = rules.ack_refusal(mid, r is not None, r[1] if r is not None else None, agent_id)
        if err is not None:
            raise err


class MessageOps(MessageReads, SubscriptionOps, Departures):
    """The ``MessageStore`` part of a storage class (and, through ``SubscriptionOps``, the
    ``SubscriptionStore``); a backend's subclass says how it claims, acks and sweeps, and how it
    inserts rows (``inserter``). An operation that names messages by id (ack, nack, release,
    requeue) takes copies and subscriptions' deliveries alike, in one job (``deliveries.py``)."""

    inserter: RowInserter

    # -- what each dialect does its own way ---------------------------------------------------

    def _claim(
        self,
        conn: Connection,
        agent_id: str,
        capabilities: tuple[str, ...],
        limit: int,
        now: int,
        ack_deadline: int,
    ) -> Claimed:
        """Mark up to ``limit`` due copies for the agent delivered: its own, and anycast copies
        for its capabilities, highest priority first, then enqueue order."""
        raise NotImplementedError

    def _ack(self, conn: Connection, agent_id: str, ids: list[str], now: int) -> list[tuple[str, int]]:
        """Mark the agent's ackable copies among ``ids`` processed; (id, attempt) of each."""
        raise NotImplementedError

    def _sweep_messages_job(self, conn: Connection, now: int, purge_before: int, limit: int) -> SweepOutcome:
        raise NotImplementedError

    # -- sending ------------------------------------------------------------------------------

    async def send_messages(
        self, msgs: list[NewMessage], now: int, batch: bool = False, handoff: dict[str, Handoff] | None = None
    ) -> SendOutcome:
        q, inserter, index = self.q, self.inserter, self.subject_index
        prep = PreparedSends(msgs, now, inserter)  # here, on the loop thread: the writer does SQL only

        def job(
            conn: Connection,
        ) -> tuple[list[SendResult | BrokerError] | None, dict[str, Claimed], Matcher]:
            matcher = index.matcher(conn, q)
            stored = store_sends(conn, q, inserter, msgs, prep, now, batch, matcher)
            claims = {
                agent_id: self._claim(conn, agent_id, c.capabilities, c.limit, now, now + c.ack_deadline_us)
                for agent_id, c in (handoff or {}).items()
            }
            return stored, claims, matcher

        stored, claims, matcher = await self.engine.write(job)
        index.install(matcher)
        out = send_outcome(msgs, prep, stored)
        out.claimed = {agent_id: c.messages() for agent_id, c in claims.items()}
        return out

    # -- delivering ---------------------------------------------------------------------------

    async def claim_messages(
        self, agent_id: str, capabilities: tuple[str, ...], limit: int, now: int, ack_deadline: int
    ) -> list[Message]:
        claimed = await self.engine.write(
            row_locking(lambda conn: self._claim(conn, agent_id, capabilities, limit, now, ack_deadline))
        )
        return claimed.messages()

    async def ack_messages(self, agent_id: str, ids: list[str], now: int) -> MessageChanges:
        q = self.q
        plain, items = split_ids(ids)

        def job(conn: Connection) -> MessageChanges:
            out = MessageChanges()
            if plain:
                out.ids = self._ack(conn, agent_id, plain, now)
                if len(out.ids) < len(plain):
                    # Acking twice is harmless; an unknown id or another agent's message is not
                    # (raising rolls this job back: a rejected Ack changes nothing).
                    acked = {mid for mid, _ in out.ids}
                    check_owner(conn, q, agent_id, [i for i in plain if i not in acked])
            return deliveries.merge(out, deliveries.ack(conn, q, agent_id, items, now))

        return await self.engine.write(row_locking(job))

    async def nack_messages(
        self, agent_id: str, ids: list[str], now: int, delay_us: int, reject: bool, reason: str
    ) -> MessageChanges:
        q = self.q
        plain, items = split_ids(ids)
        args = release_args(
            now,
            rules.nack_reason(reason, reject),
            reject=reject,
            deliver_after=rules.redeliver_after(now, delay_us, reject),
        )

        def job(conn: Connection) -> MessageChanges:
            out = MessageChanges()
            if plain:
                params = {**args, "agent": agent_id, "ids": q.messages.pack(plain)}
                out = changed(conn.execute(q.messages.nack, params).fetchall())
                if len(out.ids) < len(plain):
                    released = {mid for mid, _ in out.ids}
                    check_owner(conn, q, agent_id, [i for i in plain if i not in released])
            return deliveries.merge(out, deliveries.nack(conn, q, agent_id, items, args))

        return await self.engine.write(job)

    async def release_deliveries(
        self, held: list[tuple[str, int]], now: int, reason: str, refund: bool
    ) -> MessageChanges:
        q = self.q
        attempts = dict(held)
        plain, items = split_ids(attempts)
        args = release_args(now, reason, refund=refund)

        def job(conn: Connection) -> MessageChanges:
            out = MessageChanges()
            if plain:
                packed = q.messages.pack_held([(mid, attempts[mid]) for mid in plain])
                out = changed(conn.execute(q.messages.release_held, {**args, **packed}).fetchall())
            theirs = [(i, attempts[i[0]]) for i in items]
            return deliveries.merge(out, deliveries.release_held(conn, q, theirs, args))

        return await self.engine.write(job)

    async def release_stale_deliveries(self, delivered_before: int, now: int, reason: str) -> MessageChanges:
        q = self.q
        args = release_args(now, reason, before=delivered_before)

        def job(conn: Connection) -> MessageChanges:
            out = changed(conn.execute(q.messages.release_stale, args).fetchall())
            rows = conn.execute(q.subjects.release_stale, args).fetchall()
            return deliveries.merge(out, deliveries.delivery_changes(conn, q, rows))

        return await self.engine.write(job)

    def _release_messages_of(self, conn: Connection, agent_id: str, now: int, reason: str) -> int:
        """Put the agent's delivered-but-unacked messages back to pending (same transaction as the caller)."""
        args = release_args(now, reason, agent=agent_id)
        return len(conn.execute(self.q.messages.release_agent, args).fetchall())

    def _release_deliveries_of(self, conn: Connection, agent_id: str, now: int, reason: str) -> list[int]:
        """Hand the agent's subscription deliveries back to their subscriptions; which ones."""
        args = release_args(now, reason, agent=agent_id)
        out = deliveries.delivery_changes(conn, self.q, conn.execute(self.q.subjects.release_agent, args))
        return sorted({a.subscription for a in out.wake if a.subscription is not None})

    # -- repair and housekeeping --------------------------------------------------------------

    async def requeue_messages(self, ids: list[str], now: int) -> MessageChanges:
        q = self.q
        m = q.messages
        plain, items = split_ids(ids)

        def job(conn: Connection) -> MessageChanges:
            out = MessageChanges()
            if plain:
                status = {r[0]: r[1] for r in conn.execute(m.statuses, (m.pack(plain),)).fetchall()}
                for mid in plain:
                    err = rules.requeue_refusal(mid, status.get(mid))
                    if err is not None:
                        raise err
                out = changed(conn.execute(m.requeue, (m.pack(plain),)).fetchall())
            return deliveries.merge(out, deliveries.requeue(conn, q, items))

        return await self.engine.write(job)

    async def sweep_messages(self, now: int, purge_before: int, limit: int) -> SweepOutcome:
        return await self.engine.write(lambda conn: self._sweep_messages_job(conn, now, purge_before, limit))
