"""The rules of a message copy's life: when it is due, which copies a claim takes and in what
order, whom a pending copy waits for, what a delivery handed back becomes (pending again, or a
dead letter), when a delivery lapses, a copy expires, may be acked, requeued, or purged.

Pure: no I/O, no asyncio, no SQL execution. Storage applies most of these rules set-based, over
many rows in one statement: for those, the SQL fragment is defined here, next to the rule it
states (over the ``a2a_messages`` columns; ``*_SQL`` constants, or ``*_sql(p)`` functions for the
fragments that take parameters, where ``p`` names a parameter in the dialect's style: ``:now`` on
SQLite, ``%(now)s`` on PostgreSQL), and ``tests/unit/test_message_rules_in_sql.py`` pins that
each fragment and its Python rule agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import BrokerError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from ..models.messages import MessageStatus, TargetKind

MAX_NOTE = 2048  # characters of ``last_error`` (the column's CHECK)

Param = Callable[[str], str]  # a dialect's named parameter: "now" -> ":now", or "%(now)s"

# -- due ----------------------------------------------------------------------------------------


def is_due(deliver_after: int | None, expires_at: int | None, now: int) -> bool:
    """A pending copy may be delivered now: its scheduled time (if any) has come, and it has not
    expired."""
    return (deliver_after is None or deliver_after <= now) and (expires_at is None or expires_at > now)


def due_sql(p: Param) -> str:
    now = p("now")
    return f"(deliver_after IS NULL OR deliver_after <= {now}) AND (expires_at IS NULL OR expires_at > {now})"


# -- claims -------------------------------------------------------------------------------------

# Copies are delivered highest priority first, then in enqueue order.
CLAIM_ORDER_SQL = "priority DESC, seq"


def claim_order(priority: int, seq: int) -> tuple[int, int]:
    """Sort key of ``CLAIM_ORDER_SQL``."""
    return (-priority, seq)


def pick_claims(
    direct: Sequence[tuple[int, int]], anycast: Sequence[Sequence[tuple[int, int]]], limit: int
) -> tuple[list[int], list[int]]:
    """Which copies a claim takes: the agent's own (``direct``) and anycast copies for each of its
    capabilities (``anycast``, one list per capability) compete in one claim order; the first
    ``limit`` are taken (competing consumers: an anycast copy goes to the first agent with the
    capability that has room). Candidates are (seq, priority); returns the seqs taken of each kind.
    """
    cands = [(-p, seq, False) for seq, p in direct]
    for pool in anycast:
        cands += [(-p, seq, True) for seq, p in pool]
    cands.sort()
    chosen = cands[:limit]
    return [seq for _, seq, a in chosen if not a], [seq for _, seq, a in chosen if a]


# Setting a claimed copy delivered: one more attempt, until the ack deadline.
def deliver_sql(p: Param) -> str:
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
    an agent holds), else any agent with its capability (an anycast copy in its capability's pool).
    Exactly one of the two is set."""

    agent_id: str | None
    capability: str | None


def audience(recipient_id: str | None, capability: str | None) -> Audience:
    if recipient_id is not None:
        return Audience(recipient_id, None)
    return Audience(None, capability)


def recipient_when_pending(target_kind: TargetKind, recipient_id: str | None) -> str | None:
    """A copy pending again keeps its recipient, except an anycast copy: it goes back to its
    capability's pool, for any agent with the capability to take."""
    return None if target_kind is TargetKind.ANYCAST else recipient_id


RECIPIENT_WHEN_PENDING_SQL = "CASE WHEN target_kind = 'anycast' THEN NULL ELSE recipient_id END"

# -- handing a delivery back (nack, reject, stream ended, ack deadline passed) -----------------


def is_dead_letter(attempt: int, max_attempts: int, reject: bool, refund: bool) -> bool:
    """A delivery handed back becomes a dead letter (FAILED) when its recipient rejected it, or
    when it was the last attempt allowed. ``refund`` gives the attempt back (the broker, not the
    agent, failed: a shutdown, a response never transmitted), so it never counts as the last."""
    return reject or attempt - int(refund) >= max_attempts


def dead_letter_sql(p: Param) -> str:
    return f"({p('reject')} OR attempt - {p('refund')} >= max_attempts)"


def release_note(reason: str, attempt: int, max_attempts: int) -> str:
    """``last_error`` of a delivery handed back."""
    return f"{reason} (attempt {attempt} of {max_attempts})"[:MAX_NOTE]


def release_note_sql(p: Param) -> str:
    return f"substr({p('reason')} || ' (attempt ' || attempt || ' of ' || max_attempts || ')', 1, {MAX_NOTE})"


@dataclass(frozen=True, slots=True)
class Released:
    """What a delivery handed back becomes."""

    status: MessageStatus  # PENDING (to be delivered again) or FAILED (a dead letter)
    attempt: int
    recipient_id: str | None
    deliver_after: int | None
    last_error: str


def release(
    *,
    target_kind: TargetKind,
    recipient_id: str | None,
    attempt: int,
    max_attempts: int,
    reason: str,
    refund: bool = False,
    reject: bool = False,
    deliver_after: int | None = None,
) -> Released:
    """A delivery handed back: a dead letter (see ``is_dead_letter``), or pending again (after
    ``deliver_after`` if set; an anycast copy back in its pool)."""
    dead = is_dead_letter(attempt, max_attempts, reject, refund)
    return Released(
        MessageStatus.FAILED if dead else MessageStatus.PENDING,
        attempt - int(refund),
        recipient_id if dead else recipient_when_pending(target_kind, recipient_id),
        deliver_after,
        release_note(reason, attempt, max_attempts),
    )


def release_sql(p: Param) -> str:
    """``release`` set-based: the SET clause of an UPDATE of delivered rows. Parameters: see
    ``release_params``."""
    dead = dead_letter_sql(p)
    return f"""
    status = CASE WHEN {dead} THEN 'failed' ELSE 'pending' END,
    attempt = attempt - {p("refund")},
    recipient_id = CASE WHEN {dead} THEN recipient_id ELSE {RECIPIENT_WHEN_PENDING_SQL} END,
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


def is_lapsed(status: MessageStatus, ack_deadline: int | None, now: int) -> bool:
    """A delivery not acked by its deadline is handed back (``release``)."""
    return status is MessageStatus.DELIVERED and ack_deadline is not None and ack_deadline <= now


def lapsed_sql(p: Param) -> str:
    return f"status = 'delivered' AND ack_deadline <= {p('now')}"


EXPIRED_NOTE = "expired before it was processed"


def is_expired(status: MessageStatus, expires_at: int | None, now: int) -> bool:
    """A copy not yet processed (pending or delivered) expires at its expiry time; a dead letter
    stays until requeued."""
    return (
        expires_at is not None
        and status in (MessageStatus.PENDING, MessageStatus.DELIVERED)
        and expires_at <= now
    )


def expired_sql(p: Param) -> str:
    return f"expires_at IS NOT NULL AND status IN ('pending', 'delivered') AND expires_at <= {p('now')}"


def expire_sql(p: Param) -> str:
    """Setting an expired copy EXPIRED (a final state)."""
    return f"status = 'expired', finished_at = {p('now')}, ack_deadline = NULL, last_error = '{EXPIRED_NOTE}'"


def is_purgeable(status: MessageStatus, finished_at: int | None, before: int) -> bool:
    """Retention: processed and expired copies are deleted once finished before ``before``; dead
    letters are kept (for inspection and requeue), as is everything still in delivery."""
    return (
        status in (MessageStatus.PROCESSED, MessageStatus.EXPIRED)
        and finished_at is not None
        and finished_at < before
    )


def purgeable_sql(p: Param) -> str:
    return f"status IN ('processed', 'expired') AND finished_at < {p('before')}"


# -- acks ---------------------------------------------------------------------------------------


def is_ackable(status: MessageStatus, attempt: int) -> bool:
    """An ack counts for a delivery, and for one handed back (its stream ended, its deadline
    passed) and not yet delivered again: the agent did process it. Acking twice changes nothing."""
    return status is MessageStatus.DELIVERED or (status is MessageStatus.PENDING and attempt > 0)


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


# A requeued copy starts afresh: pending, due now, no attempt made yet.
REQUEUE_SQL = (
    "status = 'pending', attempt = 0, deliver_after = NULL, ack_deadline = NULL,"
    f" recipient_id = {RECIPIENT_WHEN_PENDING_SQL}"
)


# -- purge on request (an operator's clean-up, beside retention) --------------------------------

PURGEABLE_ON_REQUEST = (MessageStatus.FAILED, MessageStatus.PROCESSED, MessageStatus.EXPIRED)


def purge_refusal(status: MessageStatus) -> InvalidArgument | None:
    """An operator purges copies that reached an end: dead letters, processed, expired."""
    if status in PURGEABLE_ON_REQUEST:
        return None
    return InvalidArgument("status", "must be failed (dead letters), processed or expired")
