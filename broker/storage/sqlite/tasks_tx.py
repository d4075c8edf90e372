"""State changes of tasks inside one write transaction.

``TaskTx`` is what every task write job works through: it records each
transition in ``task_state_history`` as it makes it, resolves dependencies in
the same transaction (dependents unblocked, or cancelled when a hard
prerequisite fails), and collects a ``Changes`` for the core to announce after
the commit. It runs on the writer thread and never awaits.
"""

from __future__ import annotations

import json
import random
import sqlite3

from ...domain.priority import PriorityPolicy
from ...domain.retry import backoff_us
from ...models.tasks import Cancellation, Changes, DepType, TaskStatus, Transition
from .tasks_rows import DEPENDENTS_SQL, UNFINISHED_PREREQS_SQL, load_task, subtree_bounds

BROKER = "broker"
_HISTORY_SQL = {
    n: "INSERT INTO task_state_history (task_id, from_status, to_status, reason, actor, attempt, at) VALUES "
    + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * n)
    for n in range(1, 101)
}
S = TaskStatus


class TaskTx:
    def __init__(
        self,
        conn: sqlite3.Connection,
        now: int,
        policy: PriorityPolicy,
        capture: bool,
        rng: random.Random | None = None,
    ) -> None:
        self.conn = conn
        self.now = now
        self.policy = policy
        self.capture = capture
        self.rng = rng
        self.changes = Changes()
        self._history: list[tuple[str, str | None, str, str, str, int, int]] = []

    # ------------------------------------------------------------ recording

    def record(
        self,
        row: sqlite3.Row,
        frm: TaskStatus | None,
        to: TaskStatus,
        reason: str,
        actor: str,
        attempt: int | None = None,
    ) -> None:
        att = row["attempt"] if attempt is None else attempt
        self._history.append(
            (row["task_id"], frm.value if frm else None, to.value, reason, actor, att, self.now)
        )
        self.changes.transitions.append(
            Transition(row["task_id"], frm, to, reason, actor, self.now, att, row["path"], row["session_id"])
        )

    def flush(self) -> None:
        """Write the transitions recorded so far: one multi-row INSERT per 100 rows. (Each
        statement step hands the GIL to the event loop and waits to get it back, and
        executemany steps once per row.)"""
        rows = self._history
        for i in range(0, len(rows), 100):
            chunk = rows[i : i + 100]
            self.conn.execute(_HISTORY_SQL[len(chunk)], [v for row in chunk for v in row])
        rows.clear()

    def snapshot(self, task_id: str) -> None:
        """Keep the task as it is now for watchers (only when someone watches)."""
        if self.capture:
            self.flush()
            self.changes.tasks[task_id] = load_task(self.conn, task_id)

    def ready_caps(self, row: sqlite3.Row) -> None:
        self.changes.ready.add(tuple(json.loads(row["required_capabilities"])))

    def fetch(self, task_id: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()

    # ------------------------------------------------------------ transitions

    def make_ready(self, row: sqlite3.Row, reason: str) -> None:
        """blocked -> ready, with the urgency and rank of now."""
        urgency = self.policy.urgency(row["deadline"], self.now)
        rank = self.policy.rank(row["priority"], urgency, row["created_at"])
        self.conn.execute(
            "UPDATE tasks SET status = 'ready', urgency = ?, dispatch_rank = ?, updated_at = ?"
            " WHERE task_id = ?",
            (urgency, rank, self.now, row["task_id"]),
        )
        self.record(row, S(row["status"]), S.READY, reason, BROKER)
        self.ready_caps(row)
        self.snapshot(row["task_id"])

    def end_attempt(self, row: sqlite3.Row, error: str, actor: str, *, retryable: bool = True) -> TaskStatus:
        """A running attempt failed (Fail, lease expiry): retry or fail for good."""
        attempt = row["attempt"]
        agent = row["assigned_agent_id"]
        self.changes.released.add(agent)
        failures = attempt - row["departures"]  # attempts that failed; departures spend no retry
        if retryable and failures <= row["max_retries"]:
            delay = backoff_us(
                failures,
                row["backoff_initial_us"],
                row["backoff_multiplier"],
                row["backoff_max_us"],
                self.rng,
            )
            next_at = self.now + delay if delay > 0 else None
            urgency = self.policy.urgency(row["deadline"], self.now)
            rank = self.policy.rank(row["priority"], urgency, row["created_at"])
            self.conn.execute(
                "UPDATE tasks SET status = 'ready', assigned_agent_id = NULL, lease_expires_at = NULL,"
                " last_error = ?, next_attempt_at = ?, in_backoff = ?, urgency = ?, dispatch_rank = ?,"
                " updated_at = ? WHERE task_id = ?",
                (error, next_at, 1 if next_at else 0, urgency, rank, self.now, row["task_id"]),
            )
            if next_at:
                reason = f"attempt {attempt} failed: {error}; retry in {delay / 1e6:.3f} s"
                self.changes.backoff_until.append(next_at)
            else:
                reason = f"attempt {attempt} failed: {error}; retry now"
                self.ready_caps(row)
            self.record(row, S.RUNNING, S.READY, reason, actor)
            self.snapshot(row["task_id"])
            return S.READY
        why = "not retryable" if not retryable else f"no retries left ({row['max_retries']})"
        reason = f"attempt {attempt} failed: {error}; {why}"
        self.conn.execute(
            "UPDATE tasks SET status = 'failed', lease_expires_at = NULL, last_error = ?,"
            " next_attempt_at = NULL, finished_at = ?, updated_at = ? WHERE task_id = ?",
            (error, self.now, self.now, row["task_id"]),
        )
        self.record(row, S.RUNNING, S.FAILED, reason, actor)
        self.snapshot(row["task_id"])
        if row["has_dependents"]:
            self.resolve_dependents(row["task_id"], S.FAILED, reason)
        return S.FAILED

    def depart(self, row: sqlite3.Row, reason: str) -> None:
        """The holder of a running attempt left (offline, deregistered): the task goes back to
        ready at once. Not a failure: the attempt number has risen, but no retry is spent."""
        self.changes.released.add(row["assigned_agent_id"])
        urgency = self.policy.urgency(row["deadline"], self.now)
        rank = self.policy.rank(row["priority"], urgency, row["created_at"])
        self.conn.execute(
            "UPDATE tasks SET status = 'ready', assigned_agent_id = NULL, lease_expires_at = NULL,"
            " last_error = ?, next_attempt_at = NULL, in_backoff = 0, urgency = ?, dispatch_rank = ?,"
            " departures = departures + 1, updated_at = ? WHERE task_id = ?",
            (reason, urgency, rank, self.now, row["task_id"]),
        )
        self.ready_caps(row)
        why = f"attempt {row['attempt']} ended: {reason}; requeued, no retry spent"
        self.record(row, S.RUNNING, S.READY, why, BROKER)
        self.snapshot(row["task_id"])

    def completed(self, row: sqlite3.Row, actor: str) -> None:
        """The effects of a completion the caller has just written (``row`` is the task after)."""
        self.changes.released.add(row["assigned_agent_id"])
        self.record(row, S.RUNNING, S.COMPLETED, "completed", actor)
        self.snapshot(row["task_id"])
        if row["has_dependents"]:
            self.resolve_dependents(row["task_id"], S.COMPLETED, "completed")

    def cancel(self, row: sqlite3.Row, reason: str, actor: str) -> list[str]:
        """Cancel one unfinished task (ending its lease), then its hard dependents; return the ids."""
        frm = S(row["status"])
        if frm in (S.COMPLETED, S.FAILED, S.CANCELLED):
            return []
        self.conn.execute(
            "UPDATE tasks SET status = 'cancelled', lease_expires_at = NULL, last_error = ?,"
            " next_attempt_at = NULL, in_backoff = 0, finished_at = ?, updated_at = ? WHERE task_id = ?",
            (reason, self.now, self.now, row["task_id"]),
        )
        if frm == S.RUNNING:
            agent = row["assigned_agent_id"]
            self.changes.released.add(agent)
            self.changes.cancellations.append((agent, Cancellation(row["task_id"], row["attempt"], reason)))
        self.record(row, frm, S.CANCELLED, reason, actor)
        self.snapshot(row["task_id"])
        if not row["has_dependents"]:
            return [row["task_id"]]
        return [row["task_id"], *self.resolve_dependents(row["task_id"], S.CANCELLED, reason)]

    def cancel_subtree(self, root: sqlite3.Row, reason: str, actor: str) -> list[str]:
        lo, hi = subtree_bounds(root["path"])
        rows = self.conn.execute(
            "SELECT * FROM tasks WHERE path >= ? AND path < ? AND path != ?"
            " AND status NOT IN ('completed', 'failed', 'cancelled') ORDER BY path",
            (lo, hi, root["path"]),
        ).fetchall()
        out: list[str] = []
        why = f"ancestor {root['task_id']} cancelled: {reason}"
        for r in rows:
            fresh = self.fetch(r["task_id"])  # an earlier cancel here may have reached it already
            if fresh is not None:
                out += self.cancel(fresh, why, actor)
        return out

    # ------------------------------------------------------------ dependencies

    def resolve_dependents(self, task_id: str, outcome: TaskStatus, reason: str) -> list[str]:
        """A task finished: unblock dependents now free to run, cancel hard dependents of a
        failure. Recursive through cancellations; returns the ids it cancelled."""
        cancelled: list[str] = []
        for dep_id, dep_type in self.conn.execute(DEPENDENTS_SQL, (task_id,)).fetchall():
            row = self.fetch(dep_id)
            if row is None or row["status"] not in ("blocked", "pending"):
                continue
            if dep_type == DepType.HARD and outcome != S.COMPLETED:
                why = f"prerequisite {task_id} {outcome.value}: {reason}"
                cancelled += self.cancel(row, why, BROKER)
            elif self.conn.execute(UNFINISHED_PREREQS_SQL, (dep_id,)).fetchone()[0] == 0:
                self.make_ready(row, "prerequisites finished")
        return cancelled
