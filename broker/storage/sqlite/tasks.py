"""TaskQueue operations on SQLite (the ``TaskStore`` part of ``SqliteStorage``).

The SQL lives in the ``tasks_*`` modules beside this one: ``tasks_submit``
(Submit, SubmitGraph), ``tasks_lease`` (lease, extend, complete, fail, cancel,
sweeper jobs), ``tasks_read`` (reads), ``tasks_tx`` (state changes, history,
dependency resolution) and ``tasks_rows`` (row conversion, capability sets).
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from ...clock import s_to_us
from ...domain.priority import PriorityPolicy
from ...errors import BrokerError
from ...models.tasks import (
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
from . import tasks_lease as lease
from . import tasks_read as read
from .tasks_rows import Capsets, load_task
from .tasks_submit import submit_job
from .tasks_tx import TaskTx

if TYPE_CHECKING:
    from ...config import Settings
    from .engine import SqliteEngine

T = TypeVar("T")


class TaskOps:
    engine: SqliteEngine
    settings: Settings

    # ------------------------------------------------------------ plumbing

    @cached_property
    def task_policy(self) -> PriorityPolicy:
        s = self.settings
        return PriorityPolicy(s.task_aging_s, s.task_urgency_weight, s.task_urgency_horizon_s)

    @cached_property
    def _capsets(self) -> Capsets:
        return Capsets()

    @cached_property
    def _gone_changes(self) -> dict[tuple[str, tuple[str, ...]], Changes]:
        return {}

    @cached_property
    def _gone_lock(self) -> threading.Lock:
        return threading.Lock()

    _task_capture: Callable[[], bool] = staticmethod(lambda: False)  # type: ignore[assignment]
    task_rng: random.Random | None = None

    def set_task_capture(self, capture: Callable[[], bool]) -> None:
        """``capture()`` says whether task snapshots are wanted (someone watches)."""
        self._task_capture = capture  # type: ignore[method-assign]

    def _tx(self, conn: sqlite3.Connection, now: int) -> TaskTx:
        return TaskTx(conn, now, self.task_policy, self._task_capture(), self.task_rng)

    async def _write(self, now: int, fn: Callable[[TaskTx], T]) -> T:
        def job(conn: sqlite3.Connection) -> T:
            tx = self._tx(conn, now)
            out = fn(tx)
            tx.flush()
            return out

        return await self.engine.write(job)

    # ------------------------------------------------------------ writes

    async def submit_tasks(self, nodes: list[PlannedNode], now: int) -> SubmitResult:
        """Check and store tasks in one transaction (all or none)."""
        s = self.settings
        # Warm the policy before the job runs on the writer thread.
        _ = self.task_policy, self._capsets
        return await self._write(
            now,
            lambda tx: submit_job(
                tx,
                self._capsets,
                nodes,
                max_depth=s.max_depth,
                default_lease_us=s_to_us(s.default_lease_timeout_s),
            ),
        )

    async def lease_tasks(self, agent_id: str, max_n: int, now: int) -> LeaseResult:
        """Lease up to ``max_n`` ready tasks the agent can run, within its free capacity."""
        _ = self.task_policy, self._capsets
        return await self._write(now, lambda tx: lease.lease_job(tx, self._capsets, agent_id, max_n))

    async def return_leases(self, agent_id: str, leases: list[tuple[str, int]], now: int) -> Changes:
        return await self._write(
            now, lambda tx: (lease.return_leases_job(tx, agent_id, leases), tx.changes)[1]
        )

    async def extend_lease(self, inp: ExtendInput, now: int) -> int:
        return await self._write(now, lambda tx: lease.extend_job(tx, inp))

    async def complete_task(self, inp: CompleteInput, now: int) -> tuple[Task, Changes]:
        return await self._write(now, lambda tx: (lease.complete_job(tx, inp), tx.changes))

    async def complete_tasks(
        self, inps: list[CompleteInput], now: int
    ) -> tuple[list[Task | BrokerError], Changes]:
        return await self._write(now, lambda tx: (lease.complete_many_job(tx, inps), tx.changes))

    async def fail_task(self, inp: FailInput, now: int) -> tuple[Task, Changes]:
        return await self._write(now, lambda tx: (lease.fail_job(tx, inp), tx.changes))

    async def cancel_task(self, inp: CancelInput, now: int) -> tuple[list[str], Changes]:
        return await self._write(now, lambda tx: (lease.cancel_job(tx, inp), tx.changes))

    async def sweep_tasks(self, now: int, limit: int = 500) -> Changes:
        """One job: lapsed leases end as failed attempts, due backoffs end, urgency is refreshed."""

        def job(tx: TaskTx) -> Changes:
            lease.expire_leases_job(tx, limit)
            lease.release_due_backoffs(tx)
            lease.refresh_urgency_job(tx)
            return tx.changes

        return await self._write(now, job)

    async def release_backoffs(self, now: int) -> Changes:
        return await self._write(now, lambda tx: (lease.release_due_backoffs(tx), tx.changes)[1])

    async def purge_tasks(self, finished_before: int, limit: int = 1000) -> int:
        return await self.engine.write(lambda conn: lease.purge_job(conn, finished_before, limit))

    def _requeue_tasks_of(self, conn: sqlite3.Connection, agent_id: str, now: int, reason: str) -> list[str]:
        """Requeue the agent's running tasks (same transaction as the caller); return their ids.

        What changed is kept for ``take_requeue_changes``, which the task queue
        calls once the registry has committed and tells it the agent is gone. It
        is keyed by the requeued ids too: two departures of one agent (offline,
        then deregistered) can both commit before the first one's listeners run,
        and the second (which requeues nothing) must not hide the first's changes.
        """
        tx = self._tx(conn, now)
        ids = lease.requeue_of_job(tx, agent_id, reason)
        tx.flush()
        with self._gone_lock:
            # Replaces an identical leftover of a rolled-back job.
            self._gone_changes[(agent_id, tuple(ids))] = tx.changes
        return ids

    def take_requeue_changes(self, agent_id: str, requeued: list[str]) -> Changes:
        with self._gone_lock:
            return self._gone_changes.pop((agent_id, tuple(requeued)), None) or Changes()

    # ------------------------------------------------------------ reads

    async def get_task(self, task_id: str) -> Task:
        return await self.engine.read(lambda conn: load_task(conn, task_id))

    async def list_tasks(self, flt: TaskFilter) -> tuple[list[Task], int | None]:
        return await self.engine.read(lambda conn: read.list_tasks(conn, flt))

    async def task_tree(self, task_id: str) -> TreeSummary:
        return await self.engine.read(lambda conn: read.tree(conn, task_id))

    async def task_history(self, task_id: str) -> list[Transition]:
        return await self.engine.read(lambda conn: read.history(conn, task_id))

    async def task_watch_snapshot(
        self, scope: WatchScope, value: str, limit: int = 10_000
    ) -> list[TaskEvent]:
        return await self.engine.read(lambda conn: read.scope_snapshot(conn, scope, value, limit))

    async def task_path(self, task_id: str) -> str:
        return await self.engine.read(lambda conn: read.path_of(conn, task_id))
