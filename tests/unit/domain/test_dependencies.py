"""What becomes of a dependent when a prerequisite ends (broker/domain/dependencies.py)."""

from __future__ import annotations

import pytest

from broker.domain.dependencies import Resolution, cancelled_reason, dependent_after, initial_status
from broker.models.tasks import DepType, TaskStatus

S = TaskStatus
H, W = DepType.HARD, DepType.SOFT


def never() -> int:
    raise AssertionError("the count was not needed")


@pytest.mark.parametrize("outcome", [S.FAILED, S.CANCELLED])
def test_a_hard_dependent_of_a_failed_or_cancelled_prerequisite_is_cancelled(outcome):
    assert dependent_after(S.BLOCKED, H, outcome, never) == Resolution.CANCEL


@pytest.mark.parametrize("outcome", [S.COMPLETED, S.FAILED, S.CANCELLED])
def test_a_soft_dependent_becomes_ready_once_nothing_is_unfinished(outcome):
    assert dependent_after(S.BLOCKED, W, outcome, lambda: 0) == Resolution.READY
    assert dependent_after(S.BLOCKED, W, outcome, lambda: 1) == Resolution.UNAFFECTED


def test_a_hard_dependent_of_a_completed_prerequisite_waits_for_the_others():
    assert dependent_after(S.BLOCKED, H, S.COMPLETED, lambda: 0) == Resolution.READY
    assert dependent_after(S.BLOCKED, H, S.COMPLETED, lambda: 2) == Resolution.UNAFFECTED


@pytest.mark.parametrize("status", [S.READY, S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED])
def test_a_dependent_no_longer_waiting_is_unaffected(status):
    assert dependent_after(status, H, S.FAILED, never) == Resolution.UNAFFECTED


def test_a_new_task_is_blocked_while_a_prerequisite_is_unfinished():
    assert initial_status(2) == (S.BLOCKED, "waiting for 2 unfinished prerequisite(s)")
    assert initial_status(0) == (S.READY, "no unfinished prerequisites")


def test_the_cancel_reason_names_the_prerequisite_and_how_it_ended():
    assert cancelled_reason("t-1", S.FAILED, "x") == "prerequisite t-1 failed: x"
