"""Whether a lease reference is current, and repeated Complete/Fail (broker/domain/leases.py)."""

from __future__ import annotations

import pytest

from broker.domain import leases
from broker.domain.retry import Failure
from broker.errors import FailedPrecondition
from broker.models.tasks import CompleteInput, FailInput, LeaseRef, TaskStatus

S = TaskStatus
REF = LeaseRef(task_id="t", agent_id="a", attempt=2)
NOW = 1_000


def test_a_running_task_held_at_that_attempt_before_expiry_is_current():
    assert leases.refusal(REF, S.RUNNING, "a", 2, NOW, NOW) is None  # expiring this instant: still held
    leases.check_current(REF, S.RUNNING, "a", 2, NOW + 1, NOW)


@pytest.mark.parametrize(
    ("status", "holder", "attempt", "expires", "message"),
    [
        (S.READY, None, 2, None, "task t is ready: the lease for attempt 2 is over"),
        (S.RUNNING, "b", 2, NOW, "task t is not leased to agent 'a'"),
        (S.RUNNING, "a", 3, NOW, "task t: attempt 2 is stale; the current attempt is 3"),
        (S.RUNNING, "a", 2, NOW - 1, "task t: the lease for attempt 2 has lapsed"),
    ],
)
def test_any_other_reference_is_refused_and_says_why(status, holder, attempt, expires, message):
    err = leases.refusal(REF, status, holder, attempt, expires, NOW)
    assert isinstance(err, FailedPrecondition) and str(err) == message
    with pytest.raises(FailedPrecondition, match="task t"):
        leases.check_current(REF, status, holder, attempt, expires, NOW)


def test_an_extension_defaults_to_the_tasks_lease_timeout():
    assert leases.extended_until(NOW, None, 30) == NOW + 30
    assert leases.extended_until(NOW, 5, 30) == NOW + 5


def test_a_repeated_complete_is_the_one_that_completed_the_task():
    inp = CompleteInput(task_id="t", agent_id="a", attempt=2, result=b"r", result_content_type="x")
    assert leases.completed_by(inp, S.COMPLETED, "a", 2, b"r", "x")
    assert not leases.completed_by(inp, S.COMPLETED, "a", 2, b"other", "x")
    assert not leases.completed_by(inp, S.COMPLETED, "b", 2, b"r", "x")
    assert not leases.completed_by(inp, S.COMPLETED, "a", 1, b"r", "x")
    assert not leases.completed_by(inp, S.RUNNING, "a", 2, None, None)
    empty = CompleteInput(task_id="t", agent_id="a", attempt=2)
    assert leases.completed_by(empty, S.COMPLETED, "a", 2, None, None)


def test_a_repeated_fail_is_the_one_that_ended_its_attempt():
    """Judged from what the attempt's last transition out of running stored (who, how it failed),
    never from the wording of its reason."""
    inp = FailInput(task_id="t", agent_id="a", attempt=2, error="boom")
    assert leases.failed_by(inp, "a", Failure("boom", retryable=True))
    assert not leases.failed_by(inp, "broker", Failure("boom", retryable=True))  # the lease lapsed
    assert not leases.failed_by(inp, "a", None)  # the attempt did not fail (completed, departed)
    assert not leases.failed_by(inp, "a", Failure("other", retryable=True))  # another outcome
    final = FailInput(task_id="t", agent_id="a", attempt=2, error="boom", non_retryable=True)
    assert leases.failed_by(final, "a", Failure("boom", retryable=False))
    assert not leases.failed_by(inp, "a", Failure("boom", retryable=False))
    assert not leases.failed_by(final, "a", Failure("boom", retryable=True))


def test_an_undelivered_lease_is_handed_back_only_while_it_is_still_the_tasks():
    assert leases.still_holds(S.RUNNING, "a", 2, "a", 2)
    assert not leases.still_holds(S.RUNNING, "a", 3, "a", 2)
    assert not leases.still_holds(S.RUNNING, "b", 2, "a", 2)
    assert not leases.still_holds(S.READY, None, 2, "a", 2)
