"""The task state machine: which transitions exist, and the reasons recorded for them.

::

    pending -> blocked | ready | cancelled     (submitted: waiting for prerequisites, or not)
    blocked -> ready | cancelled               (prerequisites finished; or a hard one failed)
    ready   -> running | blocked | cancelled   (leased; a prerequisite added before it started)
    running -> ready | completed | failed | cancelled
               (retry, departure or undelivered lease; Complete; no retries left; Cancel)

completed, failed and cancelled are final. Every transition is recorded in the
task's history with a reason; the reasons of the decisions made elsewhere live
with their rule (``retry``: a failed or departed attempt; ``dependencies``: a
prerequisite ending; ``submission``: the first status). The database enforces
the same graph as a second line of defence, with triggers generated from
``TRANSITIONS`` and ``INITIAL`` (broker/storage/sqlite/triggers.py,
broker/storage/postgres/triggers.py; tests/unit/test_triggers.py fails when a
migrated schema does not run what they generate).
"""

from __future__ import annotations

from ..errors import FailedPrecondition
from ..models.tasks import FINISHED, TaskStatus

S = TaskStatus

TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.PENDING: frozenset({S.BLOCKED, S.READY, S.CANCELLED}),
    S.BLOCKED: frozenset({S.READY, S.CANCELLED}),
    S.READY: frozenset({S.RUNNING, S.BLOCKED, S.CANCELLED}),
    S.RUNNING: frozenset({S.READY, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}

# A task is inserted in one of these (and recorded as coming from pending).
INITIAL = frozenset({S.PENDING, S.BLOCKED, S.READY})


class InvalidTransition(AssertionError):
    """A write tried a transition the state machine does not have: a bug, never the caller's fault."""


def allowed(frm: TaskStatus | None, to: TaskStatus) -> bool:
    """Whether ``frm -> to`` is a transition (``None -> pending``: the submission itself)."""
    if frm is None:
        return to == S.PENDING
    return to in TRANSITIONS[frm]


def check(frm: TaskStatus | None, to: TaskStatus) -> None:
    if not allowed(frm, to):
        raise InvalidTransition(f"invalid task state transition {frm} -> {to}")


def is_finished(status: TaskStatus) -> bool:
    return status in FINISHED


def cancellable(status: TaskStatus) -> bool:
    """Cancel applies to every unfinished task."""
    return S.CANCELLED in TRANSITIONS[status]


def cancel_scope(status: TaskStatus, cascade: bool) -> tuple[bool, bool] | None:
    """What a Cancel of a task in ``status`` ends: (the task itself, its unfinished descendants),
    or None when it ends nothing and is refused. A finished task is not cancelled again, but a
    cascade still reaches its unfinished descendants (a finished parent's leftover children)."""
    if cancellable(status):
        return True, cascade
    return (False, True) if cascade else None


def tree_progress(counts: dict[TaskStatus, int], running_progress: int) -> float:
    """0-100 for a set of tasks: a finished task counts 100, a running one its reported progress
    (``running_progress`` is their sum), any other 0."""
    total = sum(counts.values())
    if not total:
        return 0.0
    finished = sum(n for status, n in counts.items() if is_finished(status))
    return (100.0 * finished + running_progress) / total


# ---------------------------------------------------------------- reasons

SUBMITTED = "submitted"
COMPLETED = "completed"
CANCELLED = "cancelled"  # a Cancel without a reason
UNDELIVERED = "lease not delivered: the agent's call ended"


def leased(agent_id: str) -> str:
    return f"leased to {agent_id}"


def lease_expired(agent_id: str) -> str:
    return f"lease of agent {agent_id} expired"


def timed_out(max_run_us: int) -> str:
    """The error of an attempt that ran past its task's max_run_time."""
    return f"timeout: the attempt ran longer than its max_run_time of {max_run_us / 1_000_000:g} s"


def ancestor_cancelled(ancestor_id: str, reason: str) -> str:
    return f"ancestor {ancestor_id} cancelled: {reason}"


REPLAYABLE = (S.FAILED, S.CANCELLED)
REPLAY_OF = "a2a.replay_of"  # metadata key of a replayed copy: the id of the task it copies


def replay_refusal(task_id: str, status: TaskStatus) -> FailedPrecondition | None:
    """Only a task that ended without success is replayed (as a new task with a fresh set of
    attempts; the original keeps its history)."""
    if status in REPLAYABLE:
        return None
    return FailedPrecondition(
        f"task {task_id!r} is {status.value}: only a failed or cancelled task is replayed"
    )
