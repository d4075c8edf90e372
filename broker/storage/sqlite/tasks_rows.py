"""Rows <-> task values, capability sets, and the dispatch SQL (shared by the tasks_* modules)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from ...domain.capacity import covers
from ...errors import NotFound
from ...models.tasks import Dependency, DepType, Task, TaskStatus, Transition

FINISHED_SQL = "('completed', 'failed', 'cancelled')"

# The next ready tasks of one capability set, best first. Served by
# idx_tasks_ready: an equality on capset_id then the index order, no sort.
NEXT_READY_SQL = (
    "SELECT dispatch_rank, seq, task_id FROM tasks INDEXED BY idx_tasks_ready"
    " WHERE capset_id = ? AND status = 'ready' AND in_backoff = 0"
    " ORDER BY dispatch_rank DESC, seq LIMIT ?"
)
# Dependents of a task (idx_task_dependencies_prerequisite).
DEPENDENTS_SQL = "SELECT dependent_id, dep_type FROM task_dependencies WHERE prerequisite_id = ?"
# Leases that lapsed (idx_tasks_lease).
# INDEXED BY: without statistics the planner would rather take idx_tasks_status
# (status = ?) and sort; a hot query's plan is not left to chance.
TIMED_OUT_SQL = (
    "SELECT * FROM tasks INDEXED BY idx_tasks_run_deadline"
    " WHERE status = 'running' AND run_deadline IS NOT NULL AND run_deadline <= ?"
    " ORDER BY run_deadline LIMIT ?"
)
EXPIRED_LEASES_SQL = (
    "SELECT * FROM tasks INDEXED BY idx_tasks_lease"
    " WHERE status = 'running' AND lease_expires_at < ? ORDER BY lease_expires_at LIMIT ?"
)
# A subtree by materialized path (idx_tasks_path): every path starting with the prefix.
SUBTREE_SQL = "SELECT * FROM tasks WHERE path >= ? AND path < ? ORDER BY path"
# GetTree: the whole subtree's counts, then a page of it after a path (optionally depth-limited).
SUBTREE_COUNTS_SQL = (
    "SELECT status, count(*), sum(progress) FROM tasks WHERE path >= ? AND path < ? GROUP BY status"
)
SUBTREE_PAGE_SQL = "SELECT * FROM tasks WHERE path >= ? AND path < ? AND path > ? ORDER BY path LIMIT ?"
SUBTREE_PAGE_DEPTH_SQL = (
    "SELECT * FROM tasks WHERE path >= ? AND path < ? AND path > ? AND level <= ? ORDER BY path LIMIT ?"
)
# Retry backoffs that are due (idx_tasks_backoff).
DUE_BACKOFF_SQL = (
    "SELECT task_id, capset_id FROM tasks INDEXED BY idx_tasks_backoff"
    " WHERE status = 'ready' AND in_backoff = 1 AND next_attempt_at <= ?"
)
# A departed agent's running tasks (idx_tasks_agent).
HOLDER_RUNNING_SQL = (
    "SELECT * FROM tasks INDEXED BY idx_tasks_agent"
    " WHERE assigned_agent_id = ? AND status = 'running' ORDER BY seq"
)
# Ready tasks inside the deadline-urgency horizon (idx_tasks_deadline).
URGENCY_WINDOW_SQL = (
    "SELECT task_id, priority, deadline, urgency, created_at FROM tasks INDEXED BY idx_tasks_deadline"
    " WHERE status = 'ready' AND deadline IS NOT NULL AND deadline < ?"
)
# Unfinished prerequisites of a task (primary key of task_dependencies, then tasks by id).
UNFINISHED_PREREQS_SQL = (
    "SELECT count(*) FROM task_dependencies d JOIN tasks p ON p.task_id = d.prerequisite_id"
    f" WHERE d.dependent_id = ? AND p.status NOT IN {FINISHED_SQL}"
)


def subtree_bounds(path: str) -> tuple[str, str]:
    """[low, high) of the paths under ``path`` (which ends with '/'; '0' follows '/')."""
    return path, path[:-1] + "0"


def capset_id_of(caps: tuple[str, ...]) -> int:
    """A capability set's id: derived from its content, so a cached id can never
    name another set (ids are not handed out by a rolled-back transaction)."""
    digest = hashlib.sha256(json.dumps(list(caps)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: a positive SQLite integer


class Capsets:
    """Capability sets known to this process, and which of them an agent covers.

    Only the writer thread uses it. Sets are never deleted and their id is a
    function of their content, so the cache cannot go stale, only incomplete:
    it is refreshed whenever the table's content changes.
    """

    def __init__(self) -> None:
        self.by_id: dict[int, tuple[str, ...]] = {}
        self._count: tuple[int, float] = (0, 0.0)
        self._covers: dict[tuple[str, ...], list[int]] = {}

    def ensure(self, conn: sqlite3.Connection, caps: tuple[str, ...]) -> int:
        cid = capset_id_of(caps)
        conn.execute(
            "INSERT INTO capability_sets (capset_id, caps) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (cid, json.dumps(list(caps))),
        )
        return cid

    def covered_by(self, conn: sqlite3.Connection, agent_caps: tuple[str, ...]) -> list[int]:
        """Ids of the capability sets an agent with ``agent_caps`` is able to run."""
        # count and sum of the ids: any change of the table's content changes this
        # (even a set added after another's insert was rolled back with its batch).
        # (The sum is of the ids modulo a prime: a sum of 63-bit ids would overflow.)
        count = tuple(
            conn.execute(
                "SELECT count(*), coalesce(sum(capset_id % 1000003), 0) FROM capability_sets"
            ).fetchone()
        )
        if count != self._count:
            self.by_id = {
                r[0]: tuple(json.loads(r[1]))
                for r in conn.execute("SELECT capset_id, caps FROM capability_sets")
            }
            self._count = count
            self._covers.clear()
        found = self._covers.get(agent_caps)
        if found is None:
            have = set(agent_caps)
            found = [cid for cid, caps in self.by_id.items() if covers(have, caps)]
            self._covers[agent_caps] = found
        return found


_STATUS = {s.value: s for s in TaskStatus}
_DEP = {d.value: d for d in DepType}


def _strings(text: str) -> tuple[str, ...]:
    return () if text == "[]" else tuple(json.loads(text))


def row_to_task(row: sqlite3.Row | dict[str, Any]) -> Task:
    deps = row["depends_on"]
    return Task(
        task_id=row["task_id"],
        seq=row["seq"],
        title=row["title"],
        task_type=row["task_type"],
        payload=row["payload"],
        content_type=row["content_type"],
        required_capabilities=_strings(row["required_capabilities"]),
        priority=row["priority"],
        deadline=row["deadline"],
        urgency=row["urgency"],
        dispatch_rank=row["dispatch_rank"],
        parent_id=row["parent_id"],
        root_id=row["root_id"],
        level=row["level"],
        path=row["path"],
        depends_on=() if deps == "[]" else tuple(Dependency(d[0], _DEP[d[1]]) for d in json.loads(deps)),
        max_retries=row["max_retries"],
        backoff_initial_us=row["backoff_initial_us"],
        backoff_multiplier=row["backoff_multiplier"],
        backoff_max_us=row["backoff_max_us"],
        lease_timeout_us=row["lease_timeout_us"],
        session_id=row["session_id"],
        tags=_strings(row["tags"]),
        metadata={} if row["metadata"] == "{}" else json.loads(row["metadata"]),
        labels={} if row["labels"] == "{}" else json.loads(row["labels"]),
        idempotency_key=row["idempotency_key"],
        submitted_by=row["submitted_by"] or "",
        status=_STATUS[row["status"]],
        attempt=row["attempt"],
        assigned_agent_id=row["assigned_agent_id"],
        lease_expires_at=row["lease_expires_at"],
        progress=row["progress"],
        status_note=row["status_note"] or "",
        result=row["result"],
        result_content_type=row["result_content_type"] or "",
        last_error=row["last_error"] or "",
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        traceparent=row["traceparent"],
        max_run_us=row["max_run_us"],
    )


def load_task(conn: sqlite3.Connection, task_id: str) -> Task:
    row = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    if row is None:
        raise NotFound(f"task {task_id!r} not found")
    return row_to_task(row)


def load_tasks(rows: list[sqlite3.Row]) -> list[Task]:
    return [row_to_task(r) for r in rows]


def row_to_transition(row: sqlite3.Row) -> Transition:
    return Transition(
        task_id=row["task_id"],
        from_status=TaskStatus(row["from_status"]) if row["from_status"] else None,
        to_status=TaskStatus(row["to_status"]),
        reason=row["reason"],
        actor=row["actor"],
        at=row["at"],
        attempt=row["attempt"],
    )
