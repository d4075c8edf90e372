"""The task state machine (broker/domain/task_states.py): its edges, finals and checks."""

from __future__ import annotations

import pytest

from broker.domain import task_states
from broker.domain.task_states import TRANSITIONS, InvalidTransition
from broker.models.tasks import FINISHED, TaskStatus

S = TaskStatus


def test_every_status_has_its_transitions_and_finished_ones_have_none():
    assert set(TRANSITIONS) == set(TaskStatus)
    for status in FINISHED:
        assert TRANSITIONS[status] == frozenset()
        assert task_states.is_finished(status)
    assert not any(task_states.is_finished(s) for s in set(TaskStatus) - FINISHED)


def test_a_running_task_can_go_back_to_ready_or_end_in_any_way():
    assert TRANSITIONS[S.RUNNING] == {S.READY, S.COMPLETED, S.FAILED, S.CANCELLED}


def test_only_a_leased_task_runs_and_only_a_submitted_or_edited_one_is_blocked():
    assert [s for s in TaskStatus if S.RUNNING in TRANSITIONS[s]] == [S.READY]
    # pending at submission; ready when AddDependency gives a task not started a prerequisite
    assert [s for s in TaskStatus if S.BLOCKED in TRANSITIONS[s]] == [S.PENDING, S.READY]


def test_every_unfinished_task_can_be_cancelled_and_no_finished_one():
    for status in TaskStatus:
        assert task_states.cancellable(status) == (status not in FINISHED)


def test_check_refuses_edges_the_machine_lacks():
    task_states.check(None, S.PENDING)
    task_states.check(S.BLOCKED, S.READY)
    for frm, to in [(None, S.READY), (S.COMPLETED, S.READY), (S.BLOCKED, S.RUNNING), (S.READY, S.FAILED)]:
        assert not task_states.allowed(frm, to)
        with pytest.raises(InvalidTransition, match="invalid task state transition"):
            task_states.check(frm, to)


def test_reasons_name_the_agent_and_the_ancestor():
    assert task_states.leased("a1") == "leased to a1"
    assert task_states.lease_expired("a1") == "lease of agent a1 expired"
    assert task_states.ancestor_cancelled("t-1", "stop") == "ancestor t-1 cancelled: stop"


def test_cancel_scope_of_unfinished_and_finished_tasks():
    for status in (S.PENDING, S.READY, S.RUNNING):
        assert task_states.cancel_scope(status, cascade=False) == (True, False)
        assert task_states.cancel_scope(status, cascade=True) == (True, True)
    for status in (S.COMPLETED, S.FAILED, S.CANCELLED):
        assert task_states.cancel_scope(status, cascade=False) is None
        assert task_states.cancel_scope(status, cascade=True) == (False, True)


def test_dependency_edits_apply_only_to_a_task_not_started():
    from broker.domain import dependencies
    from broker.errors import FailedPrecondition

    dependencies.check_editable("t", S.BLOCKED, 0)
    dependencies.check_editable("t", S.READY, 0)
    for status, attempt in [(S.READY, 1), (S.RUNNING, 1), (S.COMPLETED, 1), (S.CANCELLED, 0)]:
        with pytest.raises(FailedPrecondition):
            dependencies.check_editable("t", status, attempt)
    assert dependencies.status_after_edit(S.READY, 1) is S.BLOCKED
    assert dependencies.status_after_edit(S.BLOCKED, 0) is S.READY
