"""Schedules (the ``ScheduleStore`` part of both backends' storage classes): stored rows, and a
schedule's runs inside task write jobs.

A firing is one job: it reads the schedule, asks ``domain.schedules.plan`` which firings run,
claims them (the next firing moves on only if it is still the one read: on PostgreSQL two brokers
firing the same schedule at once cannot both pass, and the loser's run again finds it not due),
submits each run's task with the firing's idempotency key (a second line of defence: the same
firing can never store two tasks) and records what it did, in the same transaction. Everything it
decides comes from what it reads and from ``now``, fixed before it was queued, so it may be run
again whole (storage/base.py). The statements are each dialect's (``Queries.schedules``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ...domain import schedules as rules
from ...domain import task_states
from ...errors import AlreadyExists, BrokerError, FailedPrecondition, NotFound
from ...models.schedules import (
    Fired,
    OverlapPolicy,
    Schedule,
    ScheduleFilter,
    ScheduleSpecInput,
    ScheduleStatus,
)
from ...models.tasks import Changes, PlannedNode, SubmitResult, Task, TaskStatus
from .connection import Connection, Engine, Row
from .queries import Queries
from .tasks_tx import TaskTx

T = TypeVar("T")
S = ScheduleStatus


def spec_json(spec: ScheduleSpecInput) -> str:
    """A spec as stored: JSON, the task's payload in base64."""
    value = spec.model_dump()
    value["task"]["payload"] = base64.b64encode(spec.task.payload).decode()
    return json.dumps(value, separators=(",", ":"))


def spec_of(text: str) -> ScheduleSpecInput:
    value = json.loads(text)
    value["task"]["payload"] = base64.b64decode(value["task"]["payload"])
    return ScheduleSpecInput.model_validate(value)


def _schedule(row: Row) -> Schedule:
    return Schedule(
        schedule_id=row["schedule_id"],
        spec=spec_of(row["spec"]),
        status=S(row["status"]),
        note=row["note"],
        next_fire_at=row["next_fire_at"],
        next_due_at=row["next_due_at"],
        last_fire_at=row["last_fire_at"],
        last_task_id=row["last_task_id"],
        fired_count=row["fired_count"],
        skipped_count=row["skipped_count"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _row(conn: Connection, q: Queries, schedule_id: str) -> Row:
    row: Row | None = conn.execute(q.schedules.fetch, (schedule_id,)).fetchone()
    if row is None:
        raise NotFound(f"schedule {schedule_id!r} not found")
    return row


def load_schedule(conn: Connection, q: Queries, schedule_id: str) -> Schedule:
    return _schedule(_row(conn, q, schedule_id))


def list_schedules_sql(p: str, flt: ScheduleFilter) -> tuple[str, list[Any]]:
    """The statement of one ListSchedules page, by id (the primary key, or idx_schedules_status
    with a status); ``p``: the dialect's parameter marker."""
    where: list[str] = []
    args: list[Any] = []
    if flt.status is not None:
        where.append(f"status = {p}")
        args.append(flt.status.value)
    if flt.after is not None:
        where.append(f"schedule_id > {p}")
        args.append(flt.after)
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT * FROM schedules {cond} ORDER BY schedule_id LIMIT {p}", [*args, flt.page_size + 1]


def _ended(schedule_id: str) -> FailedPrecondition:
    return FailedPrecondition(f"schedule {schedule_id!r} has ended: it fires no more")


class ScheduleOps:
    """Mixed into the storage classes after ``TaskOps``, whose write job and submission it uses."""

    engine: Engine
    q: Queries

    if TYPE_CHECKING:

        async def _write(self, now: int, fn: Callable[[TaskTx], T], snapshots: bool = False) -> T: ...

        def _submit(self, tx: TaskTx, nodes: list[PlannedNode]) -> SubmitResult: ...

    async def create_schedule(
        self, schedule_id: str, spec: ScheduleSpecInput, paused: bool, first_fire: int, now: int
    ) -> Schedule:
        q = self.q

        def job(conn: Connection) -> Schedule:
            if conn.execute(q.schedules.exists, (schedule_id,)).fetchone() is not None:
                raise AlreadyExists(f"schedule {schedule_id!r} already exists")
            values = {
                "schedule_id": schedule_id,
                "spec": spec_json(spec),
                "status": (S.PAUSED if paused else S.ACTIVE).value,
                "next_fire_at": first_fire,
                "next_due_at": rules.due_at(schedule_id, first_fire, spec.jitter_us),
                "now": now,
            }
            conn.execute(q.schedules.insert, values)
            return load_schedule(conn, q, schedule_id)

        return await self.engine.write(job)

    async def get_schedule(self, schedule_id: str) -> Schedule:
        return await self.engine.read(lambda conn: load_schedule(conn, self.q, schedule_id))

    async def list_schedules(self, flt: ScheduleFilter) -> tuple[list[Schedule], str | None]:
        def read(conn: Connection) -> tuple[list[Schedule], str | None]:
            sql, args = list_schedules_sql(self.q.param, flt)
            rows = conn.execute(sql, args).fetchall()
            more = len(rows) > flt.page_size
            found = [_schedule(r) for r in rows[: flt.page_size]]
            return found, found[-1].schedule_id if more and found else None

        return await self.engine.read(read)

    async def pause_schedule(self, schedule_id: str, note: str, now: int) -> Schedule:
        q = self.q

        def job(conn: Connection) -> Schedule:
            row = _row(conn, q, schedule_id)
            if row["status"] == S.ENDED:
                raise _ended(schedule_id)
            sql = q.schedules.pause if row["status"] == S.ACTIVE else q.schedules.set_note
            conn.execute(sql, (note, now, schedule_id))
            return load_schedule(conn, q, schedule_id)

        return await self.engine.write(job)

    async def resume_schedule(self, schedule_id: str, now: int) -> Schedule:
        q = self.q

        def job(conn: Connection) -> Schedule:
            row = _row(conn, q, schedule_id)
            if row["status"] == S.ENDED:
                raise _ended(schedule_id)
            if row["status"] == S.PAUSED:
                spec = spec_of(row["spec"])
                at = rules.fires_from(spec, row["created_at"], now)
                due = None if at is None else rules.due_at(schedule_id, at, spec.jitter_us)
                status = S.ENDED if at is None else S.ACTIVE
                conn.execute(q.schedules.resume, (status.value, at, due, now, schedule_id))
            return load_schedule(conn, q, schedule_id)

        return await self.engine.write(job)

    async def delete_schedule(self, schedule_id: str) -> None:
        def job(conn: Connection) -> None:
            if conn.execute(self.q.schedules.delete, (schedule_id,)).rowcount == 0:
                raise NotFound(f"schedule {schedule_id!r} not found")

        await self.engine.write(job)

    async def due_schedules(self, now: int, limit: int) -> list[str]:
        def read(conn: Connection) -> list[str]:
            return [r[0] for r in conn.execute(self.q.schedules.due, (now, limit)).fetchall()]

        return await self.engine.read(read)

    async def next_schedule_due(self) -> int | None:
        def read(conn: Connection) -> int | None:
            row = conn.execute(self.q.schedules.next_due).fetchone()
            return None if row is None else int(row[0])

        return await self.engine.read(read)

    async def fire_schedule(
        self, schedule_id: str, now: int, *, snapshots: bool = False
    ) -> tuple[Fired, Changes]:
        return await self._write(now, lambda tx: (self._fire_job(tx, schedule_id), tx.changes), snapshots)

    async def trigger_schedule(
        self, schedule_id: str, now: int, overlap: OverlapPolicy | None, *, snapshots: bool = False
    ) -> tuple[Fired, Changes]:
        return await self._write(
            now, lambda tx: (self._trigger_job(tx, schedule_id, overlap), tx.changes), snapshots
        )

    # ------------------------------------------------------------ runs

    def _fire_job(self, tx: TaskTx, schedule_id: str) -> Fired:
        conn, q, now = tx.conn, tx.q, tx.now
        row = conn.execute(q.schedules.fetch, (schedule_id,)).fetchone()
        if row is None or row["status"] != S.ACTIVE or row["next_due_at"] > now:
            return Fired(None, [])  # deleted, paused, or fired meanwhile (by another broker)
        spec = spec_of(row["spec"])
        plan = rules.plan(spec, schedule_id, row["created_at"], row["next_fire_at"], now)
        at = plan.next_fire
        due = None if at is None else rules.due_at(schedule_id, at, spec.jitter_us)
        status = S.ENDED if at is None else S.ACTIVE
        claim = (at, due, status.value, now, schedule_id, row["next_fire_at"])
        if conn.execute(q.schedules.claim, claim).rowcount == 0:
            return Fired(None, [])
        run = _Run(self, tx, row, spec)
        for fire_at in plan.fire:
            run.once(fire_at, spec.overlap, rules.firing_key(schedule_id, row["created_at"], fire_at))
        run.record(plan.skipped)
        return Fired(load_schedule(conn, q, schedule_id), run.tasks)

    def _trigger_job(self, tx: TaskTx, schedule_id: str, overlap: OverlapPolicy | None) -> Fired:
        row = _row(tx.conn, tx.q, schedule_id)
        if row["status"] == S.ENDED:
            raise _ended(schedule_id)
        spec = spec_of(row["spec"])
        run = _Run(self, tx, row, spec, refusals_raise=True)
        skipped = run.once(tx.now, overlap or spec.overlap, None)
        run.record(0)
        return Fired(load_schedule(tx.conn, tx.q, schedule_id), run.tasks, skipped or "")


class _Run:
    """The runs of one schedule inside one write job: overlap, submission, the record."""

    def __init__(
        self, ops: ScheduleOps, tx: TaskTx, row: Row, spec: ScheduleSpecInput, refusals_raise: bool = False
    ) -> None:
        self.ops, self.tx, self.spec = ops, tx, spec
        self.schedule_id: str = row["schedule_id"]
        self.previous: str | None = row["last_task_id"]
        self.refusals_raise = refusals_raise
        self.tasks: list[Task] = []
        self.last_at: int | None = None
        self.skipped = 0
        self.error: str | None = None

    def _unfinished(self, task_id: str | None) -> bool:
        if task_id is None:
            return False
        found = self.tx.conn.execute(self.tx.q.tasks.prereq, (task_id,)).fetchone()
        return found is not None and not task_states.is_finished(TaskStatus(found["status"]))

    def once(self, at: int, overlap: OverlapPolicy, key: str | None) -> str | None:
        """One run for the firing at ``at``: submitted, or skipped (returns why)."""
        tx, q = self.tx, self.tx.q
        action = rules.overlap_action(overlap, self._unfinished(self.previous))
        if action is rules.Action.SKIP:
            assert self.previous is not None
            self.skipped += 1
            return rules.overlap_skipped(self.previous)
        spec = rules.firing_spec(self.spec.task, self.schedule_id, at, key)
        # A refused submission changes nothing of the job's own state (its checks come before any
        # change); the savepoint takes back what it wrote, so that the firing is still recorded.
        tx.conn.execute(q.schedules.savepoint)
        try:
            res = self.ops._submit(tx, [PlannedNode("spec.task", spec)])
        except BrokerError as exc:
            tx.conn.execute(q.schedules.rollback_to)
            tx.conn.execute(q.schedules.release)
            if self.refusals_raise:
                raise
            self.skipped += 1
            self.error = str(exc)
            return self.error
        tx.conn.execute(q.schedules.release)
        task = res.tasks[0]
        if action is rules.Action.CANCEL_PREVIOUS and self.previous is not None:
            previous = tx.fetch(self.previous)
            if previous is not None:
                tx.cancel(previous, rules.superseded(self.schedule_id, at), f"schedule {self.schedule_id}")
        if not res.duplicate[0]:
            self.tasks.append(task)
        self.previous, self.last_at = task.task_id, at
        return None

    def record(self, missed: int) -> None:
        tx = self.tx
        tx.conn.execute(
            tx.q.schedules.record,
            (
                self.last_at,
                self.previous if self.last_at is not None else None,
                len(self.tasks),
                self.skipped + missed,
                self.error,
                tx.now,
                self.schedule_id,
            ),
        )
