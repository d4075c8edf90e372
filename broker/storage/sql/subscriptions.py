"""Subscriptions, both dialects: create, read, delete, seek (a replay), claim their deliveries,
sweep them, publish their dead letters to a subject (the ``SubscriptionStore`` part of a storage
class; what a message operation does to deliveries is ``deliveries.py``).

Every change of the subscriptions bumps the subject index's version in its transaction, and the
index (``subject_index.py``) is told after the commit.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from ...domain import messages as rules
from ...domain import subjects
from ...domain.messages import subscribers
from ...errors import AlreadyExists, InvalidArgument, NotFound
from ...models.messages import Message
from ...models.subscriptions import SeekPoint, SeekResult, SubscriptionInfo, SubscriptionSpec
from ..message_store import MessageChanges, SweepOutcome
from ..subscription_store import DeadLetters, SubscriptionFigures
from . import deliveries
from .connection import Connection, Engine, Row
from .message_rows import row_to_delivery
from .message_send import new_id
from .queries import Queries
from .subject_index import Matcher, SubjectIndexCache

T = TypeVar("T")
# Dead-letter headers: where a dead letter published to a subject came from, and why.
DEAD_LETTER_SUBSCRIPTION = "a2a.dead_letter.subscription"
DEAD_LETTER_MESSAGE = "a2a.dead_letter.message_id"
DEAD_LETTER_SUBJECT = "a2a.dead_letter.subject"
DEAD_LETTER_REASON = "a2a.dead_letter.reason"


def row_to_subscription(r: Row) -> SubscriptionInfo:
    return SubscriptionInfo(
        int(r[0]),
        SubscriptionSpec(r[1], r[2], int(r[3]), int(r[4]), r[5], bool(r[6]), r[7]),
        created_at=int(r[9]),
        created_by=r[8],
    )


def fetch(conn: Connection, q: Queries, name: str) -> SubscriptionInfo:
    row = conn.execute(q.subjects.subscription, (name,)).fetchone()
    if row is None:
        raise NotFound(f"subscription {name!r} not found")
    return row_to_subscription(row)


def with_figures(conn: Connection, q: Queries, info: SubscriptionInfo) -> SubscriptionInfo:
    """Its backlog, what is out on streams, its dead letters and its oldest unacked message."""
    s = q.subjects
    oldest: int | None = None
    for status, count, first in conn.execute(s.unacked_figures, (info.subscription_id,)):
        if status == "pending":
            info.backlog = int(count)
        else:
            info.in_flight = int(count)
        oldest = first if oldest is None else min(oldest, first)
    info.dead_letters = int(conn.execute(s.dead_count, (info.subscription_id,)).fetchone()[0])
    if oldest is not None:
        row = conn.execute(s.sent_at, (oldest,)).fetchone()
        info.oldest_unacked_at = int(row[0]) if row is not None else None
    return info


def replay(conn: Connection, q: Queries, info: SubscriptionInfo, start: int, now: int) -> int:
    """Deliveries here of every retained message from seq ``start`` on that the filter matches,
    keyed ones blocked behind the first of their key. Returns how many."""
    s = q.subjects
    flt = info.spec.filter
    prefix, exact = subjects.literal_prefix(flt)
    if prefix:  # one range of the subject index: the filter's literal prefix
        hi = prefix + "\x01" if exact else prefix[:-1] + chr(ord(subjects.SEPARATOR) + 1)
        rows = sorted(conn.execute(s.replay_range, (prefix, hi, start)).fetchall(), key=lambda r: r[0])
    else:
        rows = conn.execute(s.replay_all, (start,)).fetchall()
    picked: list[tuple[int, bool]] = []
    seen: set[str] = set()
    for seq, subject, key in rows:
        if not subjects.matches(flt, subject):
            continue
        key = subjects.keyed(info.spec.ordering, key)
        picked.append((int(seq), key is not None and key in seen))
        if key is not None:
            seen.add(key)
    if picked:
        conn.execute(s.replay_insert, {"sub": info.subscription_id, "now": now, **s.pack_replay(picked)})
    return len(picked)


def start_seq(conn: Connection, q: Queries, point: SeekPoint) -> int:
    """The sequence number a point in the history starts at."""
    if point.sequence is not None:
        return point.sequence
    row = conn.execute(q.subjects.first_seq_at, (point.time_us,)).fetchone()
    if row is not None:
        return int(row[0])
    return int(conn.execute(q.subjects.next_seq).fetchone()[0])  # nothing sent since: from now on


class SubscriptionOps:
    engine: Engine
    q: Queries

    @functools.cached_property
    def subject_index(self) -> SubjectIndexCache:
        """This broker's subject index (see subject_index.py)."""
        return SubjectIndexCache()

    async def _write_matching(self, fn: Callable[[Connection, Matcher], T]) -> T:
        """A write job that may match subjects (a publish): the index it built, if it had to
        build one, is installed after the commit."""
        q, index = self.q, self.subject_index

        def job(conn: Connection) -> tuple[T, Matcher]:
            matcher = index.matcher(conn, q)
            return fn(conn, matcher), matcher

        out, matcher = await self.engine.write(job)
        index.install(matcher)
        return out

    # -- the resource ---------------------------------------------------------------------------

    async def create_subscription(
        self, spec: SubscriptionSpec, created_by: str, now: int, start: SeekPoint | None = None
    ) -> tuple[SubscriptionInfo, bool]:
        q = self.q
        s = q.subjects

        def job(conn: Connection) -> tuple[SubscriptionInfo, int | None]:
            row = conn.execute(s.subscription, (spec.name,)).fetchone()
            if row is not None:
                existing = row_to_subscription(row)
                if existing.spec != spec:
                    raise AlreadyExists(
                        f"subscription {spec.name!r} exists with another filter or other options"
                    )
                return existing, None  # a repeat
            sub_id = conn.execute(
                s.insert_subscription,
                {
                    "name": spec.name,
                    "filter": spec.filter,
                    "ack": spec.ack_deadline_us,
                    "max": spec.max_attempts,
                    "retention": spec.retention_us,
                    "ordering": spec.ordering,
                    "dls": spec.dead_letter_subject,
                    "by": created_by,
                    "now": now,
                },
            ).fetchone()[0]
            version = int(conn.execute(s.bump_version).fetchone()[0])
            info = SubscriptionInfo(int(sub_id), spec, now, created_by)
            if start is not None:
                replay(conn, q, info, start_seq(conn, q, start), now)
            return with_figures(conn, q, info), version

        info, version = await self.engine.write(job)
        if version is not None:
            self.subject_index.changed(version, added=(info.subscription_id, spec.filter))
        return info, version is not None

    async def get_subscription(self, name: str, figures: bool = True) -> SubscriptionInfo:
        q = self.q

        def job(conn: Connection) -> SubscriptionInfo:
            info = fetch(conn, q, name)
            return with_figures(conn, q, info) if figures else info

        return await self.engine.read(job)

    async def list_subscriptions(
        self, after: str | None, limit: int
    ) -> tuple[list[SubscriptionInfo], str | None]:
        q = self.q

        def job(conn: Connection) -> tuple[list[SubscriptionInfo], str | None]:
            rows = conn.execute(q.subjects.subscriptions_after, (after or "", limit + 1)).fetchall()
            found = [with_figures(conn, q, row_to_subscription(r)) for r in rows[:limit]]
            return found, (found[-1].name if len(rows) > limit else None)

        return await self.engine.read(job)

    async def delete_subscription(self, name: str) -> SubscriptionInfo:
        s = self.q.subjects

        def job(conn: Connection) -> tuple[SubscriptionInfo, int]:
            info = fetch(conn, self.q, name)
            conn.execute(s.delete_deliveries_of, (info.subscription_id,))
            conn.execute(s.delete_subscription, (info.subscription_id,))
            return info, int(conn.execute(s.bump_version).fetchone()[0])

        info, version = await self.engine.write(job)
        self.subject_index.changed(version, removed=info.subscription_id)
        return info

    async def seek_subscription(
        self, name: str, point: SeekPoint, now: int
    ) -> tuple[SeekResult, MessageChanges]:
        """Pub/Sub's Seek: from the point on, every retained matching message is deliverable here
        (again); before it, what is unacked is acked (a delivery out on a stream is marked
        processed, a pending one dropped). The changes name the deliveries that streams held."""
        q = self.q
        s = q.subjects
        if point.sequence is None and point.time_us is None:
            raise InvalidArgument("target", "set sequence or time")

        def job(conn: Connection) -> tuple[SeekResult, MessageChanges]:
            info = fetch(conn, q, name)
            args = {"sub": info.subscription_id, "start": start_seq(conn, q, point), "now": now}
            out = MessageChanges()
            acked = conn.execute(s.skip_before, args).fetchall()  # out on streams: processed
            dropped = conn.execute(s.drop_before, args).fetchall()  # pending: dropped
            cleared = conn.execute(s.clear_from, args).fetchall()  # from the point on: made again
            out.ids = [(r[0], r[1]) for r in acked] + [(r[0], r[1]) for r in cleared if r[2] == "delivered"]
            replayed = replay(conn, q, info, args["start"], now)
            out.wake.add(subscribers(info.subscription_id))
            return SeekResult(with_figures(conn, q, info), replayed, len(acked) + len(dropped)), out

        return await self.engine.write(job)

    # -- consuming ------------------------------------------------------------------------------

    async def claim_subscription(
        self, subscription_id: int, agent_id: str, limit: int, now: int, ack_deadline: int
    ) -> list[Message]:
        """Mark up to ``limit`` due deliveries of the subscription delivered to the agent
        (priority, then sequence); NotFound once the subscription is deleted."""
        s = self.q.subjects
        pack = self.q.messages.pack
        args: dict[str, Any] = {
            "sub": subscription_id,
            "agent": agent_id,
            "now": now,
            "n": limit,
            "deadline": ack_deadline,
        }

        def job(conn: Connection) -> list[Any]:
            if conn.execute(s.subscription_name, (subscription_id,)).fetchone() is None:
                raise NotFound("the subscription was deleted")
            seqs = [r[0] for r in conn.execute(s.pick, args)]
            if not seqs:
                return []
            packed = {**args, "seqs": pack(seqs)}
            conn.execute(s.mark_delivered, packed)
            return conn.execute(s.claimed_rows, packed).fetchall()

        msgs = [row_to_delivery(r) for r in await self.engine.write(job)]
        msgs.sort(key=rules.claim_key)
        return msgs

    # -- housekeeping ---------------------------------------------------------------------------

    def _sweep_subscriptions_job(
        self, conn: Connection, now: int, purge_before: int, limit: int
    ) -> SweepOutcome:
        """Deliveries past their ack deadline handed back, past their expiry expired, and subject
        messages older than the topic's retention deleted with their deliveries."""
        q = self.q
        s = q.subjects
        lapsed_rows = conn.execute(
            s.release_lapsed, {"now": now, "lim": limit, **rules.release_params(rules.ACK_DEADLINE_PASSED)}
        ).fetchall()
        lapsed = deliveries.delivery_changes(conn, q, lapsed_rows)
        expired = deliveries.delivery_changes(conn, q, conn.execute(s.expire, {"now": now, "lim": limit}))
        lapsed.wake |= expired.wake  # the next of a key, unblocked by an expiry
        purged = 0
        oldest = conn.execute(s.oldest_messages, (limit,)).fetchall()
        cut = next((i for i, r in enumerate(oldest) if r[1] >= purge_before), len(oldest))
        if cut:
            below = int(oldest[cut - 1][0]) + 1
            conn.execute(s.purge_deliveries, (below,))
            conn.execute(s.purge_sends, (below,))
            purged = conn.execute(s.purge_messages, (below,)).rowcount
        return SweepOutcome(lapsed, expired.ids, purged)

    async def sweep_subscriptions(self, now: int, purge_before: int, limit: int) -> SweepOutcome:
        return await self.engine.write(
            lambda conn: self._sweep_subscriptions_job(conn, now, purge_before, limit)
        )

    async def forward_dead_letters(self, now: int, limit: int) -> DeadLetters:
        """Publish the dead letters of the subscriptions that name a dead-letter subject to it (each
        once: marked forwarded in the same transaction), headers saying whence and why."""
        q = self.q
        s = q.subjects

        def job(conn: Connection, matcher: Matcher) -> DeadLetters:
            out = DeadLetters()
            rows = conn.execute(s.dead_to_forward, (limit,)).fetchall()
            for r in rows:
                (
                    sub_id,
                    seq,
                    name,
                    dls,
                    error,
                    message_id,
                    sender,
                    mtype,
                    payload,
                    ctype,
                    prio,
                    corr,
                    conv,
                ) = r[:13]
                headers = {
                    **json.loads(r[13]),
                    DEAD_LETTER_SUBSCRIPTION: name,
                    DEAD_LETTER_MESSAGE: subjects.delivery_id(message_id, int(sub_id)),
                    DEAD_LETTER_SUBJECT: r[15],
                    DEAD_LETTER_REASON: (error or "")[:512],
                }
                msg = deliveries.forwarded(
                    dls, sender, mtype, payload, ctype, prio, corr, conv, headers, r[14]
                )
                subs = (
                    deliveries.store_subject(conn, q, matcher, msg, new_id(), json.dumps(headers), now) or []
                )
                out.wake.update(subscribers(x) for x in subs)
                out.forwarded += 1
            if rows:
                conn.execute(s.mark_forwarded, s.pack_seqs([(int(r[0]), int(r[1])) for r in rows]))
            return out

        return await self._write_matching(job)

    async def subscription_census(self, top_n: int) -> list[SubscriptionFigures]:
        sql = self.q.subjects.census

        def job(conn: Connection) -> list[SubscriptionFigures]:
            return [
                SubscriptionFigures(r[0], int(r[1]), int(r[2]), int(r[3]) if r[3] is not None else None)
                for r in conn.execute(sql, (top_n,))
            ]

        return await self.engine.read(job)
