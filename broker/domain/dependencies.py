"""What becomes of a dependent task when one of its prerequisites ends.

A *hard* dependency needs its prerequisite to complete: when the prerequisite
fails or is cancelled, the dependent is cancelled (and so, in turn, are its
own hard dependents). A *soft* dependency only waits for its prerequisite to
finish, however it ends. A waiting (blocked) dependent becomes ready once none
of its prerequisites is unfinished. Dependents that already left ``blocked``
(or ``pending``) are not affected.

The same rule, at submission: a new task with an unfinished prerequisite starts
blocked, otherwise ready, and a hard prerequisite that already failed or was
cancelled refuses the submission (``submission.check_prerequisite``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

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
    return Resolution.READY if count_unfinished() == 0 else Resolution.UNAFFECTED


def cancelled_reason(prerequisite_id: str, outcome: TaskStatus, reason: str) -> str:
    return f"prerequisite {prerequisite_id} {outcome.value}: {reason}"


def initial_status(unfinished_prereqs: int) -> tuple[TaskStatus, str]:
    """The status a new task starts in (from pending), and the reason."""
    if unfinished_prereqs:
        return TaskStatus.BLOCKED, f"waiting for {unfinished_prereqs} unfinished prerequisite(s)"
    return TaskStatus.READY, "no unfinished prerequisites"
