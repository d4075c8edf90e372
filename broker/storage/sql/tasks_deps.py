"""AddDependency and RemoveDependency: editing the prerequisites of a task that has not started.

The rules are ``broker.domain.dependencies``' (which tasks may be edited, cycles, the status
after the edit) and ``broker.domain.submission``'s (a hopeless hard prerequisite, the chain
depth, the count), as at submission. A task's prerequisites are its ``task_dependencies`` rows
(in the order they were given: ``ordinal``), the one place they are kept.
"""

from __future__ import annotations

from ...domain import dependencies, submission, task_states
from ...errors import AlreadyExists, NotFound, ResourceExhausted
from ...models.tasks import DepType, Task, TaskStatus
from .connection import Connection, Row
from .queries import Queries
from .tasks_rows import load_task, prerequisites_of
from .tasks_tx import TaskTx

S = TaskStatus


def _task(tx: TaskTx, task_id: str) -> Row:
    row = tx.fetch(task_id)
    if row is None:
        raise NotFound(f"task_id: task {task_id!r} not found")
    dependencies.check_editable(task_id, S(row["status"]), row["attempt"])
    return row


def _downstream(conn: Connection, q: Queries, task_id: str) -> set[str]:
    """Every task that waits, directly or through others, on ``task_id``."""
    seen: set[str] = set()
    todo = [task_id]
    while todo:
        for dep_id, _ in conn.execute(q.tasks.dependents, (todo.pop(),)).fetchall():
            if dep_id not in seen:
                seen.add(dep_id)
                todo.append(dep_id)
    return seen


def _raise_depths(conn: Connection, q: Queries, task_id: str, depth: int, max_depth: int) -> None:
    """``task_id`` now ends a chain ``depth`` prerequisites deep: so do its dependents, one
    deeper each. ResourceExhausted, and nothing stored, when a chain grows past ``max_depth``."""
    todo = [(task_id, depth)]
    while todo:
        tid, d = todo.pop()
        (current,) = conn.execute(q.tasks.dep_depth, (tid,)).fetchone()
        if d <= current:
            continue
        submission.check_dep_depth("dependency", d, max_depth)
        conn.execute(q.tasks.set_dep_depth, (d, tid))
        todo += [(dep_id, d + 1) for dep_id, _ in conn.execute(q.tasks.dependents, (tid,)).fetchall()]


def add_job(
    tx: TaskTx, task_id: str, prereq_id: str, dep_type: DepType, actor: str, *, max_deps: int, max_depth: int
) -> Task:
    conn, q = tx.conn, tx.q
    row = _task(tx, task_id)
    edges = prerequisites_of(conn, q, task_id)
    for pid, kind, _ in edges:
        if pid == prereq_id:
            if kind == dep_type.value:
                return load_task(conn, q, task_id)  # already so: an idempotent repeat
            raise AlreadyExists(
                f"dependency.task_id: task {task_id!r} already depends on {pid!r} ({kind});"
                " remove that dependency first"
            )
    if len(edges) + 1 > max_deps:
        raise ResourceExhausted(
            f"dependency: task {task_id!r} has {len(edges)} prerequisites; a task may have at most {max_deps}"
        )
    p = conn.execute(q.tasks.prereq, (prereq_id,)).fetchone()
    if p is None:
        raise NotFound(f"dependency.task_id: prerequisite task {prereq_id!r} not found")
    p_status = S(p["status"])
    submission.check_prerequisite("dependency", prereq_id, dep_type, p_status)
    dependencies.check_no_cycle(task_id, prereq_id, lambda: _downstream(conn, q, task_id))
    _raise_depths(conn, q, task_id, p["dep_depth"] + 1, max_depth)

    finished = task_states.is_finished(p_status)
    ordinal = max((e[2] for e in edges), default=-1) + 1  # after the others
    conn.execute(
        q.tasks.insert_edge, (task_id, prereq_id, dep_type.value, tx.now if finished else None, ordinal)
    )
    conn.execute(q.tasks.mark_has_dependents, (prereq_id,))
    conn.execute(q.tasks.touch, (tx.now, task_id))
    frm = S(row["status"])
    to = frm if finished else dependencies.status_after_edit(frm, 1)
    if to is not frm:
        conn.execute(q.tasks.set_status, (to.value, task_id))
        tx.record(row, frm, to, dependencies.PREREQUISITE_ADDED.format(prereq_id), actor)
    tx.snapshot(task_id)
    return load_task(conn, q, task_id)


def remove_job(tx: TaskTx, task_id: str, prereq_id: str, actor: str) -> Task:
    conn, q = tx.conn, tx.q
    row = _task(tx, task_id)
    if conn.execute(q.tasks.delete_edge, (task_id, prereq_id)).rowcount == 0:
        raise NotFound(f"prerequisite_id: task {task_id!r} does not depend on {prereq_id!r}")
    conn.execute(q.tasks.touch, (tx.now, task_id))
    # The chain behind it may have got shorter (its dependents keep theirs: an upper bound).
    (deepest,) = conn.execute(q.tasks.deepest_prereq, (task_id,)).fetchone()
    conn.execute(q.tasks.set_dep_depth, (0 if deepest is None else deepest + 1, task_id))
    frm = S(row["status"])
    unfinished: int = (
        conn.execute(q.tasks.unfinished_prereqs, (task_id,)).fetchone()[0] if frm is S.BLOCKED else 0
    )
    if dependencies.status_after_edit(frm, unfinished) is not frm:
        tx.make_ready(row, dependencies.PREREQUISITE_REMOVED.format(prereq_id), actor)
    else:
        tx.snapshot(task_id)
    return load_task(conn, q, task_id)
