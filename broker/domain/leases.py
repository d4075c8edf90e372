"""Leases: whether a lease reference is current, how far an extension reaches, and how a
repeated Complete or Fail is recognised.

A lease is named by (task, holder, attempt); the attempt number is the fencing
token. A reference is *current* while the task is running, held by that agent,
at that attempt, and the lease has not lapsed (``expires_at >= now``; the
sweeper ends leases with ``expires_at < now``). ExtendLease, Complete and Fail
need a current lease; any other reference is refused with FAILED_PRECONDITION
and changes nothing.

Complete and Fail are idempotent: a retry of a call that already committed
(the client did not get the answer) gets the same answer rather than a refusal.

Storage checks a lease set-based too, in the statement that completes a task
and in the sweeper's scan for lapsed leases: those SQL fragments are here,
beside ``refusal`` (``current_sql``, ``lapsed_sql``; ``p`` names a parameter
in the dialect's style), and tests/unit/test_lease_rules_in_sql.py pins that
they agree with it on both dialects.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import FailedPrecondition
from ..models.tasks import CompleteInput, FailInput, LeaseRef, TaskStatus
from .retry import Failure


def refusal(
    ref: LeaseRef, status: TaskStatus, holder: str | None, attempt: int, expires_at: int | None, now: int
) -> FailedPrecondition | None:
    """Why ``ref`` does not name the task's current lease, or None when it does."""
    if status != TaskStatus.RUNNING:
        return FailedPrecondition(
            f"task {ref.task_id} is {status.value}: the lease for attempt {ref.attempt} is over"
        )
    if holder != ref.agent_id:
        return FailedPrecondition(f"task {ref.task_id} is not leased to agent {ref.agent_id!r}")
    if attempt != ref.attempt:
        return FailedPrecondition(
            f"task {ref.task_id}: attempt {ref.attempt} is stale; the current attempt is {attempt}"
        )
    if expires_at is None or expires_at < now:
        # Lapsed: the sweeper will end it as a failed attempt.
        return FailedPrecondition(f"task {ref.task_id}: the lease for attempt {ref.attempt} has lapsed")
    return None


RUNNING = f"'{TaskStatus.RUNNING.value}'"


def current_sql(p: Callable[[str], str]) -> str:
    """``refusal`` set-based: the lease (``agent``, ``attempt``) is the task's current one at
    ``now`` (it has not lapsed)."""
    return (
        f"status = {RUNNING} AND assigned_agent_id = {p('agent')} AND attempt = {p('attempt')}"
        f" AND lease_expires_at >= {p('now')}"
    )


def lapsed_sql(p: Callable[[str], str]) -> str:
    """A running task whose lease lapsed at ``now``: the sweeper ends it as a failed attempt."""
    return f"status = {RUNNING} AND lease_expires_at < {p('now')}"


def still_holds(
    status: TaskStatus, holder: str | None, attempt: int, agent_id: str, ref_attempt: int
) -> bool:
    """Whether the lease (``agent_id``, ``ref_attempt``) is still the task's, lapsed or not: a lease
    handed back undelivered returns only then (one that moved on since is left alone)."""
    return status == TaskStatus.RUNNING and holder == agent_id and attempt == ref_attempt


def check_current(
    ref: LeaseRef, status: TaskStatus, holder: str | None, attempt: int, expires_at: int | None, now: int
) -> None:
    """FailedPrecondition unless ``ref`` names the current, unexpired lease."""
    err = refusal(ref, status, holder, attempt, expires_at, now)
    if err is not None:
        raise err


def extended_until(now: int, extension_us: int | None, lease_timeout_us: int) -> int:
    """The new expiry of an extended lease: the requested extension, else the task's lease timeout."""
    return now + (extension_us or lease_timeout_us)


def completed_by(
    inp: CompleteInput,
    status: TaskStatus,
    holder: str | None,
    attempt: int,
    result: bytes | None,
    result_content_type: str | None,
) -> bool:
    """Whether this very Complete (holder, attempt, result) is what completed the task:
    a retry of it gets the completed task back."""
    return (
        status == TaskStatus.COMPLETED
        and holder == inp.agent_id
        and attempt == inp.attempt
        and bytes(result or b"") == inp.result
        and (result_content_type or "") == inp.result_content_type
    )


def failed_by(inp: FailInput, actor: str, failure: Failure | None) -> bool:
    """Whether this very Fail (holder, attempt, error, retryable or not) already ended its attempt,
    judged by what the attempt's last transition out of running stored: who made it (``actor``)
    and how the attempt failed (``failure``; None when it did not fail: it was completed,
    cancelled, or its holder departed)."""
    return (
        failure is not None
        and actor == inp.agent_id
        and failure.error == inp.error
        and failure.retryable != inp.non_retryable
    )
