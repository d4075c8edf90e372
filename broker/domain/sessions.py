"""Orchestration sessions: what a session's status is, from its tasks (pure rules).

A session is ``active`` while it is open or has unfinished tasks. It ends:

- ``failed`` as soon as one of its root tasks (a task with no parent) has failed for good (no
  retry left), open or not: the orchestration it stands for cannot succeed;
- once closed (``CloseSession``) and every task finished: ``completed`` when none failed for good,
  else ``failed``;
- ``cancelled`` by ``CancelSession`` (its unfinished tasks are cancelled with it).

An ended session takes no new task. After the task retention it is ``archived`` (with its
tasks purged), then deleted.
"""

from __future__ import annotations

from ..models.sessions import SessionStatus

ENDED = frozenset({SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED})
FINISHED_TASKS = ("completed", "failed", "cancelled")
ROOT_FAILED = "a root task failed for good"
ALL_FINISHED = "closed, and every task finished"


def derive(
    status: SessionStatus, closed: bool, counts: dict[str, int], root_failed: bool
) -> tuple[SessionStatus, str]:
    """The status a session should have now (and why), given its task counts by status."""
    if status is not SessionStatus.ACTIVE:
        return status, ""
    if root_failed:
        return SessionStatus.FAILED, ROOT_FAILED
    unfinished = sum(n for s, n in counts.items() if s not in FINISHED_TASKS)
    if closed and unfinished == 0:
        if counts.get("failed", 0):
            return SessionStatus.FAILED, ALL_FINISHED
        return SessionStatus.COMPLETED, ALL_FINISHED
    return SessionStatus.ACTIVE, ""


def progress(counts: dict[str, int]) -> float:
    """The share of the session's tasks that have finished (0 with no task)."""
    total = sum(counts.values())
    if not total:
        return 0.0
    return sum(counts.get(s, 0) for s in FINISHED_TASKS) / total
