"""Submit checks against stored tasks (broker/domain/submission.py)."""

from __future__ import annotations

import pytest

from broker.domain import submission
from broker.errors import AlreadyExists, FailedPrecondition, InvalidArgument, ResourceExhausted
from broker.models.tasks import DepType, TaskSpecInput, TaskStatus


def test_the_same_key_and_spec_is_the_same_submission_and_another_spec_a_conflict():
    spec = TaskSpecInput(title="a", idempotency_key="k")
    fp = submission.fingerprint(spec)
    assert fp == submission.fingerprint(TaskSpecInput(title="a", idempotency_key="k"))
    assert submission.idempotent_duplicate("task", spec, "t-1", fp) == "t-1"
    other = TaskSpecInput(title="b", idempotency_key="k")
    with pytest.raises(AlreadyExists, match=r"task.idempotency_key: 'k' was used for another task \(t-1\)"):
        submission.idempotent_duplicate("task", other, "t-1", fp)


def test_a_matched_key_must_also_have_the_same_parent_and_prerequisites():
    spec = TaskSpecInput(title="a", idempotency_key="k")
    H, S = DepType.HARD, DepType.SOFT
    place = ("p-1", [("t-1", H), ("t-2", S)])
    submission.check_same_place("nodes[0]", spec, "t-9", place, ("p-1", [("t-2", S), ("t-1", H)]))
    for found in (
        ("p-2", place[1]),
        (None, place[1]),
        ("p-1", [("t-1", H)]),
        ("p-1", [("t-1", S), ("t-2", S)]),
    ):
        with pytest.raises(AlreadyExists, match=r"nodes\[0\].idempotency_key: 'k' .*different parent"):
            submission.check_same_place("nodes[0]", spec, "t-9", place, found)


def test_a_tree_is_at_most_max_depth_levels_deep():
    assert submission.check_level("task", 1, 2) == 2
    with pytest.raises(ResourceExhausted, match="task.parent_id: the task would be at depth 3"):
        submission.check_level("task", 2, 2)


def test_a_chain_of_prerequisites_is_at_most_max_depth_long():
    submission.check_dep_depth("task", 2, 2)
    with pytest.raises(ResourceExhausted, match="chain of prerequisites would be 3 deep"):
        submission.check_dep_depth("nodes[1].task", 3, 2)


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.CANCELLED])
def test_a_hard_prerequisite_that_can_never_complete_refuses_the_task(status):
    with pytest.raises(FailedPrecondition, match=f"hard prerequisite 'p' is {status.value}"):
        submission.check_prerequisite("task", "p", DepType.HARD, status)
    submission.check_prerequisite("task", "p", DepType.SOFT, status)


def test_a_prerequisite_is_listed_once():
    seen: set[str] = set()
    submission.check_listed_once("task", "p", seen)
    with pytest.raises(InvalidArgument, match="listed twice"):
        submission.check_listed_once("task", "p", seen)
