"""Submit and SubmitGraph: every check and insert in one write job.

The checks are ``broker.domain.submission``'s (idempotency, depth,
prerequisites) and the first status ``broker.domain.dependencies``'; this
module reads what they need and stores the tasks.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

from ...domain import dependencies, submission, task_states
from ...errors import NotFound
from ...models.tasks import Dependency, DepType, PlannedNode, SubmitResult, Task, TaskStatus, label_pairs
from . import sessions
from .tasks_rows import Capsets, load_task, prerequisites_of, row_to_task
from .tasks_tx import BROKER, TaskTx

_counter = itertools.count()
_NODE = os.urandom(2).hex()


def new_task_id(now: int) -> str:
    """Time-ordered ids: new rows land at the end of the id index, not all over it."""
    return f"t-{now:014x}{next(_counter) & 0xFFFFF:05x}{_NODE}{os.urandom(2).hex()}"


def submit_job(
    tx: TaskTx,
    capsets: Capsets,
    nodes: list[PlannedNode],
    *,
    max_depth: int,
    default_lease_us: int,
    default_max_run_us: int | None = None,
) -> SubmitResult:
    conn, q, now = tx.conn, tx.q, tx.now
    by_key: dict[str, str] = {}
    capset_ids: dict[tuple[tuple[str, ...], bool], int] = {}
    tasks: list[Task] = []
    duplicate: list[bool] = []
    for node in nodes:
        spec = node.spec
        # The parent and the prerequisites, as ids (graph keys resolved).
        parent_id = by_key[node.parent_key] if node.parent_key else spec.parent_id
        deps = [(d.task_id, d.type) for d in spec.depends_on] + [(by_key[k], t) for k, t in node.dep_keys]
        if spec.idempotency_key is not None:
            found = conn.execute(q.tasks.by_idempotency_key, (spec.idempotency_key,)).fetchone()
            if found is not None:
                same = submission.idempotent_duplicate(node.where, spec, found[0], found[1])
                submission.check_same_place(
                    node.where,
                    spec,
                    same,
                    (parent_id, deps),
                    (found["parent_id"], [(r[0], DepType(r[1])) for r in prerequisites_of(conn, q, same)]),
                )
                if node.key is not None:
                    by_key[node.key] = same
                tasks.append(load_task(conn, q, same))
                duplicate.append(True)
                continue
        task_id = new_task_id(now)
        if node.key is not None:
            by_key[node.key] = task_id

        # The parent: the tree columns come from it, and the session unless one is given.
        session_id = spec.session_id
        if parent_id is not None:
            parent = conn.execute(q.tasks.parent, (parent_id,)).fetchone()
            if parent is None:
                raise NotFound(f"{node.where}.parent_id: task {parent_id!r} not found")
            level = submission.check_level(node.where, parent["level"], max_depth)
            root_id, path = parent["root_id"], f"{parent['path']}{task_id}/"
            if session_id is None:
                session_id = parent["session_id"]
        else:
            level, root_id, path = 0, task_id, f"/{task_id}/"

        # Prerequisites: they exist, a hard one has not failed, the chain is not too deep.
        unfinished, dep_depth = 0, 0
        resolved: set[str] = set()  # prerequisites already finished: their edge is resolved now
        seen: set[str] = set()
        for pid, dtype in deps:
            submission.check_listed_once(node.where, pid, seen)
            p = conn.execute(q.tasks.prereq, (pid,)).fetchone()
            if p is None:
                raise NotFound(f"{node.where}.depends_on: prerequisite task {pid!r} not found")
            status = TaskStatus(p["status"])
            submission.check_prerequisite(node.where, pid, dtype, status)
            if not task_states.is_finished(status):
                unfinished += 1
            else:
                resolved.add(pid)
            dep_depth = max(dep_depth, p["dep_depth"] + 1)
        submission.check_dep_depth(node.where, dep_depth, max_depth)

        if session_id is not None:
            sessions.admit(conn, q, session_id, spec.submitted_by or None, 1, now, node.where)
        caps = tuple(spec.required_capabilities)
        kind = (caps, spec.concurrency_key is not None)  # keyed tasks have capability sets of their own
        if dependencies.held_until(spec.not_before, now):
            status, reason = TaskStatus.PENDING, dependencies.NOT_BEFORE_HELD
        else:
            status, reason = dependencies.initial_status(unfinished)
        urgency = tx.policy.urgency(spec.deadline, now) if status == TaskStatus.READY else 0.0
        values: dict[str, Any] = {
            "task_id": task_id,
            "title": spec.title,
            "task_type": spec.task_type,
            "payload": spec.payload,
            "content_type": spec.content_type,
            "required_capabilities": _json_list(caps),
            "capset_id": capset_ids.get(kind) or capset_ids.setdefault(kind, capsets.ensure(conn, q, *kind)),
            "concurrency_key": spec.concurrency_key,
            "priority": spec.priority,
            "deadline": spec.deadline,
            "urgency": urgency,
            "dispatch_rank": tx.policy.rank(spec.priority, urgency, now),
            "parent_id": parent_id,
            "root_id": root_id,
            "level": level,
            "path": path,
            "has_dependents": 0,
            "dep_depth": dep_depth,
            "max_retries": spec.max_retries,
            "backoff_initial_us": spec.backoff_initial_us,
            "backoff_multiplier": spec.backoff_multiplier,
            "backoff_max_us": spec.backoff_max_us,
            "lease_timeout_us": spec.lease_timeout_us or default_lease_us,
            "session_id": session_id,
            "tags": _json_list(spec.tags),
            "metadata": json.dumps(spec.metadata) if spec.metadata else "{}",
            "idempotency_key": spec.idempotency_key,
            "idempotency_fingerprint": submission.fingerprint(spec) if spec.idempotency_key else None,
            "submitted_by": spec.submitted_by or None,
            "status": status.value,
            "created_at": now,
            "updated_at": now,
            "traceparent": spec.traceparent,
            "max_run_us": spec.max_run_us or default_max_run_us,
            "labels": json.dumps(spec.labels) if spec.labels else "{}",
            "not_before": spec.not_before,
        }
        values["seq"] = conn.execute(q.tasks.insert, values).fetchone()[0]
        seq = values["seq"]
        if spec.tags:
            conn.executemany(q.tasks.insert_tag, [(t, seq) for t in spec.tags])
        if spec.labels:
            conn.executemany(q.tasks.insert_label, [(x, seq) for x in label_pairs(spec.labels)])
        if caps:
            conn.executemany(q.tasks.insert_capability, [(c, seq) for c in caps])
        if deps:
            conn.executemany(
                q.tasks.insert_edge,
                [
                    (task_id, pid, t.value, now if pid in resolved else None, i)
                    for i, (pid, t) in enumerate(deps)
                ],
            )
            conn.executemany(q.tasks.mark_has_dependents, [(pid,) for pid, _ in deps])
        actor = spec.submitted_by
        tx.record(values | {"attempt": 0}, None, TaskStatus.PENDING, task_states.SUBMITTED, actor)
        if status is TaskStatus.PENDING:
            assert spec.not_before is not None
            tx.changes.backoff_until.append(spec.not_before)  # the core's timer starts it then
        else:
            tx.record(values | {"attempt": 0}, TaskStatus.PENDING, status, reason, actor)
        if status == TaskStatus.READY:
            tx.changes.ready.add(caps)
            tx.leasable(values, values["dispatch_rank"])
        task = _built(values, tuple(Dependency(pid, t) for pid, t in deps))
        tx.changes.tasks[task_id] = task  # built anyway: a snapshot for free
        tasks.append(task)
        duplicate.append(False)
    return SubmitResult(tasks, duplicate, by_key, tx.changes)


def start_held_job(tx: TaskTx, limit: int = 500) -> int:
    """Tasks held pending until their not_before time, now come: each becomes ready, or blocked
    while a prerequisite is unfinished (``dependencies.when_due``)."""
    conn, q = tx.conn, tx.q
    rows = conn.execute(q.tasks.held_due, (tx.now, limit)).fetchall()
    for row in rows:
        unfinished = conn.execute(q.tasks.unfinished_prereqs, (row["task_id"],)).fetchone()[0]
        status, reason = dependencies.when_due(unfinished)
        if status is TaskStatus.READY:
            tx.make_ready(row, reason)
        else:
            conn.execute(q.tasks.set_status, (status.value, row["task_id"]))
            conn.execute(q.tasks.touch, (tx.now, row["task_id"]))
            tx.record(row, TaskStatus.PENDING, status, reason, BROKER)
            tx.snapshot(row["task_id"])
    return len(rows)


def _json_list(values: tuple[str, ...] | list[str]) -> str:
    return json.dumps(list(values)) if values else "[]"


def _built(values: dict[str, Any], deps: tuple[Dependency, ...]) -> Task:
    """The stored task, from the values just inserted (no read back)."""
    return row_to_task(values | _FRESH, deps)


_FRESH: dict[str, Any] = {
    "holds": None,
    "attempt": 0,
    "assigned_agent_id": None,
    "lease_expires_at": None,
    "progress": 0,
    "status_note": None,
    "result": None,
    "result_content_type": None,
    "last_error": None,
    "next_attempt_at": None,
    "started_at": None,
    "finished_at": None,
}
