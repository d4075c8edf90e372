"""Reading tasks on SQLite: one task, filtered pages, subtrees, history, watch snapshots."""

from __future__ import annotations

import sqlite3

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
from .tasks_rows import (
    SUBTREE_COUNTS_SQL,
    SUBTREE_PAGE_DEPTH_SQL,
    SUBTREE_PAGE_SQL,
    SUBTREE_SQL,
    load_task,
    load_tasks,
    row_to_transition,
    subtree_bounds,
)


def list_tasks_sql(flt: TaskFilter) -> tuple[str, list[object]]:
    """One page of tasks matching every filter, in submission order (newest first: the same
    index read backwards).

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
        where.append("t.seq = x.seq AND x.capability = ?")
        args.append(flt.capability)
        order = "x.seq"
    elif flt.tag:
        source = "task_tags x CROSS JOIN tasks t"
        where.append("t.seq = x.seq AND x.tag = ?")
        args.append(flt.tag)
        order = "x.seq"
    elif flt.label:
        source = "task_labels x CROSS JOIN tasks t"
        where.append("t.seq = x.seq AND x.label = ?")
        args.append(flt.label)
        order = "x.seq"
    if flt.tag and flt.capability:
        where.append("t.seq IN (SELECT seq FROM task_tags WHERE tag = ?)")
        args.append(flt.tag)
    if flt.label and (flt.capability or flt.tag):
        where.append("t.seq IN (SELECT seq FROM task_labels WHERE label = ?)")
        args.append(flt.label)
    if flt.status is not None:
        where.append("t.status = ?")
        args.append(flt.status.value)
    if flt.session_id:
        where.append("t.session_id = ?")
        args.append(flt.session_id)
    if flt.agent_id:
        where.append("t.assigned_agent_id = ?")
        args.append(flt.agent_id)
    if flt.parent_id:
        where.append("t.parent_id = ?")
        args.append(flt.parent_id)
    if flt.task_type:
        where.append("t.task_type = ?")
        args.append(flt.task_type)
    if flt.root_id:
        where.append("t.root_id = ?")
        args.append(flt.root_id)
    if flt.level is not None:
        where.append("t.level = ?")
        args.append(flt.level)
    if flt.created_after is not None:
        where.append("t.created_at >= ?")
        args.append(flt.created_after)
    if flt.created_before is not None:
        where.append("t.created_at < ?")
        args.append(flt.created_before)
    if flt.after is not None:
        where.append(f"{order} {'<' if flt.newest_first else '>'} ?")
        args.append(flt.after)
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT t.* FROM {source} {cond} ORDER BY {order}{' DESC' if flt.newest_first else ''} LIMIT ?"
    args.append(flt.page_size + 1)
    return sql, args


def list_tasks(conn: sqlite3.Connection, flt: TaskFilter) -> tuple[list[Task], int | None]:
    sql, args = list_tasks_sql(flt)
    rows = conn.execute(sql, args).fetchall()
    tasks = load_tasks(rows[: flt.page_size])
    more = len(rows) > flt.page_size
    return tasks, (tasks[-1].seq if more else None)


def tree(conn: sqlite3.Connection, q: TreeQuery) -> TreeSummary:
    root = load_task(conn, q.task_id)
    lo, hi = subtree_bounds(root.path)
    counts: dict[TaskStatus, int] = {}
    running = 0
    for status, n, progress in conn.execute(SUBTREE_COUNTS_SQL, (lo, hi)).fetchall():
        counts[TaskStatus(status)] = n
        if status == TaskStatus.RUNNING.value:
            running = progress
    sql, args = SUBTREE_PAGE_SQL, [lo, hi, q.after_path or "", q.page_size + 1]
    if q.max_depth is not None:
        sql, args = (
            SUBTREE_PAGE_DEPTH_SQL,
            [lo, hi, q.after_path or "", root.level + q.max_depth, q.page_size + 1],
        )
    rows = conn.execute(sql, args).fetchall()
    return TreeSummary(
        load_tasks(rows[: q.page_size]),
        counts,
        task_states.tree_progress(counts, running),
        more=len(rows) > q.page_size,
    )


def history(conn: sqlite3.Connection, task_id: str) -> list[Transition]:
    if conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone() is None:
        raise NotFound(f"task {task_id!r} not found")
    rows = conn.execute(
        "SELECT * FROM task_state_history WHERE task_id = ? ORDER BY id", (task_id,)
    ).fetchall()
    return [row_to_transition(r) for r in rows]


def scope_snapshot(conn: sqlite3.Connection, scope: WatchScope, value: str, limit: int) -> list[TaskEvent]:
    """The tasks a Watch covers as they are now, each with its latest transition."""
    if scope == WatchScope.TASK:
        rows = conn.execute("SELECT * FROM tasks WHERE task_id = ?", (value,)).fetchall()
        if not rows:
            raise NotFound(f"task {value!r} not found")
    elif scope == WatchScope.SUBTREE:
        root = conn.execute("SELECT path FROM tasks WHERE task_id = ?", (value,)).fetchone()
        if root is None:
            raise NotFound(f"task {value!r} not found")
        rows = conn.execute(SUBTREE_SQL + " LIMIT ?", (*subtree_bounds(root[0]), limit)).fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM tasks WHERE session_id = ? ORDER BY seq LIMIT ?", (value, limit)
        ).fetchall()
    out = []
    for task in load_tasks(rows):
        last = conn.execute(
            "SELECT * FROM task_state_history WHERE task_id = ? ORDER BY id DESC LIMIT 1", (task.task_id,)
        ).fetchone()
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


def path_of(conn: sqlite3.Connection, task_id: str) -> str:
    row = conn.execute("SELECT path FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    if row is None:
        raise NotFound(f"task {task_id!r} not found")
    return row[0]


PREREQUISITES_SQL = (
    "SELECT d.prerequisite_id, d.dep_type, d.resolved_at, p.status, p.title FROM task_dependencies d"
    " JOIN tasks p ON p.task_id = d.prerequisite_id WHERE d.dependent_id = ? ORDER BY p.seq"
)
DEPENDENT_EDGES_SQL = (
    "SELECT d.dependent_id, d.dep_type, d.resolved_at, t.status, t.title FROM task_dependencies d"
    " JOIN tasks t ON t.task_id = d.dependent_id WHERE d.prerequisite_id = ? ORDER BY t.seq"
)


def dependencies(conn: sqlite3.Connection, task_id: str) -> tuple[list[DependencyEdge], list[DependencyEdge]]:
    """A task's prerequisites (which still block it) and dependents, each with its state."""
    if conn.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone() is None:
        raise NotFound(f"task {task_id!r} not found")

    def edges(sql: str, upstream: bool) -> list[DependencyEdge]:
        out = []
        for r in conn.execute(sql, (task_id,)).fetchall():
            status = TaskStatus(r[3])
            blocking = upstream and not task_states.is_finished(status)
            out.append(DependencyEdge(r[0], r[4], DepType(r[1]), status, r[2], blocking))
        return out

    return edges(PREREQUISITES_SQL, True), edges(DEPENDENT_EDGES_SQL, False)


# The neighbours of a set of tasks: prerequisites (primary key), dependents
# (idx_task_dependencies_prerequisite) and children (idx_tasks_parent); ``{ids}`` is a list of ?.
GRAPH_NEIGHBOURS = (
    "SELECT prerequisite_id FROM task_dependencies WHERE dependent_id IN ({ids}) LIMIT ?",
    "SELECT dependent_id FROM task_dependencies WHERE prerequisite_id IN ({ids}) LIMIT ?",
    "SELECT task_id FROM tasks WHERE parent_id IN ({ids}) LIMIT ?",
)


def graph(conn: sqlite3.Connection, task_id: str, limit: int) -> tuple[list[Task], bool]:
    """The tasks connected to one through dependency and parent-child edges, breadth-first from
    it (the nearest first), at most ``limit``; True when more are connected. A SubmitGraph without
    parents gives as many roots as nodes: this finds them all from any one of them."""
    found = {task_id: load_task(conn, task_id)}
    frontier = list(found.values())
    more = False
    while frontier and not more:
        ids = [t.task_id for t in frontier]
        marks = ",".join("?" * len(ids))
        near = [t.parent_id for t in frontier if t.parent_id]
        for sql in GRAPH_NEIGHBOURS:
            near += [r[0] for r in conn.execute(sql.format(ids=marks), (*ids, limit + 1)).fetchall()]
        new = [n for n in dict.fromkeys(near) if n not in found]
        if len(found) + len(new) > limit:
            new, more = new[: limit - len(found)], True
        rows = []
        for i in range(0, len(new), 500):
            part = new[i : i + 500]
            sql = f"SELECT * FROM tasks WHERE task_id IN ({','.join('?' * len(part))})"
            rows += conn.execute(sql, part).fetchall()
        frontier = load_tasks(rows)
        found.update((t.task_id, t) for t in frontier)
    return sorted(found.values(), key=lambda t: t.seq), more
