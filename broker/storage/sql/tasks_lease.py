"""Leases: lease, extend, complete, fail, cancel, and the sweeper's jobs.

Each function is one write job (run by the engine's writer, in a transaction shared with other
jobs). The rules are ``broker.domain``'s (free capacity, whether a lease is current, repeated
Complete/Fail, retry); the statements (``Queries.tasks``) load and store what they decide,
set-based where many rows move at once. The capacity count on ``agents`` is moved by triggers in
the same transaction as every lease and release.
"""

from __future__ import annotations

import json

from ...domain import capacity, leases, marks, retry, task_states
from ...domain.priority import best_first
from ...errors import BrokerError, FailedPrecondition, NotFound
from ...models.agents import Exposure
from ...models.tasks import (
    Assignment,
    CancelInput,
    Cancellation,
    CompleteInput,
    ExtendInput,
    FailInput,
    LeaseRef,
    LeaseResult,
    Task,
    TaskStatus,
)
from . import tasks_fair as fair
from .connection import Connection, Row
from .queries import Queries
from .tasks_rows import Capsets, load_task, task_of
from .tasks_tx import BROKER, TaskTx


def release_due_backoffs(tx: TaskTx) -> int:
    """Ready tasks whose retry backoff is over become leasable."""
    rows = tx.conn.execute(tx.q.tasks.due_backoff, (tx.now,)).fetchall()
    for task_id, _ in rows:
        row = tx.conn.execute(tx.q.tasks.end_backoff, (tx.now, task_id)).fetchone()
        tx.changes.ready.add(tuple(json.loads(row[0])))
        tx.leasable(row, row["dispatch_rank"])
    return len(rows)


def lease_job(tx: TaskTx, capsets: Capsets, agent_id: str, max_n: int) -> LeaseResult:
    conn, q, now = tx.conn, tx.q, tx.now
    a = conn.execute(q.tasks.lease_agent, (agent_id,)).fetchone()
    if a is None or a["status"] == "deregistered":
        raise NotFound(f"agent {agent_id!r} is not registered")
    caps = tuple(json.loads(a["capabilities"]))
    free = capacity.free_capacity(
        a["status"], a["max_concurrent_tasks"], a["current_task_count"], a["reported_free_capacity"]
    )
    n = capacity.lease_count(max_n, free)
    if n <= 0:
        return LeaseResult([], free, caps, a["status"], tx.changes)
    release_due_backoffs(tx)
    candidates: list[tuple[float, int, str]] = []
    governed: list[int] = []  # sets whose tasks go through keys and limits (tasks_fair.py)
    exposure = Exposure(a["exposure"])
    for cid in capsets.covered_by(
        conn, q, marks.lease_capabilities(caps, exposure, a["agent_type"], agent_id)
    ):
        if not marks.may_lease(exposure, capsets.by_id[cid]):
            continue
        if capsets.governed(cid):
            governed.append(cid)
        else:
            candidates += conn.execute(q.tasks.next_ready, (cid, n)).fetchall()
    choice = fair.choose(tx, capsets, candidates, governed, n) if governed else None
    chosen = best_first(candidates, n) if choice is None else choice.task_ids
    retry_at = None if choice is None else choice.retry_at
    out: list[Assignment] = []
    if not chosen:
        if choice is not None:
            fair.after_lease(tx, choice)
        return LeaseResult(out, free, caps, a["status"], tx.changes, retry_at)
    # One statement leases every chosen task: each statement is a round trip for the GIL between
    # the writer thread and the event loop, which dominated the writer's time under load.
    if choice is not None and choice.holds:
        sql = q.lease_holding(len(chosen))
        args: tuple[object, ...] = (agent_id, now, now, now, now, fair.holds_map(choice), *chosen)
    else:
        sql, args = q.lease(len(chosen)), (agent_id, now, now, now, now, *chosen)
    rows = {r["task_id"]: r for r in conn.execute(sql, args).fetchall()}
    if choice is not None:
        fair.after_lease(tx, choice)
    reason = task_states.leased(agent_id)
    for task_id in chosen:  # best first (RETURNING has no order)
        row = rows[task_id]
        tx.record(row, TaskStatus.READY, TaskStatus.RUNNING, reason, agent_id)
        task = task_of(conn, q, row)
        tx.changes.tasks[task_id] = task  # built anyway: a snapshot for free
        out.append(Assignment(task, row["attempt"], row["lease_expires_at"]))
    return LeaseResult(out, free - len(out), caps, a["status"], tx.changes, retry_at)


def return_leases_job(tx: TaskTx, agent_id: str, returned: list[tuple[str, int]]) -> None:
    """Leases nobody was told about go back to ready, and their attempt is not counted:
    the attempt number (the fencing token) was never handed out."""
    for task_id, attempt in returned:
        row = tx.fetch(task_id)
        if row is None or not leases.still_holds(
            TaskStatus(row["status"]), row["assigned_agent_id"], row["attempt"], agent_id, attempt
        ):
            continue
        tx.conn.execute(tx.q.tasks.return_lease, (tx.now, task_id))
        tx.release(row)
        tx.ready_caps(row)
        tx.leasable(row, row["dispatch_rank"])
        tx.record(row, TaskStatus.RUNNING, TaskStatus.READY, task_states.UNDELIVERED, BROKER)
        tx.snapshot(task_id)


def withdraw_leases_job(tx: TaskTx, agent_id: str, leases_: list[tuple[str, int]], reason: str) -> None:
    """Leases (task id, attempt) the agent can no longer finish (its credentials were withdrawn)
    go back to ready at once, as on a departure: the attempt has risen, no retry is spent. Leases
    that moved on since are left alone."""
    for task_id, attempt in leases_:
        row = tx.fetch(task_id)
        if row is None or not leases.still_holds(
            TaskStatus(row["status"]), row["assigned_agent_id"], row["attempt"], agent_id, attempt
        ):
            continue
        tx.changes.cancellations.append((agent_id, Cancellation(task_id, attempt, reason)))
        tx.depart(row, reason)


def held(tx: TaskTx, ref: LeaseRef) -> Row:
    """The task, if ``ref`` names its current lease; else FAILED_PRECONDITION (nothing changed)."""
    row = tx.fetch(ref.task_id)
    if row is None:
        raise NotFound(f"task {ref.task_id!r} not found")
    leases.check_current(
        ref,
        TaskStatus(row["status"]),
        row["assigned_agent_id"],
        row["attempt"],
        row["lease_expires_at"],
        tx.now,
    )
    return row


def extend_job(tx: TaskTx, inp: ExtendInput) -> int:
    row = held(tx, inp)
    until = leases.extended_until(tx.now, inp.extension_us, row["lease_timeout_us"])
    tx.conn.execute(tx.q.tasks.extend, (until, inp.progress, inp.status_note, tx.now, inp.task_id))
    return until


def complete_job(tx: TaskTx, inp: CompleteInput) -> Task:
    # One statement checks the lease and completes; only a refusal reads the
    # task to say why (and changes nothing).
    args = {
        "result": inp.result,
        "ctype": inp.result_content_type,
        "now": tx.now,
        "task": inp.task_id,
        "agent": inp.agent_id,
        "attempt": inp.attempt,
    }
    row = tx.conn.execute(tx.q.tasks.complete, args).fetchone()
    if row is None:
        done = tx.fetch(inp.task_id)
        if done is not None and _completed_by(done, inp):
            return task_of(tx.conn, tx.q, done)  # a retry of a Complete that committed: the same answer
        held(tx, inp)  # raises the precise refusal
        raise FailedPrecondition(f"task {inp.task_id}: the lease for attempt {inp.attempt} is over")
    tx.completed(row, inp.agent_id)
    return tx.changes.tasks.get(inp.task_id) or task_of(tx.conn, tx.q, row)


def _completed_by(row: Row, inp: CompleteInput) -> bool:
    return leases.completed_by(
        inp,
        TaskStatus(row["status"]),
        row["assigned_agent_id"],
        row["attempt"],
        row["result"],
        row["result_content_type"],
    )


def _failed_by(tx: TaskTx, inp: FailInput) -> bool:
    """Whether this very Fail already ended its attempt, judged by what the attempt's last
    transition out of running stored (``domain.leases.failed_by``)."""
    last = tx.conn.execute(tx.q.tasks.last_failure, (inp.task_id, inp.attempt)).fetchone()
    if last is None:
        return False
    failure = None if last["retryable"] is None else retry.Failure(last["error"], bool(last["retryable"]))
    return leases.failed_by(inp, last["actor"], failure)


def complete_many_job(tx: TaskTx, inps: list[CompleteInput]) -> list[Task | BrokerError]:
    """Several Completes in one job; a refused one (checked before any change) does not
    affect the others."""
    out: list[Task | BrokerError] = []
    for inp in inps:
        try:
            out.append(complete_job(tx, inp))
        except BrokerError as exc:
            out.append(exc)
    return out


def fail_job(tx: TaskTx, inp: FailInput) -> Task:
    try:
        row = held(tx, inp)
    except FailedPrecondition:
        if _failed_by(tx, inp):  # a retry of a Fail that committed: the task as it is now
            return load_task(tx.conn, tx.q, inp.task_id)
        raise
    tx.end_attempt(row, inp.error, inp.agent_id, retryable=not inp.non_retryable)
    return tx.changes.tasks.get(inp.task_id) or load_task(tx.conn, tx.q, inp.task_id)


def cancel_job(tx: TaskTx, inp: CancelInput) -> list[str]:
    row = tx.fetch(inp.task_id)
    if row is None:
        raise NotFound(f"task {inp.task_id!r} not found")
    scope = task_states.cancel_scope(TaskStatus(row["status"]), inp.cascade)
    if scope is None:
        raise FailedPrecondition(f"task {inp.task_id} is already {row['status']}")
    itself, descendants = scope
    reason = inp.reason or task_states.CANCELLED
    ids = tx.cancel(row, reason, inp.actor) if itself else []
    if descendants:
        ids += tx.cancel_subtree(row, reason, inp.actor)
    return ids


def expire_leases_job(tx: TaskTx, limit: int) -> int:
    rows = tx.conn.execute(tx.q.tasks.expired_leases, {"now": tx.now, "lim": limit}).fetchall()
    for r in rows:
        agent = r["assigned_agent_id"]
        reason = task_states.lease_expired(agent)
        tx.changes.cancellations.append((agent, Cancellation(r["task_id"], r["attempt"], reason)))
        tx.end_attempt(r, reason, BROKER)
    return len(rows)


def time_out_runs_job(tx: TaskTx, limit: int) -> int:
    """Attempts that ran past their task's max_run_time fail (retried per the retry policy), and
    their holders are told."""
    rows = tx.conn.execute(tx.q.tasks.timed_out, (tx.now, limit)).fetchall()
    for r in rows:
        agent = r["assigned_agent_id"]
        reason = task_states.timed_out(r["max_run_us"])
        tx.changes.cancellations.append((agent, Cancellation(r["task_id"], r["attempt"], reason)))
        tx.end_attempt(r, reason, BROKER)
    return len(rows)


def requeue_of_job(tx: TaskTx, agent_id: str, reason: str) -> list[str]:
    """The agent is gone: its running tasks are requeued at once. A departure is not a failure:
    the attempt number has risen, but no retry is spent (``TaskTx.depart``)."""
    rows = tx.conn.execute(tx.q.tasks.holder_running, (agent_id,)).fetchall()
    for r in rows:
        tx.changes.cancellations.append((agent_id, Cancellation(r["task_id"], r["attempt"], reason)))
        tx.depart(r, reason)
    return [r["task_id"] for r in rows]


def refresh_urgency_job(tx: TaskTx) -> int:
    """Re-rank ready tasks whose deadline urgency moved up a step since it was stored."""
    horizon = tx.policy.urgency_window_end(tx.now)
    rows = tx.conn.execute(tx.q.tasks.urgency_window, (horizon,)).fetchall()
    changed = 0
    for r in rows:
        u = tx.policy.urgency(r["deadline"], tx.now)
        if u != r["urgency"]:
            rank = tx.policy.rank(r["priority"], u, r["created_at"])
            tx.conn.execute(tx.q.tasks.set_urgency, (u, rank, r["task_id"]))
            tx.leasable(r, rank)
            changed += 1
    return changed


def purge_job(conn: Connection, q: Queries, before: int, limit: int) -> int:
    """Delete finished tasks older than ``before`` (leaves first: a parent goes after its children),
    and the key queues and limit counts idle since then."""
    conn.execute(q.limits.purge_queues, (before,))
    conn.execute(q.limits.purge_usage, (before,))
    return conn.execute(q.tasks.purge, (before, limit)).rowcount
