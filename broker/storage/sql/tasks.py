"""TaskQueue operations (the ``TaskStore`` part of both backends' storage classes).

The SQL lives in the ``tasks_*`` modules beside this one: ``tasks_submit``
(Submit, SubmitGraph), ``tasks_lease`` (lease, extend, complete, fail, cancel,
sweeper jobs), ``tasks_read`` (reads), ``tasks_tx`` (state changes, history,
dependency resolution) and ``tasks_rows`` (row conversion, capability sets).
The rules they apply are ``broker.domain``'s; every write returns the
``Changes`` it made, and the core decides whom to tell. The statements are the
dialect's (``Queries``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from ...clock import s_to_us
from ...domain.priority import PriorityPolicy
from ...errors import BrokerError
from ...models.sessions import CreateSessionInput, EndSessionInput, Session, SessionFilter
from ...models.tasks import (
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
from . import sessions
from . import tasks_deps as deps
from . import tasks_lease as lease
from . import tasks_read as read
from .connection import Connection, Engine
from .departures import Departures
from .queries import Queries
from .tasks_rows import Capsets, load_task
from .tasks_submit import start_held_job, submit_job
from .tasks_tx import TaskTx

if TYPE_CHECKING:
    from ...config import Settings

T = TypeVar("T")


class TaskOps(Departures):
    engine: Engine
    q: Queries
    settings: Settings
    task_rng: random.Random | None = None  # the retry jitter's (tests may fix it)

    # ------------------------------------------------------------ the write job

    @cached_property
    def _priority(self) -> PriorityPolicy:
        return PriorityPolicy.from_settings(self.settings)

    @cached_property
    def _capsets(self) -> Capsets:
        return Capsets()

    def _tx(self, conn: Connection, now: int, snapshots: bool) -> TaskTx:
        return TaskTx(conn, self.q, now, self._priority, snapshots, self.task_rng, self._capsets)

    async def _write(self, now: int, fn: Callable[[TaskTx], T], snapshots: bool = False) -> T:
        # Warm the cached properties before the job runs on the writer thread.
        _ = self._priority, self._capsets

        def job(conn: Connection) -> T:
            tx = self._tx(conn, now, snapshots)
            out = fn(tx)
            tx.flush()
            if tx.sessions_touched:
                sessions.settle(tx, tx.sessions_touched)
            return out

        return await self.engine.write(job)

    # ------------------------------------------------------------ writes

    async def submit_tasks(self, nodes: list[PlannedNode], now: int) -> SubmitResult:
        """Check and store tasks in one transaction (all or none)."""
        return await self._write(now, lambda tx: self._submit(tx, nodes))

    def _submit(self, tx: TaskTx, nodes: list[PlannedNode]) -> SubmitResult:
        """Submit inside a write job (Submit, SubmitGraph, a schedule's runs)."""
        s = self.settings
        return submit_job(
            tx,
            self._capsets,
            nodes,
            max_depth=s.max_depth,
            default_lease_us=s_to_us(s.default_lease_timeout_s),
            default_max_run_us=s_to_us(s.default_max_run_time_s) or None,
        )

    async def lease_tasks(self, agent_id: str, max_n: int, now: int) -> LeaseResult:
        """Lease up to ``max_n`` ready tasks the agent can run, within its free capacity."""
        return await self._write(now, lambda tx: lease.lease_job(tx, self._capsets, agent_id, max_n))

    async def return_leases(
        self, agent_id: str, leases: list[tuple[str, int]], now: int, *, snapshots: bool = False
    ) -> Changes:
        def job(tx: TaskTx) -> Changes:
            lease.return_leases_job(tx, agent_id, leases)
            return tx.changes

        return await self._write(now, job, snapshots)

    async def withdraw_leases(
        self, agent_id: str, leases: list[tuple[str, int]], now: int, reason: str, *, snapshots: bool = False
    ) -> Changes:
        def job(tx: TaskTx) -> Changes:
            lease.withdraw_leases_job(tx, agent_id, leases, reason)
            return tx.changes

        return await self._write(now, job, snapshots)

    async def extend_lease(self, inp: ExtendInput, now: int) -> tuple[int, Changes]:
        return await self._write(now, lambda tx: (lease.extend_job(tx, inp), tx.changes))

    async def complete_task(
        self, inp: CompleteInput, now: int, *, snapshots: bool = False
    ) -> tuple[Task, Changes]:
        return await self._write(now, lambda tx: (lease.complete_job(tx, inp), tx.changes), snapshots)

    async def complete_tasks(
        self, inps: list[CompleteInput], now: int, *, snapshots: bool = False
    ) -> tuple[list[Task | BrokerError], Changes]:
        return await self._write(now, lambda tx: (lease.complete_many_job(tx, inps), tx.changes), snapshots)

    async def fail_task(self, inp: FailInput, now: int, *, snapshots: bool = False) -> tuple[Task, Changes]:
        return await self._write(now, lambda tx: (lease.fail_job(tx, inp), tx.changes), snapshots)

    async def cancel_task(
        self, inp: CancelInput, now: int, *, snapshots: bool = False
    ) -> tuple[list[str], Changes]:
        return await self._write(now, lambda tx: (lease.cancel_job(tx, inp), tx.changes), snapshots)

    async def add_dependency(
        self, inp: DependencyEditInput, now: int, *, snapshots: bool = False
    ) -> tuple[Task, Changes]:
        assert inp.type is not None
        s, kind = self.settings, inp.type
        return await self._write(
            now,
            lambda tx: (
                deps.add_job(
                    tx,
                    inp.task_id,
                    inp.prerequisite_id,
                    kind,
                    inp.actor,
                    max_deps=s.max_dependencies,
                    max_depth=s.max_depth,
                ),
                tx.changes,
            ),
            snapshots,
        )

    async def remove_dependency(
        self, inp: DependencyEditInput, now: int, *, snapshots: bool = False
    ) -> tuple[Task, Changes]:
        return await self._write(
            now,
            lambda tx: (deps.remove_job(tx, inp.task_id, inp.prerequisite_id, inp.actor), tx.changes),
            snapshots,
        )

    async def sweep_tasks(self, now: int, limit: int = 500, *, snapshots: bool = False) -> Changes:
        """One job: lapsed leases end as failed attempts, due backoffs end, urgency is refreshed."""

        return await self._write(now, lambda tx: self._sweep_tasks_job(tx, limit), snapshots)

    def _sweep_tasks_job(self, tx: TaskTx, limit: int) -> Changes:
        lease.expire_leases_job(tx, limit)
        lease.time_out_runs_job(tx, limit)
        lease.release_due_backoffs(tx)
        start_held_job(tx, limit)
        lease.refresh_urgency_job(tx)
        return tx.changes

    async def release_backoffs(self, now: int) -> Changes:
        """Due retry backoffs end, and tasks held until a due not_before time start."""

        def job(tx: TaskTx) -> Changes:
            lease.release_due_backoffs(tx)
            start_held_job(tx)
            return tx.changes

        return await self._write(now, job)

    async def purge_tasks(self, finished_before: int, limit: int = 1000) -> int:
        return await self.engine.write(lambda conn: lease.purge_job(conn, self.q, finished_before, limit))

    def _requeue_tasks_of(
        self, conn: Connection, agent_id: str, now: int, reason: str
    ) -> tuple[list[str], Changes]:
        """Requeue the agent's running tasks (in the caller's transaction, AgentOps' departures);
        return their ids and what changed, which travels back in ``AgentGone.task_changes``.
        Departures are rare, so the changed tasks' snapshots are always taken."""
        tx = self._tx(conn, now, snapshots=True)
        ids = lease.requeue_of_job(tx, agent_id, reason)
        tx.flush()
        return ids, tx.changes

    # ------------------------------------------------------------ reads

    async def get_task(self, task_id: str) -> Task:
        return await self.engine.read(lambda conn: load_task(conn, self.q, task_id))

    async def list_tasks(self, flt: TaskFilter) -> tuple[list[Task], int | None]:
        return await self.engine.read(lambda conn: read.list_tasks(conn, self.q, flt))

    async def task_tree(self, q: TreeQuery) -> TreeSummary:
        return await self.engine.read(lambda conn: read.tree(conn, self.q, q))

    async def task_history(self, task_id: str) -> list[Transition]:
        return await self.engine.read(lambda conn: read.history(conn, self.q, task_id))

    async def task_graph(self, task_id: str, limit: int) -> tuple[list[Task], bool]:
        return await self.engine.read(lambda conn: read.graph(conn, self.q, task_id, limit))

    async def task_watch_snapshot(
        self, scope: WatchScope, value: str, limit: int = 10_000
    ) -> list[TaskEvent]:
        return await self.engine.read(lambda conn: read.scope_snapshot(conn, self.q, scope, value, limit))

    async def task_path(self, task_id: str) -> str:
        return await self.engine.read(lambda conn: read.path_of(conn, self.q, task_id))

    async def task_dependencies(self, task_id: str) -> tuple[list[DependencyEdge], list[DependencyEdge]]:
        return await self.engine.read(lambda conn: read.dependencies(conn, self.q, task_id))

    # ------------------------------------------------------------ sessions

    async def create_session(self, inp: CreateSessionInput, session_id: str, now: int) -> Session:
        return await self.engine.write(
            lambda conn: sessions.create_session_job(conn, self.q, inp, session_id, now)
        )

    async def get_session(self, session_id: str) -> Session:
        return await self.engine.read(lambda conn: sessions.load_session(conn, self.q, session_id))

    async def list_sessions(self, flt: SessionFilter) -> tuple[list[Session], tuple[int, str] | None]:
        return await self.engine.read(lambda conn: sessions.list_sessions(conn, self.q, flt))

    async def close_session(self, inp: EndSessionInput, now: int) -> tuple[Session, Changes]:
        return await self._write(now, lambda tx: (sessions.close_job(tx, inp), tx.changes))

    async def cancel_session(
        self, inp: EndSessionInput, now: int, *, snapshots: bool = False
    ) -> tuple[Session, list[str], Changes]:
        def job(tx: TaskTx) -> tuple[Session, list[str], Changes]:
            session, cancelled = sessions.cancel_job(tx, inp)
            return session, cancelled, tx.changes

        return await self._write(now, job, snapshots)

    async def archive_sessions(self, ended_before: int, limit: int = 1000) -> int:
        return await self.engine.write(lambda conn: sessions.archive_job(conn, self.q, ended_before, limit))
