"""State changes of tasks inside one write transaction.

``TaskTx`` is what every task write job works through: it records each
transition in ``task_state_history`` as it makes it, resolves dependencies in
the same transaction, and collects a ``Changes`` for the core to announce after
the commit. It runs on the writer thread and never awaits. What each change is
(the next status, retry or failure, a dependent's fate, the rank) is decided by
the pure rules of ``broker.domain``; this module stores it.
"""

from __future__ import annotations

import json
import random
from functools import partial

from ...domain import dependencies, retry, task_states
from ...domain.dependencies import Resolution
from ...domain.fairness import LimitBook
from ...domain.priority import PriorityPolicy
from ...models.tasks import Cancellation, Changes, DepType, TaskStatus, Transition
from .connection import Connection, Row
from .queries import Queries
from .tasks_rows import Capsets, load_task, subtree_bounds

BROKER = "broker"
S = TaskStatus


class TaskTx:
    def __init__(
        self,
        conn: Connection,
        q: Queries,
        now: int,
        policy: PriorityPolicy,
        snapshots: bool,
        rng: random.Random | None = None,
        capsets: Capsets | None = None,
    ) -> None:
        self.conn = conn
        self.q = q
        self.now = now
        self.policy = policy
        self.snapshots = snapshots  # keep each changed task as it is after the change (Changes.tasks)
        self.rng = rng
        self.capsets = capsets  # the limits in force (None: assume every end frees room under one)
        self._book: LimitBook | None = None
        self.changes = Changes()
        self._history: list[tuple[str, str | None, str, str, str, int, int, str | None, int | None]] = []
        # Sessions with a task that finished here (-> whether it was a root task that failed for
        # good): their status is settled before the commit (sessions.settle).
        self.sessions_touched: dict[str, bool] = {}
        # Keyed tasks that became leasable, the best of each key queue: (capset, key) -> (rank,
        # created_at); their queues' heads are updated with the history (``flush``).
        self.keyed: dict[tuple[int, str], tuple[float, int]] = {}

    # ------------------------------------------------------------ recording

    def record(
        self,
        row: Row,
        frm: TaskStatus | None,
        to: TaskStatus,
        reason: str,
        actor: str,
        attempt: int | None = None,
        failure: retry.Failure | None = None,
    ) -> None:
        """Record a transition; ``failure``: the attempt it ends failed so (stored with it, for a
        repeated Fail to be recognised by: ``domain.leases.failed_by``)."""
        task_states.check(frm, to)  # a bug otherwise (the trigger would refuse it too)
        att = row["attempt"] if attempt is None else attempt
        error, retryable = (None, None) if failure is None else (failure.error, int(failure.retryable))
        self._history.append(
            (
                row["task_id"],
                frm.value if frm else None,
                to.value,
                reason,
                actor,
                att,
                self.now,
                error,
                retryable,
            )
        )
        session_id = row["session_id"]
        if session_id is not None and task_states.is_finished(to):
            root_failed = to is S.FAILED and row["parent_id"] is None
            self.sessions_touched[session_id] = self.sessions_touched.get(session_id, False) or root_failed
        elapsed = None
        if frm is S.RUNNING and row["started_at"] is not None:
            elapsed = self.now - row["started_at"]
        elif frm is S.READY and to is S.RUNNING and att == 1:
            elapsed = self.now - row["created_at"]
        self.changes.transitions.append(
            Transition(
                row["task_id"], frm, to, reason, actor, self.now, att, row["path"], row["session_id"], elapsed
            )
        )

    def flush(self) -> None:
        """Write the transitions recorded so far: one multi-row INSERT per 100 rows. (Each
        statement step hands the GIL to the event loop and waits to get it back, and
        executemany steps once per row.) And the heads of the key queues that gained a task."""
        rows = self._history
        for i in range(0, len(rows), 100):
            chunk = rows[i : i + 100]
            self.conn.execute(self.q.history_insert(len(chunk)), [v for row in chunk for v in row])
        rows.clear()
        if self.keyed:
            queued = [(c, k, r, at) for (c, k), (r, at) in self.keyed.items()]
            self.conn.execute(self.q.limits.enqueue, self.q.limits.args_enqueue(queued, self.policy.aging_us))
            self.keyed.clear()

    def leasable(self, row: Row, rank: float) -> None:
        """The task of ``row`` became leasable with ``rank``: a keyed one joins its key's queue."""
        key = row["concurrency_key"]
        if key is None:
            return
        at = (row["capset_id"], key)
        best = self.keyed.get(at)
        if best is None or rank > best[0]:
            self.keyed[at] = (rank, row["created_at"])

    def release(self, row: Row) -> None:
        """The running task of ``row`` stops running: its holder's capacity is free again, and so
        is its room under the limits it held (the tasks waiting on it may be leased: wake-up)."""
        self.changes.released.add(row["assigned_agent_id"])
        holds = row["holds"]
        if holds is not None and self._frees_room(holds):
            self.ready_caps(row)

    def _frees_room(self, holds: str) -> bool:
        """Whether a task ending with these holds leaves room under a limit on running tasks (only
        then may a task of another agent start because of it: the others are not woken for nothing)."""
        if self.capsets is None:
            return True
        if self._book is None:
            self._book = self.capsets.limits(self.conn, self.q)
        return self._book.bounds_running(json.loads(holds))

    def snapshot(self, task_id: str) -> None:
        """Keep the task as it is now (only when the caller asked for snapshots: it costs a read)."""
        if self.snapshots:
            self.flush()
            self.changes.tasks[task_id] = load_task(self.conn, self.q, task_id)

    def ready_caps(self, row: Row) -> None:
        self.changes.ready.add(tuple(json.loads(row["required_capabilities"])))

    def fetch(self, task_id: str) -> Row | None:
        row: Row | None = self.conn.execute(self.q.tasks.fetch, (task_id,)).fetchone()
        return row

    # ------------------------------------------------------------ transitions

    def make_ready(self, row: Row, reason: str, actor: str = BROKER) -> None:
        """blocked -> ready, with the urgency and rank of now."""
        urgency, rank = self.policy.ranked(row["priority"], row["deadline"], row["created_at"], self.now)
        self.conn.execute(self.q.tasks.make_ready, (urgency, rank, self.now, row["task_id"]))
        self.record(row, S(row["status"]), S.READY, reason, actor)
        self.ready_caps(row)
        self.leasable(row, rank)
        self.snapshot(row["task_id"])

    def end_attempt(self, row: Row, error: str, actor: str, *, retryable: bool = True) -> TaskStatus:
        """A running attempt failed (Fail, lease expiry): retry or fail for good (``domain.retry``)."""
        self.release(row)
        failure = retry.Failure(error, retryable)
        out = retry.failed_attempt(
            attempt=row["attempt"],
            departures=row["departures"],
            max_retries=row["max_retries"],
            backoff_initial_us=row["backoff_initial_us"],
            backoff_multiplier=row["backoff_multiplier"],
            backoff_max_us=row["backoff_max_us"],
            error=error,
            retryable=retryable,
            now=self.now,
            rng=self.rng,
        )
        if out.retry:
            next_at = out.next_attempt_at
            urgency, rank = self.policy.ranked(row["priority"], row["deadline"], row["created_at"], self.now)
            self.conn.execute(
                self.q.tasks.retry,
                (error, next_at, 1 if next_at else 0, urgency, rank, self.now, row["task_id"]),
            )
            if next_at:
                self.changes.backoff_until.append(next_at)
            else:
                self.ready_caps(row)
                self.leasable(row, rank)
            self.record(row, S.RUNNING, S.READY, out.reason, actor, failure=failure)
            self.snapshot(row["task_id"])
            return S.READY
        self.conn.execute(self.q.tasks.fail, (error, self.now, self.now, row["task_id"]))
        self.record(row, S.RUNNING, S.FAILED, out.reason, actor, failure=failure)
        self.snapshot(row["task_id"])
        if row["has_dependents"]:
            self.resolve_dependents(row["task_id"], S.FAILED, out.reason)
        return S.FAILED

    def depart(self, row: Row, reason: str) -> None:
        """The holder of a running attempt left (offline, deregistered): the task goes back to
        ready at once. Not a failure: the attempt number has risen, but no retry is spent."""
        self.release(row)
        urgency, rank = self.policy.ranked(row["priority"], row["deadline"], row["created_at"], self.now)
        self.conn.execute(self.q.tasks.depart, (reason, urgency, rank, self.now, row["task_id"]))
        self.ready_caps(row)
        self.leasable(row, rank)
        self.record(row, S.RUNNING, S.READY, retry.departure_reason(row["attempt"], reason), BROKER)
        self.snapshot(row["task_id"])

    def completed(self, row: Row, actor: str) -> None:
        """The effects of a completion the caller has just written (``row`` is the task after)."""
        self.release(row)
        self.record(row, S.RUNNING, S.COMPLETED, task_states.COMPLETED, actor)
        self.snapshot(row["task_id"])
        if row["has_dependents"]:
            self.resolve_dependents(row["task_id"], S.COMPLETED, task_states.COMPLETED)

    def cancel(self, row: Row, reason: str, actor: str) -> list[str]:
        """Cancel one unfinished task (ending its lease), then its hard dependents; return the ids."""
        frm = S(row["status"])
        if not task_states.cancellable(frm):
            return []
        self.conn.execute(self.q.tasks.cancel, (reason, self.now, self.now, row["task_id"]))
        if frm == S.RUNNING:
            agent = row["assigned_agent_id"]
            self.release(row)
            self.changes.cancellations.append((agent, Cancellation(row["task_id"], row["attempt"], reason)))
        self.record(row, frm, S.CANCELLED, reason, actor)
        self.snapshot(row["task_id"])
        if not row["has_dependents"]:
            return [row["task_id"]]
        return [row["task_id"], *self.resolve_dependents(row["task_id"], S.CANCELLED, reason)]

    def cancel_subtree(self, root: Row, reason: str, actor: str) -> list[str]:
        lo, hi = subtree_bounds(root["path"])
        rows = self.conn.execute(self.q.tasks.unfinished_below, (lo, hi, root["path"])).fetchall()
        return self.cancel_each(rows, task_states.ancestor_cancelled(root["task_id"], reason), actor)

    def cancel_each(self, rows: list[Row], reason: str, actor: str) -> list[str]:
        """Cancel each task of ``rows`` as it is when its turn comes (cancelling an earlier one may
        have reached it through a dependency); the ids cancelled, dependents included."""
        out: list[str] = []
        for r in rows:
            fresh = self.fetch(r["task_id"])
            if fresh is not None:
                out += self.cancel(fresh, reason, actor)
        return out

    # ------------------------------------------------------------ dependencies

    def resolve_dependents(self, task_id: str, outcome: TaskStatus, reason: str) -> list[str]:
        """A task finished: each dependent becomes what ``domain.dependencies`` says (ready,
        cancelled, or unaffected). Recursive through cancellations; returns the ids it cancelled."""
        cancelled: list[str] = []
        self.conn.execute(self.q.tasks.resolve_edges, (self.now, task_id))
        for dep_id, dep_type in self.conn.execute(self.q.tasks.dependents, (task_id,)).fetchall():
            row = self.fetch(dep_id)
            if row is None:
                continue
            fate = dependencies.dependent_after(
                S(row["status"]), DepType(dep_type), outcome, partial(self._unfinished_prereqs, dep_id)
            )
            if fate is Resolution.CANCEL:
                why = dependencies.cancelled_reason(task_id, outcome, reason)
                cancelled += self.cancel(row, why, BROKER)
            elif fate is Resolution.READY:
                self.make_ready(row, dependencies.PREREQUISITES_FINISHED)
        return cancelled

    def _unfinished_prereqs(self, task_id: str) -> int:
        n: int = self.conn.execute(self.q.tasks.unfinished_prereqs, (task_id,)).fetchone()[0]
        return n
