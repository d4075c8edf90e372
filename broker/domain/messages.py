"""The rules of a message copy's life: when it is due, which copies a claim takes and in what
order, whom a pending copy waits for, what a delivery handed back becomes (pending again, or a
dead letter), when a delivery lapses, a copy expires, may be acked, requeued, or purged.

Pure: no I/O, no asyncio, no SQL execution. Storage applies most of these rules set-based, over
many rows in one statement: for those, the rule is written here once, as the SQL fragment that
runs (over the ``a2a_messages`` columns; ``*_SQL`` constants, or ``*_sql(p)`` functions for the
fragments that take parameters, where ``p`` names a parameter in the dialect's style: ``:now`` on
SQLite, ``%(now)s`` on PostgreSQL). ``tests/unit/test_message_rules_in_sql.py`` runs each one on
both dialects. The rules that run in Python (which copies a claim takes, whom to wake, refusals)
are Python here. The claim order is declared once (``CLAIM_ORDER``) and read both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ..errors import BrokerError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from ..models.messages import MessageStatus

MAX_NOTE = 2048  # characters of ``last_error`` (the column's CHECK)

Param = Callable[[str], str]  # a dialect's named parameter: "now" -> ":now", or "%(now)s"

# -- due ----------------------------------------------------------------------------------------


def due_sql(p: Param) -> str:
    """A pending copy may be delivered now: its scheduled time (if any) has come, and it has not
    expired."""
    now = p("now")
    return f"(deliver_after IS NULL OR deliver_after <= {now}) AND (expires_at IS NULL OR expires_at > {now})"


# -- claims -------------------------------------------------------------------------------------

# Copies are delivered highest priority first, then in enqueue order: (column, descending). The
# claims' ORDER BY and every sort of copies in Python are this.
CLAIM_ORDER: tuple[tuple[str, bool], ...] = (("priority", True), ("seq", False))


def claim_order_sql(seq: str = "seq") -> str:
    """``CLAIM_ORDER`` as an ORDER BY list; ``seq`` names the enqueue-order column (a
    subscription's deliveries: ``message_seq``, the subject message's sequence)."""
    columns = {"seq": seq}
    return ", ".join(f"{columns.get(c, c)} DESC" if desc else columns.get(c, c) for c, desc in CLAIM_ORDER)


CLAIM_ORDER_SQL = claim_order_sql()


def claim_key(copy: Any) -> tuple[int, ...]:
    """A copy's place in the claim order (anything with the order's columns as attributes)."""
    return tuple(-getattr(copy, c) if desc else getattr(copy, c) for c, desc in CLAIM_ORDER)


class Candidate(NamedTuple):
    """A copy a claim may take: one of the agent's own, or an anycast copy of its capabilities."""

    seq: int
    priority: int
    anycast: bool


def pick_claims(
    direct: Sequence[tuple[int, int]], anycast: Sequence[Sequence[tuple[int, int]]], limit: int
) -> tuple[list[int], list[int]]:
    """Which copies a claim takes: the agent's own (``direct``) and anycast copies for each of its
    capabilities (``anycast``, one list per capability) compete in one claim order; the first
    ``limit`` are taken (competing consumers: an anycast copy goes to the first agent with the
    capability that has room). Candidates are (seq, priority); returns the seqs taken of each kind.
    """
    cands = [Candidate(seq, p, False) for seq, p in direct]
    for pool in anycast:
        cands += [Candidate(seq, p, True) for seq, p in pool]
    cands.sort(key=claim_key)
    chosen = cands[:limit]
    return [c.seq for c in chosen if not c.anycast], [c.seq for c in chosen if c.anycast]


def deliver_sql(p: Param) -> str:
    """Setting a claimed copy delivered: one more attempt, until the ack deadline."""
    return (
        f"status = 'delivered', attempt = attempt + 1, delivered_at = {p('now')},"
        f" ack_deadline = {p('deadline')}"
    )


def delivered_attempt(attempt: int) -> int:
    """The attempt a delivery is: each delivery counts one."""
    return attempt + 1


# -- whom a pending copy waits for --------------------------------------------------------------


class Audience(NamedTuple):
    """Who may take a pending copy: its recipient (direct and broadcast copies, and an anycast copy
    an agent holds), else any agent with its capability (an anycast copy in its capability's pool),
    or, for a subject message's delivery, any consumer of its subscription. Exactly one is set."""

    agent_id: str | None
    capability: str | None
    subscription: int | None = None


def subscribers(subscription_id: int) -> Audience:
    """Whoever consumes a subscription (a delivery pending there)."""
    return Audience(None, None, subscription_id)


def audience(recipient_id: str | None, capability: str | None) -> Audience:
    if recipient_id is not None:
        return Audience(recipient_id, None)
    return Audience(None, capability)


# A copy pending again keeps its recipient, except an anycast copy: it goes back to its capability's
# pool, for any agent with the capability to take.
RECIPIENT_WHEN_PENDING_SQL = "CASE WHEN target_kind = 'anycast' THEN NULL ELSE recipient_id END"

# -- handing a delivery back (nack, reject, stream ended, ack deadline passed) -----------------


def dead_letter_sql(p: Param) -> str:
    """A delivery handed back becomes a dead letter (FAILED) when its recipient rejected it, or
    when it was the last attempt allowed. ``refund`` gives the attempt back (the broker, not the
    agent, failed: a shutdown, a response never transmitted), so it never counts as the last."""
    return f"({p('reject')} OR attempt - {p('refund')} >= max_attempts)"


def release_note_sql(p: Param) -> str:
    """``last_error`` of a delivery handed back: the reason and which attempt of how many, cut to
    the column's limit."""
    return f"substr({p('reason')} || ' (attempt ' || attempt || ' of ' || max_attempts || ')', 1, {MAX_NOTE})"


def release_sql(p: Param, pending_recipient: str = RECIPIENT_WHEN_PENDING_SQL) -> str:
    """A delivery handed back: a dead letter (``dead_letter_sql``), or pending again (after
    ``deliver_after`` if set; an anycast copy back in its pool), the attempt given back when
    refunded. The SET clause of an UPDATE of delivered rows; parameters: ``release_params``.
    ``pending_recipient``: whom a row pending again is for (a subscription's delivery goes back
    to the subscription: ``subjects.RECIPIENT_WHEN_PENDING_SQL``)."""
    dead = dead_letter_sql(p)
    return f"""
    status = CASE WHEN {dead} THEN 'failed' ELSE 'pending' END,
    attempt = attempt - {p("refund")},
    recipient_id = CASE WHEN {dead} THEN recipient_id ELSE {pending_recipient} END,
    deliver_after = {p("deliver_after")},
    ack_deadline = NULL,
    last_error = {release_note_sql(p)}"""


def release_params(
    reason: str, refund: bool = False, reject: bool = False, deliver_after: int | None = None
) -> dict[str, object]:
    """The parameters of ``release_sql`` (``refund`` a number: it is subtracted)."""
    return {"reason": reason, "refund": int(refund), "reject": reject, "deliver_after": deliver_after}


def nack_reason(reason: str, reject: bool) -> str:
    """The reason recorded for a Nack: the recipient's, else what it did."""
    return reason or ("rejected by the recipient" if reject else "nacked by the recipient")


def redeliver_after(now: int, delay_us: int, reject: bool) -> int | None:
    """When a nacked copy may be delivered again: after its delay (a rejected one never is)."""
    return now + delay_us if delay_us > 0 and not reject else None


# -- ack deadline, expiry, retention ------------------------------------------------------------

ACK_DEADLINE_PASSED = "ack deadline passed"


def lapsed_sql(p: Param) -> str:
    """A delivery not acked by its deadline is handed back (``release_sql``)."""
    return f"status = 'delivered' AND ack_deadline <= {p('now')}"


EXPIRED_NOTE = "expired before it was processed"


def expired_sql(p: Param) -> str:
    """A copy not yet processed (pending or delivered) expires at its expiry time; a dead letter
    stays until requeued."""
    return f"expires_at IS NOT NULL AND status IN ('pending', 'delivered') AND expires_at <= {p('now')}"


def expire_sql(p: Param) -> str:
    """Setting an expired copy EXPIRED (a final state)."""
    return f"status = 'expired', finished_at = {p('now')}, ack_deadline = NULL, last_error = '{EXPIRED_NOTE}'"


def purgeable_sql(p: Param) -> str:
    """Retention: processed and expired copies are deleted once finished before ``before``; dead
    letters are kept (for inspection and requeue), as is everything still in delivery."""
    return f"status IN ('processed', 'expired') AND finished_at < {p('before')}"


# -- acks ---------------------------------------------------------------------------------------


# An ack counts for a delivery, and for one handed back (its stream ended, its deadline passed) and
# not yet delivered again: the agent did process it. Acking twice changes nothing.
ACKABLE_SQL = "(status = 'delivered' OR (status = 'pending' AND attempt > 0))"


def ack_sql(p: Param) -> str:
    """Setting an acked copy PROCESSED (a final state)."""
    return f"status = 'processed', processed_at = {p('now')}, finished_at = {p('now')}, ack_deadline = NULL"


def ack_refusal(message_id: str, found: bool, recipient_id: str | None, agent_id: str) -> BrokerError | None:
    """Why an agent may not ack (or nack) a copy: unknown, or addressed to another agent."""
    if not found:
        return NotFound(f"message {message_id!r} not found")
    if recipient_id is not None and recipient_id != agent_id:
        return PermissionDenied(f"message {message_id!r} is addressed to another agent, not {agent_id!r}")
    return None


# -- requeue (dead letters back into delivery) --------------------------------------------------


def requeue_refusal(message_id: str, status: str | None) -> BrokerError | None:
    """Only a dead letter (FAILED) may be requeued."""
    if status is None:
        return NotFound(f"message {message_id!r} not found")
    if status != MessageStatus.FAILED:
        return FailedPrecondition(f"message {message_id!r} is {status}, not failed (a dead letter)")
    return None


def requeue_sql(pending_recipient: str = RECIPIENT_WHEN_PENDING_SQL) -> str:
    """A requeued copy starts afresh: pending, due now, no attempt made yet (``pending_recipient``
    as for ``release_sql``)."""
    return (
        "status = 'pending', attempt = 0, deliver_after = NULL, ack_deadline = NULL,"
        f" recipient_id = {pending_recipient}"
    )


REQUEUE_SQL = requeue_sql()


# -- purge on request (an operator's clean-up, beside retention) --------------------------------

PURGEABLE_ON_REQUEST = (MessageStatus.FAILED, MessageStatus.PROCESSED, MessageStatus.EXPIRED)


def purge_refusal(status: MessageStatus) -> InvalidArgument | None:
    """An operator purges copies that reached an end: dead letters, processed, expired."""
    if status in PURGEABLE_ON_REQUEST:
        return None
    return InvalidArgument("status", "must be failed (dead letters), processed or expired")
