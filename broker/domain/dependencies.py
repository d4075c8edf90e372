"""What becomes of a dependent task when one of its prerequisites ends.

A *hard* dependency needs its prerequisite to complete: when the prerequisite
fails or is cancelled, the dependent is cancelled (and so, in turn, are its
own hard dependents). A *soft* dependency only waits for its prerequisite to
finish, however it ends. An *optional* one resolves as a soft one does (it
waits for the prerequisite to finish in any way and never cancels); it is its
own kind so an orchestrator can mark the edges it could do without, and read
them back as such. A waiting (blocked) dependent becomes ready once none
of its prerequisites is unfinished. A dependent held ``pending`` until its
``not_before`` time waits for that time (``when_due`` then decides), but a hard
prerequisite's failure still cancels it. Dependents that already left
``blocked`` (or ``pending``) are not affected.

The same rule, at submission: a new task with an unfinished prerequisite starts
blocked, otherwise ready, and a hard prerequisite that already failed or was
cancelled refuses the submission (``submission.check_prerequisite``).

Edits (AddDependency, RemoveDependency) apply only to a task that has not
started (``check_editable``): pending (held until its time), blocked, or ready
and never leased. A new unfinished prerequisite sends a ready task back to
blocked; removing the last unfinished one makes a blocked task ready
(``status_after_edit``); a pending one stays pending. An edge that
would close a cycle is refused (``check_no_cycle``), as at submission.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from ..errors import FailedPrecondition
from ..models.tasks import DepType, TaskStatus

WAITING = frozenset({TaskStatus.PENDING, TaskStatus.BLOCKED})
# A hard prerequisite that ended so can never complete.
HOPELESS = frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED})

PREREQUISITES_FINISHED = "prerequisites finished"


class Resolution(enum.Enum):
    UNAFFECTED = "unaffected"  # no longer waiting, or other prerequisites still unfinished
    READY = "ready"
    CANCEL = "cancel"


def dependent_after(
    dependent_status: TaskStatus,
    dep_type: DepType,
    outcome: TaskStatus,
    count_unfinished: Callable[[], int],
) -> Resolution:
    """What a dependent in ``dependent_status`` becomes now that a prerequisite it depends on
    (``dep_type``) ended as ``outcome``. ``count_unfinished()`` counts its prerequisites still
    unfinished; it is called only when the answer depends on it."""
    if dependent_status not in WAITING:
        return Resolution.UNAFFECTED
    if dep_type == DepType.HARD and outcome != TaskStatus.COMPLETED:
        return Resolution.CANCEL
    if dependent_status is TaskStatus.PENDING:  # held until its not_before: its time decides
        return Resolution.UNAFFECTED
    return Resolution.READY if count_unfinished() == 0 else Resolution.UNAFFECTED


def cancelled_reason(prerequisite_id: str, outcome: TaskStatus, reason: str) -> str:
    return f"prerequisite {prerequisite_id} {outcome.value}: {reason}"


def initial_status(unfinished_prereqs: int) -> tuple[TaskStatus, str]:
    """The status a new task starts in (from pending), and the reason."""
    if unfinished_prereqs:
        return TaskStatus.BLOCKED, f"waiting for {unfinished_prereqs} unfinished prerequisite(s)"
    return TaskStatus.READY, "no unfinished prerequisites"


NOT_BEFORE_HELD = "held until its not_before time"


def held_until(not_before: int | None, now: int) -> bool:
    """Whether a new task waits, pending, for its ``not_before`` time (a time past is no wait)."""
    return not_before is not None and not_before > now


def when_due(unfinished_prereqs: int) -> tuple[TaskStatus, str]:
    """A task held pending: the status it takes once its not_before time has come, and why."""
    status, reason = initial_status(unfinished_prereqs)
    return status, f"not_before reached; {reason}"


# ---------------------------------------------------------------- edits

PREREQUISITE_ADDED = "prerequisite {} added"
PREREQUISITE_REMOVED = "prerequisite {} removed"


def check_editable(task_id: str, status: TaskStatus, attempt: int) -> None:
    """Only a task that has not started has its prerequisites edited."""
    if status not in (TaskStatus.PENDING, TaskStatus.BLOCKED, TaskStatus.READY) or attempt > 0:
        started = f"is {status.value}" + (f" and has started (attempt {attempt})" if attempt else "")
        raise FailedPrecondition(
            f"task_id: task {task_id!r} {started}; only a task that has not started has its"
            " dependencies edited"
        )


def check_no_cycle(task_id: str, prerequisite_id: str, downstream: Callable[[], set[str]]) -> None:
    """``task_id`` may not wait on itself, nor on a task that (through its own prerequisites)
    waits on it; ``downstream()`` is every task that transitively waits on ``task_id``."""
    if prerequisite_id == task_id or prerequisite_id in downstream():
        raise FailedPrecondition(
            f"dependency.task_id: {prerequisite_id!r} waits (directly or not) on {task_id!r};"
            " the dependency would close a cycle"
        )


def status_after_edit(status: TaskStatus, unfinished_prereqs: int) -> TaskStatus:
    """A task not started, once its prerequisites changed: blocked while one is unfinished (one
    held pending until its time stays so)."""
    if status is TaskStatus.PENDING:
        return status
    return TaskStatus.BLOCKED if unfinished_prereqs else TaskStatus.READY
