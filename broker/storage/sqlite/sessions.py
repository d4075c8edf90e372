"""Orchestration sessions: stored rows, their task counts, and their status kept current in the
same transaction as the task changes that decide it (the rules: broker/domain/sessions.py).

Plain SQL shared with the PostgreSQL backend (through postgres/sql.py), like the other task
operations.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from ...domain import sessions as rules
from ...errors import AlreadyExists, FailedPrecondition, NotFound
from ...models.sessions import CreateSessionInput, EndSessionInput, Session, SessionFilter, SessionStatus
from .tasks_rows import FINISHED_SQL
from .tasks_tx import TaskTx

_COLUMNS = (
    "session_id, name, parent_session_id, created_by, context, labels, status, status_reason,"
    " deadline, max_tasks, summary, created_at, updated_at, closed_at, finished_at"
)


COUNTS_SQL = "SELECT status, count(*) FROM tasks WHERE session_id = ? GROUP BY status"
# Whether a session has an unfinished task, and a task failed for good (idx_tasks_session_status).
UNFINISHED_SQL = f"SELECT 1 FROM tasks WHERE session_id = ? AND status NOT IN {FINISHED_SQL} LIMIT 1"
FAILED_SQL = "SELECT 1 FROM tasks WHERE session_id = ? AND status = 'failed' LIMIT 1"


def counts_of(conn: sqlite3.Connection, session_id: str) -> dict[str, int]:
    rows = conn.execute(COUNTS_SQL, (session_id,)).fetchall()
    return {r[0]: r[1] for r in rows}


def _session(row: Any, counts: dict[str, int]) -> Session:
    return Session(
        session_id=row["session_id"],
        name=row["name"],
        parent_session_id=row["parent_session_id"],
        initiated_by=row["created_by"] or "",
        context=json.loads(row["context"]),
        labels=json.loads(row["labels"]),
        status=SessionStatus(row["status"]),
        status_reason=row["status_reason"],
        deadline=row["deadline"],
        max_tasks=row["max_tasks"],
        summary=row["summary"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        closed_at=row["closed_at"],
        finished_at=row["finished_at"],
        counts=counts,
        progress=rules.progress(counts),
    )


def _row(conn: sqlite3.Connection, session_id: str) -> Any:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM orchestration_sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"session {session_id!r} not found")
    return row


def load_session(conn: sqlite3.Connection, session_id: str) -> Session:
    return _session(_row(conn, session_id), counts_of(conn, session_id))


def create_session_job(
    conn: sqlite3.Connection, inp: CreateSessionInput, session_id: str, now: int
) -> Session:
    if inp.parent_session_id is not None:
        _row(conn, inp.parent_session_id)  # NotFound
    found = conn.execute(
        "SELECT 1 FROM orchestration_sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    if found is not None:
        raise AlreadyExists(f"session {session_id!r} already exists")
    conn.execute(
        "INSERT INTO orchestration_sessions (session_id, name, parent_session_id, created_by, context,"
        " labels, status, deadline, max_tasks, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)",
        (
            session_id,
            inp.name,
            inp.parent_session_id,
            inp.initiated_by or None,
            json.dumps(inp.context),
            json.dumps(inp.labels),
            inp.deadline,
            inp.max_tasks,
            now,
            now,
        ),
    )
    return load_session(conn, session_id)


def list_sessions_sql(flt: SessionFilter) -> tuple[str, list[Any]]:
    """The statement of one ListSessions page (each filter served by an index, read backwards for
    newest first: the plan tests)."""
    where: list[str] = []
    args: list[Any] = []
    if flt.status is not None:
        where.append("status = ?")
        args.append(flt.status.value)
    if flt.initiated_by:
        where.append("created_by = ?")
        args.append(flt.initiated_by)
    if flt.parent_session_id:
        where.append("parent_session_id = ?")
        args.append(flt.parent_session_id)
    cmp, desc = ("<", " DESC") if flt.newest_first else (">", "")
    if flt.after is not None:
        where.append(f"(created_at {cmp} ? OR (created_at = ? AND session_id {cmp} ?))")
        args += [flt.after[0], flt.after[0], flt.after[1]]
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    order = f"created_at{desc}, session_id{desc}"
    sql = f"SELECT {_COLUMNS} FROM orchestration_sessions {cond} ORDER BY {order} LIMIT ?"
    return sql, [*args, flt.page_size + 1]


def list_sessions(
    conn: sqlite3.Connection, flt: SessionFilter
) -> tuple[list[Session], tuple[int, str] | None]:
    sql, args = list_sessions_sql(flt)
    rows = conn.execute(sql, args).fetchall()
    more = len(rows) > flt.page_size
    rows = rows[: flt.page_size]
    out = [_session(r, counts_of(conn, r["session_id"])) for r in rows]
    last = (rows[-1]["created_at"], rows[-1]["session_id"]) if more and rows else None
    return out, last


def admit(
    conn: sqlite3.Connection, session_id: str, created_by: str | None, new: int, now: int, where: str
) -> None:
    """Before tasks are submitted into a session: an unknown session is created (implicitly,
    active, with no budget); an ended one takes no task; a budget is not exceeded."""
    row = conn.execute(
        "SELECT status, max_tasks FROM orchestration_sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO orchestration_sessions (session_id, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?)",
            (session_id, created_by, now, now),
        )
        return
    if row["status"] != SessionStatus.ACTIVE:
        raise FailedPrecondition(
            f"{where}.session_id: session {session_id!r} is {row['status']}: it takes no new task"
        )
    if row["max_tasks"] is not None:
        n = conn.execute("SELECT count(*) FROM tasks WHERE session_id = ?", (session_id,)).fetchone()[0]
        if n + new > row["max_tasks"]:
            raise FailedPrecondition(
                f"{where}.session_id: session {session_id!r} holds {n} of its budget of"
                f" {row['max_tasks']} tasks; {new} more would exceed it"
            )


def settle(tx: TaskTx, touched: Mapping[str, bool]) -> None:
    """Bring each session's status up to date after a write finished some of its tasks
    (``touched``: session id -> whether a root task of it failed for good in this write). Runs
    with every completion in a session: two indexed existence checks at most, and only once the
    session is closed, never a count of its tasks."""
    conn = tx.conn

    def exists(sql: str, session_id: str) -> Callable[[], bool]:
        return lambda: conn.execute(sql, (session_id,)).fetchone() is not None

    for session_id, root_failed in touched.items():
        row = conn.execute(
            "SELECT status, closed_at FROM orchestration_sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        if row is None:
            continue
        status, reason = rules.derive(
            SessionStatus(row["status"]),
            row["closed_at"] is not None,
            root_failed,
            exists(UNFINISHED_SQL, session_id),
            exists(FAILED_SQL, session_id),
        )
        if status.value != row["status"]:
            _end(tx, session_id, status, reason)


def _end(tx: TaskTx, session_id: str, status: SessionStatus, reason: str) -> Session:
    """End the session; it is announced as it is now (and returned)."""
    tx.conn.execute(
        "UPDATE orchestration_sessions SET status = ?, status_reason = ?, finished_at = ?, updated_at = ?"
        " WHERE session_id = ?",
        (status.value, reason, tx.now, tx.now, session_id),
    )
    session = load_session(tx.conn, session_id)
    tx.changes.sessions.append(session)
    return session


def close_job(tx: TaskTx, inp: EndSessionInput) -> Session:
    """No more tasks: the session ends once every task has finished (at once if they have)."""
    row = _row(tx.conn, inp.session_id)
    if row["closed_at"] is None and row["status"] == SessionStatus.ACTIVE:
        tx.conn.execute(
            "UPDATE orchestration_sessions SET closed_at = ?, summary = ?, updated_at = ?"
            " WHERE session_id = ?",
            (tx.now, inp.summary, tx.now, inp.session_id),
        )
        settle(tx, {inp.session_id: False})
    elif inp.summary:
        tx.conn.execute(
            "UPDATE orchestration_sessions SET summary = ?, updated_at = ? WHERE session_id = ?",
            (inp.summary, tx.now, inp.session_id),
        )
    return load_session(tx.conn, inp.session_id)


def cancel_job(tx: TaskTx, inp: EndSessionInput) -> tuple[Session, list[str]]:
    """Cancel the session and every unfinished task in it (telling lease holders)."""
    row = _row(tx.conn, inp.session_id)
    if row["status"] != SessionStatus.ACTIVE:
        if row["status"] == SessionStatus.CANCELLED:
            return load_session(tx.conn, inp.session_id), []  # a repeat
        raise FailedPrecondition(f"session {inp.session_id!r} has already ended ({row['status']})")
    reason = inp.reason or "session cancelled"
    rows = tx.conn.execute(
        f"SELECT * FROM tasks WHERE session_id = ? AND status NOT IN {FINISHED_SQL} ORDER BY path",
        (inp.session_id,),
    ).fetchall()
    cancelled = tx.cancel_each(rows, reason, inp.actor or "session")
    tx.conn.execute(
        "UPDATE orchestration_sessions SET closed_at = coalesce(closed_at, ?), summary = ?"
        " WHERE session_id = ?",
        (tx.now, inp.summary or row["summary"], inp.session_id),
    )
    return _end(tx, inp.session_id, SessionStatus.CANCELLED, reason), cancelled


def archive_job(conn: sqlite3.Connection, ended_before: int, limit: int) -> int:
    """Sessions that ended before ``ended_before`` are archived; archived ones whose tasks are all
    purged are deleted. Returns how many changed."""
    n = conn.execute(
        "UPDATE orchestration_sessions SET status = 'archived' WHERE session_id IN ("
        "SELECT session_id FROM orchestration_sessions"
        " WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at < ? LIMIT ?)",
        (ended_before, limit),
    ).rowcount
    n += conn.execute(
        "DELETE FROM orchestration_sessions WHERE session_id IN ("
        "SELECT s.session_id FROM orchestration_sessions s WHERE s.status = 'archived'"
        " AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.session_id = s.session_id)"
        " AND NOT EXISTS (SELECT 1 FROM orchestration_sessions c WHERE c.parent_session_id = s.session_id)"
        " LIMIT ?)",
        (limit,),
    ).rowcount
    return n
