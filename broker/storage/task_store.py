"""The task-queue part of the Storage protocol.

Every write is one transaction that returns only once committed, and returns
a ``Changes`` (transitions, newly leasable work, released capacity,
cancellations, backoffs) for the core to announce after the commit: storage
tells nobody itself. Capacity counts on agents move in the same transaction as
every lease and release. The rules a backend applies are ``broker.domain``'s.

``snapshots=True`` asks a write to return, in ``Changes.tasks``, each task it
changed as it was right after the change (watchers want them; reading them
costs, so they are taken only when asked for). A departed agent's requeued
tasks come back in ``AgentGone.task_changes`` (``AgentStore``), snapshots included.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import BrokerError
from ..models.limits import KeyUsage, Limit, LimitInput
from ..models.sessions import CreateSessionInput, EndSessionInput, Session, SessionFilter
from ..models.tasks import (
    CancelInput,
    Changes,
    CompleteInput,
    DependencyEdge,
    DependencyEditInput,
    ExtendInput,
    FailInput,
    LeaseResult,
    PlannedNode,
    SubmitResult,
    Task,
    TaskEvent,
    TaskFilter,
    Transition,
    TreeQuery,
    TreeSummary,
    WatchScope,
)


class TaskStore(Protocol):
    # -- concurrency limits (the rules: ``domain.fairness``; dispatch applies them in lease_tasks)

    async def set_limit(self, inp: LimitInput, epoch: int, now: int) -> Limit:
        """Create or replace the limit named ``inp.name``. ``epoch`` (a random number, new for
        each change) tells every broker that the limits changed."""

    async def list_limits(self) -> list[Limit]: ...

    async def delete_limit(self, name: str, epoch: int) -> None:
        """NotFound for an unknown name."""

    async def concurrency_keys(self, prefix: str, limit: int, now: int) -> list[KeyUsage]:
        """The keys starting with ``prefix`` with the most tasks (running and leasable)."""

    # -- tasks

    async def submit_tasks(self, nodes: list[PlannedNode], now: int) -> SubmitResult:
        """Check references and depth limits (``domain.submission``) and store the tasks, all or
        none. NotFound (parent, prerequisite), FailedPrecondition (hard prerequisite already
        failed), ResourceExhausted (depth), AlreadyExists (idempotency key with another spec).
        The changes include every new task's snapshot."""

    async def lease_tasks(self, agent_id: str, max_n: int, now: int) -> LeaseResult:
        """Lease up to max_n ready tasks the agent covers, best first, within its free capacity
        (``domain.capacity``); none while it is in maintenance or offline. The changes include
        every leased task's snapshot."""

    async def return_leases(
        self, agent_id: str, leases: list[tuple[str, int]], now: int, *, snapshots: bool = False
    ) -> Changes:
        """Hand back leases (task id, attempt) that never reached the agent: ready again,
        the attempt not counted. Leases that moved on since are left alone."""

    async def withdraw_leases(
        self, agent_id: str, leases: list[tuple[str, int]], now: int, reason: str, *, snapshots: bool = False
    ) -> Changes:
        """Hand back leases (task id, attempt) the agent can no longer finish (its credentials
        were withdrawn): ready again at once, as on a departure (the attempt has risen, no retry
        is spent). Leases that moved on since are left alone."""

    async def extend_lease(self, inp: ExtendInput, now: int) -> tuple[int, Changes]:
        """Extend the lease ``inp`` names; return the new expiry. FailedPrecondition when stale."""

    async def complete_task(
        self, inp: CompleteInput, now: int, *, snapshots: bool = False
    ) -> tuple[Task, Changes]:
        """Complete the leased task; unblock dependents in the same transaction. A repeat of the
        Complete that completed it answers the same (``domain.leases.completed_by``)."""

    async def complete_tasks(
        self, inps: list[CompleteInput], now: int, *, snapshots: bool = False
    ) -> tuple[list[Task | BrokerError], Changes]:
        """Several Completes in one transaction, each judged on its own: a refused one
        comes back as its error (having changed nothing) beside the others' tasks."""

    async def fail_task(self, inp: FailInput, now: int, *, snapshots: bool = False) -> tuple[Task, Changes]:
        """End the attempt: retry after backoff, or fail for good and cancel hard dependents
        (``domain.retry``, ``domain.dependencies``)."""

    async def cancel_task(
        self, inp: CancelInput, now: int, *, snapshots: bool = False
    ) -> tuple[list[str], Changes]:
        """Cancel a task (and with cascade its descendants) and hard dependents; return the ids."""

    async def add_dependency(
        self, inp: DependencyEditInput, now: int, *, snapshots: bool = False
    ) -> tuple[Task, Changes]:
        """Make a task that has not started wait on one more prerequisite (``domain.dependencies``:
        FailedPrecondition when started or on a cycle; AlreadyExists for the edge with another kind)."""

    async def remove_dependency(
        self, inp: DependencyEditInput, now: int, *, snapshots: bool = False
    ) -> tuple[Task, Changes]:
        """Drop one prerequisite of a task that has not started (NotFound: no such edge)."""

    async def sweep_tasks(self, now: int, limit: int = 500, *, snapshots: bool = False) -> Changes:
        """One transaction: end lapsed leases as failed attempts (up to ``limit``), make tasks
        whose retry backoff is over leasable, start held tasks whose not_before has come, re-rank
        ready tasks whose deadline urgency stepped up."""

    async def release_backoffs(self, now: int) -> Changes:
        """Make ready tasks whose retry backoff is over leasable, and start tasks held pending
        whose not_before time has come (ready, or blocked on a prerequisite)."""

    async def purge_tasks(self, finished_before: int, limit: int = 1000) -> int:
        """Delete finished tasks older than the retention period (leaves first)."""

    async def get_task(self, task_id: str) -> Task: ...

    async def list_tasks(self, flt: TaskFilter) -> tuple[list[Task], int | None]:
        """One page by submission order; the second item is the last seq when more may follow."""

    async def task_tree(self, q: TreeQuery) -> TreeSummary: ...

    async def task_history(self, task_id: str) -> list[Transition]: ...

    async def task_graph(self, task_id: str, limit: int) -> tuple[list[Task], bool]:
        """The tasks connected to one by dependency and parent-child edges, nearest first, at most
        ``limit`` (True: more are connected); NotFound for an unknown task."""

    async def task_watch_snapshot(
        self, scope: WatchScope, value: str, limit: int = 10_000
    ) -> list[TaskEvent]:
        """The tasks a Watch covers, as they are now."""

    async def task_path(self, task_id: str) -> str: ...

    async def task_dependencies(self, task_id: str) -> tuple[list[DependencyEdge], list[DependencyEdge]]:
        """A task's prerequisites and dependents, each with its state (NotFound)."""

    # -- orchestration sessions (sql/sessions.py) ---------------------------------------

    async def create_session(self, inp: CreateSessionInput, session_id: str, now: int) -> Session:
        """Store a new active session (NotFound: its parent session; AlreadyExists: the id)."""

    async def get_session(self, session_id: str) -> Session:
        """One session with its task counts (NotFound)."""

    async def list_sessions(self, flt: SessionFilter) -> tuple[list[Session], tuple[int, str] | None]:
        """A page of sessions, oldest first, and the position of the last when more follow."""

    async def close_session(self, inp: EndSessionInput, now: int) -> tuple[Session, Changes]:
        """No more tasks: the session ends once every task finished (at once if they have)."""

    async def cancel_session(
        self, inp: EndSessionInput, now: int, *, snapshots: bool = False
    ) -> tuple[Session, list[str], Changes]:
        """End the session as cancelled, with every unfinished task in it."""

    async def archive_sessions(self, ended_before: int, limit: int = 1000) -> int:
        """Archive sessions ended before ``ended_before``; delete archived ones with no task left."""
