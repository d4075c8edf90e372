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

from collections.abc import Callable

from ..models.sessions import SessionStatus
from ..models.tasks import FINISHED

ROOT_FAILED = "a root task failed for good"
ALL_FINISHED = "closed, and every task finished"


def derive(
    status: SessionStatus,
    closed: bool,
    root_failed: bool,
    any_unfinished: Callable[[], bool],
    any_failed: Callable[[], bool],
) -> tuple[SessionStatus, str]:
    """The status a session should have now (and why), after some of its tasks finished;
    ``root_failed``: one of them was a root task that failed for good. The two questions about
    its other tasks are asked only when the answer depends on them (each is a read)."""
    if status is not SessionStatus.ACTIVE:
        return status, ""
    if root_failed:
        return SessionStatus.FAILED, ROOT_FAILED
    if not closed or any_unfinished():
        return SessionStatus.ACTIVE, ""
    return (SessionStatus.FAILED if any_failed() else SessionStatus.COMPLETED), ALL_FINISHED


def progress(counts: dict[str, int]) -> float:
    """The share of the session's tasks that have finished (0 with no task)."""
    total = sum(counts.values())
    if not total:
        return 0.0
    return sum(counts.get(s, 0) for s in FINISHED) / total
