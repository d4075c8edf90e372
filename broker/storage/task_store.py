"""The task-queue part of the Storage protocol.

Every write is one transaction that returns only once committed, and returns
a ``Changes`` (transitions, newly leasable work, released capacity,
cancellations) for the core to announce after the commit. Capacity counts on
agents move in the same transaction as every lease and release.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..domain.priority import PriorityPolicy
from ..errors import BrokerError
from ..models.tasks import (
    CancelInput,
    Changes,
    CompleteInput,
    ExtendInput,
    FailInput,
    LeaseResult,
    PlannedNode,
    SubmitResult,
    Task,
    TaskEvent,
    TaskFilter,
    Transition,
    TreeSummary,
    WatchScope,
)


class TaskStore(Protocol):
    @property
    def task_policy(self) -> PriorityPolicy:
        """The calculated-priority arithmetic this backend stores ranks with."""

    def set_task_capture(self, capture: Callable[[], bool]) -> None:
        """Register the test for whether writes should capture task snapshots (for watchers)."""

    async def submit_tasks(self, nodes: list[PlannedNode], now: int) -> SubmitResult:
        """Check references and depth limits and store the tasks, all or none.
        NotFound (parent, prerequisite), FailedPrecondition (hard prerequisite already failed),
        ResourceExhausted (depth), AlreadyExists (idempotency key with another spec)."""

    async def lease_tasks(self, agent_id: str, max_n: int, now: int) -> LeaseResult:
        """Lease up to max_n ready tasks the agent covers, best first, within its free capacity
        (and its reported free capacity); none while it is in maintenance or offline."""

    async def return_leases(self, agent_id: str, leases: list[tuple[str, int]], now: int) -> Changes:
        """Hand back leases (task id, attempt) that never reached the agent: ready again,
        the attempt not counted. Leases that moved on since are left alone."""

    async def extend_lease(self, inp: ExtendInput, now: int) -> int:
        """Extend the lease ``inp`` names; return the new expiry. FailedPrecondition when stale."""

    async def complete_task(self, inp: CompleteInput, now: int) -> tuple[Task, Changes]:
        """Complete the leased task; unblock dependents in the same transaction."""

    async def complete_tasks(
        self, inps: list[CompleteInput], now: int
    ) -> tuple[list[Task | BrokerError], Changes]:
        """Several Completes in one transaction, each judged on its own: a refused one
        comes back as its error (having changed nothing) beside the others' tasks."""

    async def fail_task(self, inp: FailInput, now: int) -> tuple[Task, Changes]:
        """End the attempt: retry after backoff, or fail for good and cancel hard dependents."""

    async def cancel_task(self, inp: CancelInput, now: int) -> tuple[list[str], Changes]:
        """Cancel a task (and with cascade its descendants) and hard dependents; return the ids."""

    async def sweep_tasks(self, now: int, limit: int = 500) -> Changes:
        """One transaction: end lapsed leases as failed attempts (up to ``limit``), make tasks
        whose retry backoff is over leasable, re-rank ready tasks whose deadline urgency stepped up."""

    async def release_backoffs(self, now: int) -> Changes:
        """Make ready tasks whose retry backoff is over leasable."""

    async def purge_tasks(self, finished_before: int, limit: int = 1000) -> int:
        """Delete finished tasks older than the retention period (leaves first)."""

    def take_requeue_changes(self, agent_id: str, requeued: list[str]) -> Changes:
        """What requeueing a departed agent's tasks changed (after the registry's commit)."""

    async def get_task(self, task_id: str) -> Task: ...

    async def list_tasks(self, flt: TaskFilter) -> tuple[list[Task], int | None]:
        """One page by submission order; the second item is the last seq when more may follow."""

    async def task_tree(self, task_id: str) -> TreeSummary: ...

    async def task_history(self, task_id: str) -> list[Transition]: ...

    async def task_watch_snapshot(
        self, scope: WatchScope, value: str, limit: int = 10_000
    ) -> list[TaskEvent]:
        """The tasks a Watch covers, as they are now."""

    async def task_path(self, task_id: str) -> str: ...
