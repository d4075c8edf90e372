"""Reading tasks: one task, filtered pages, subtrees, history, watch snapshots."""

from __future__ import annotations

from typing import Any

from ...domain import task_states
from ...errors import NotFound
from ...models.tasks import (
    DependencyEdge,
    DepType,
    Task,
    TaskEvent,
    TaskFilter,
    TaskStatus,
    Transition,
    TreeQuery,
    TreeSummary,
    WatchScope,
)
from .connection import Connection
from .queries import Queries
from .tasks_rows import load_task, load_tasks, row_to_transition, subtree_bounds


def list_tasks_sql(p: str, flt: TaskFilter) -> tuple[str, list[object]]:
    """One page of tasks matching every filter, in submission order (newest first: the same
    index read backwards; ``p``: the dialect's parameter marker).

    A capability, tag or label filter drives the query from its (value, seq) table
    (SQLite's CROSS JOIN keeps that order), which is already in page order; the
    other filters have an index ending in seq. (The join condition is in WHERE:
    PostgreSQL's CROSS JOIN takes no ON.)
    """
    where: list[str] = []
    args: list[object] = []
    source = "tasks t"
    order = "t.seq"
    if flt.capability:
        source = "task_capabilities x CROSS JOIN tasks t"
        where.append(f"t.seq = x.seq AND x.capability = {p}")
        args.append(flt.capability)
        order = "x.seq"
    elif flt.tag:
        source = "task_tags x CROSS JOIN tasks t"
        where.append(f"t.seq = x.seq AND x.tag = {p}")
        args.append(flt.tag)
        order = "x.seq"
    elif flt.label:
        source = "task_labels x CROSS JOIN tasks t"
        where.append(f"t.seq = x.seq AND x.label = {p}")
        args.append(flt.label)
        order = "x.seq"
    if flt.tag and flt.capability:
        where.append(f"t.seq IN (SELECT seq FROM task_tags WHERE tag = {p})")
        args.append(flt.tag)
    if flt.label and (flt.capability or flt.tag):
        where.append(f"t.seq IN (SELECT seq FROM task_labels WHERE label = {p})")
        args.append(flt.label)
    if flt.status is not None:
        where.append(f"t.status = {p}")
        args.append(flt.status.value)
    if flt.session_id:
        where.append(f"t.session_id = {p}")
        args.append(flt.session_id)
    if flt.agent_id:
        where.append(f"t.assigned_agent_id = {p}")
        args.append(flt.agent_id)
    if flt.parent_id:
        where.append(f"t.parent_id = {p}")
        args.append(flt.parent_id)
    if flt.task_type:
        where.append(f"t.task_type = {p}")
        args.append(flt.task_type)
    if flt.root_id:
        where.append(f"t.root_id = {p}")
        args.append(flt.root_id)
    if flt.level is not None:
        where.append(f"t.level = {p}")
        args.append(flt.level)
    if flt.created_after is not None:
        where.append(f"t.created_at >= {p}")
        args.append(flt.created_after)
    if flt.created_before is not None:
        where.append(f"t.created_at < {p}")
        args.append(flt.created_before)
    if flt.after is not None:
        where.append(f"{order} {'<' if flt.newest_first else '>'} {p}")
        args.append(flt.after)
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT t.* FROM {source} {cond} ORDER BY {order}{' DESC' if flt.newest_first else ''} LIMIT {p}"
    args.append(flt.page_size + 1)
    return sql, args


def list_tasks(conn: Connection, q: Queries, flt: TaskFilter) -> tuple[list[Task], int | None]:
    sql, args = list_tasks_sql(q.param, flt)
    rows = conn.execute(sql, args).fetchall()
    tasks = load_tasks(conn, q, rows[: flt.page_size])
    more = len(rows) > flt.page_size
    return tasks, (tasks[-1].seq if more else None)


def tree(conn: Connection, q: Queries, tq: TreeQuery) -> TreeSummary:
    root = load_task(conn, q, tq.task_id)
    lo, hi = subtree_bounds(root.path)
    counts: dict[TaskStatus, int] = {}
    running = 0
    for status, n, progress in conn.execute(q.tasks.subtree_counts, (lo, hi)).fetchall():
        counts[TaskStatus(status)] = n
        if status == TaskStatus.RUNNING.value:
            running = progress
    sql, args = q.tasks.subtree_page, [lo, hi, tq.after_path or "", tq.page_size + 1]
    if tq.max_depth is not None:
        sql, args = (
            q.tasks.subtree_page_depth,
            [lo, hi, tq.after_path or "", root.level + tq.max_depth, tq.page_size + 1],
        )
    rows = conn.execute(sql, args).fetchall()
    return TreeSummary(
        load_tasks(conn, q, rows[: tq.page_size]),
        counts,
        task_states.tree_progress(counts, running),
        more=len(rows) > tq.page_size,
    )


def _check_exists(conn: Connection, q: Queries, task_id: str) -> None:
    if conn.execute(q.tasks.exists, (task_id,)).fetchone() is None:
        raise NotFound(f"task {task_id!r} not found")


def history(conn: Connection, q: Queries, task_id: str) -> list[Transition]:
    _check_exists(conn, q, task_id)
    return [row_to_transition(r) for r in conn.execute(q.tasks.history, (task_id,)).fetchall()]


def scope_snapshot(
    conn: Connection, q: Queries, scope: WatchScope, value: str, limit: int
) -> list[TaskEvent]:
    """The tasks a Watch covers as they are now, each with its latest transition."""
    if scope == WatchScope.TASK:
        rows = conn.execute(q.tasks.fetch, (value,)).fetchall()
        if not rows:
            raise NotFound(f"task {value!r} not found")
    elif scope == WatchScope.SUBTREE:
        root = conn.execute(q.tasks.path, (value,)).fetchone()
        if root is None:
            raise NotFound(f"task {value!r} not found")
        rows = conn.execute(q.tasks.subtree, (*subtree_bounds(root[0]), limit)).fetchall()
    else:
        rows = conn.execute(q.tasks.of_session, (value, limit)).fetchall()
    out = []
    for task in load_tasks(conn, q, rows):
        last = conn.execute(q.tasks.last_transition, (task.task_id,)).fetchone()
        tr = row_to_transition(last)
        out.append(
            TaskEvent(
                Transition(
                    tr.task_id,
                    tr.from_status,
                    tr.to_status,
                    tr.reason,
                    tr.actor,
                    tr.at,
                    tr.attempt,
                    task.path,
                    task.session_id,
                ),
                task,
                snapshot=True,
            )
        )
    return out


def path_of(conn: Connection, q: Queries, task_id: str) -> str:
    row = conn.execute(q.tasks.path, (task_id,)).fetchone()
    if row is None:
        raise NotFound(f"task {task_id!r} not found")
    path: str = row[0]
    return path


def dependencies(
    conn: Connection, q: Queries, task_id: str
) -> tuple[list[DependencyEdge], list[DependencyEdge]]:
    """A task's prerequisites (which still block it) and dependents, each with its state."""
    _check_exists(conn, q, task_id)

    def edges(sql: str, upstream: bool) -> list[DependencyEdge]:
        out = []
        for r in conn.execute(sql, (task_id,)).fetchall():
            status = TaskStatus(r[3])
            blocking = upstream and not task_states.is_finished(status)
            out.append(DependencyEdge(r[0], r[4], DepType(r[1]), status, r[2], blocking))
        return out

    return edges(q.tasks.prerequisites, True), edges(q.tasks.dependent_edges, False)


# The neighbours of a set of tasks: prerequisites (primary key), dependents
# (idx_task_dependencies_prerequisite) and children (idx_tasks_parent); ``{ids}`` is a list of
# the dialect's markers.
GRAPH_NEIGHBOURS = (
    "SELECT prerequisite_id FROM task_dependencies WHERE dependent_id IN ({ids}) LIMIT {p}",
    "SELECT dependent_id FROM task_dependencies WHERE prerequisite_id IN ({ids}) LIMIT {p}",
    "SELECT task_id FROM tasks WHERE parent_id IN ({ids}) LIMIT {p}",
)


def graph(conn: Connection, q: Queries, task_id: str, limit: int) -> tuple[list[Task], bool]:
    """The tasks connected to one through dependency and parent-child edges, breadth-first from
    it (the nearest first), at most ``limit``; True when more are connected. A SubmitGraph without
    parents gives as many roots as nodes: this finds them all from any one of them."""
    p = q.param
    found = {task_id: load_task(conn, q, task_id)}
    frontier = list(found.values())
    more = False
    while frontier and not more:
        ids = [t.task_id for t in frontier]
        marks = ",".join([p] * len(ids))
        near = [t.parent_id for t in frontier if t.parent_id]
        for sql in GRAPH_NEIGHBOURS:
            rows = conn.execute(sql.format(ids=marks, p=p), (*ids, limit + 1)).fetchall()
            near += [r[0] for r in rows]
        new = [n for n in dict.fromkeys(near) if n not in found]
        if len(found) + len(new) > limit:
            new, more = new[: limit - len(found)], True
        got: list[Any] = []
        for i in range(0, len(new), 500):
            part = new[i : i + 500]
            sql = f"SELECT * FROM tasks WHERE task_id IN ({','.join([p] * len(part))})"
            got += conn.execute(sql, part).fetchall()
        frontier = load_tasks(conn, q, got)
        found.update((t.task_id, t) for t in frontier)
    return sorted(found.values(), key=lambda t: t.seq), more
