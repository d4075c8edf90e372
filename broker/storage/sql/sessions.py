"""Orchestration sessions: stored rows, their task counts, and their status kept current in the
same transaction as the task changes that decide it (the rules: broker/domain/sessions.py). The
statements are each dialect's (``Queries.sessions``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ...domain import sessions as rules
from ...errors import AlreadyExists, FailedPrecondition, NotFound
from ...models.sessions import CreateSessionInput, EndSessionInput, Session, SessionFilter, SessionStatus
from .connection import Connection
from .queries import SESSION_COLUMNS, Queries
from .tasks_tx import TaskTx


def counts_of(conn: Connection, q: Queries, session_id: str) -> dict[str, int]:
    rows = conn.execute(q.sessions.task_counts, (session_id,)).fetchall()
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


def _row(conn: Connection, q: Queries, session_id: str) -> Any:
    row = conn.execute(q.sessions.fetch, (session_id,)).fetchone()
    if row is None:
        raise NotFound(f"session {session_id!r} not found")
    return row


def load_session(conn: Connection, q: Queries, session_id: str) -> Session:
    return _session(_row(conn, q, session_id), counts_of(conn, q, session_id))


def create_session_job(
    conn: Connection, q: Queries, inp: CreateSessionInput, session_id: str, now: int
) -> Session:
    if inp.parent_session_id is not None:
        _row(conn, q, inp.parent_session_id)  # NotFound
    if conn.execute(q.sessions.exists, (session_id,)).fetchone() is not None:
        raise AlreadyExists(f"session {session_id!r} already exists")
    conn.execute(
        q.sessions.insert,
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
    return load_session(conn, q, session_id)


def list_sessions_sql(p: str, flt: SessionFilter) -> tuple[str, list[Any]]:
    """The statement of one ListSessions page (each filter served by an index, read backwards for
    newest first: the plan tests); ``p``: the dialect's parameter marker."""
    where: list[str] = []
    args: list[Any] = []
    if flt.status is not None:
        where.append(f"status = {p}")
        args.append(flt.status.value)
    if flt.initiated_by:
        where.append(f"created_by = {p}")
        args.append(flt.initiated_by)
    if flt.parent_session_id:
        where.append(f"parent_session_id = {p}")
        args.append(flt.parent_session_id)
    cmp, desc = ("<", " DESC") if flt.newest_first else (">", "")
    if flt.after is not None:
        where.append(f"(created_at {cmp} {p} OR (created_at = {p} AND session_id {cmp} {p}))")
        args += [flt.after[0], flt.after[0], flt.after[1]]
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    order = f"created_at{desc}, session_id{desc}"
    sql = f"SELECT {SESSION_COLUMNS} FROM orchestration_sessions {cond} ORDER BY {order} LIMIT {p}"
    return sql, [*args, flt.page_size + 1]


def list_sessions(
    conn: Connection, q: Queries, flt: SessionFilter
) -> tuple[list[Session], tuple[int, str] | None]:
    sql, args = list_sessions_sql(q.param, flt)
    rows = conn.execute(sql, args).fetchall()
    more = len(rows) > flt.page_size
    rows = rows[: flt.page_size]
    out = [_session(r, counts_of(conn, q, r["session_id"])) for r in rows]
    last = (rows[-1]["created_at"], rows[-1]["session_id"]) if more and rows else None
    return out, last


def admit(
    conn: Connection, q: Queries, session_id: str, created_by: str | None, new: int, now: int, where: str
) -> None:
    """Before tasks are submitted into a session: an unknown session is created (implicitly,
    active, with no budget); an ended one takes no task; a budget is not exceeded."""
    row = conn.execute(q.sessions.admission, (session_id,)).fetchone()
    if row is None:
        conn.execute(q.sessions.insert_implicit, (session_id, created_by, now, now))
        return
    if row["status"] != SessionStatus.ACTIVE:
        raise FailedPrecondition(
            f"{where}.session_id: session {session_id!r} is {row['status']}: it takes no new task"
        )
    if row["max_tasks"] is not None:
        n = conn.execute(q.sessions.task_total, (session_id,)).fetchone()[0]
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
    conn, q = tx.conn, tx.q

    def exists(sql: str, session_id: str) -> Callable[[], bool]:
        return lambda: conn.execute(sql, (session_id,)).fetchone() is not None

    for session_id, root_failed in touched.items():
        row = conn.execute(q.sessions.status, (session_id,)).fetchone()
        if row is None:
            continue
        status, reason = rules.derive(
            SessionStatus(row["status"]),
            row["closed_at"] is not None,
            root_failed,
            exists(q.sessions.has_unfinished, session_id),
            exists(q.sessions.has_failed, session_id),
        )
        if status.value != row["status"]:
            _end(tx, session_id, status, reason)


def _end(tx: TaskTx, session_id: str, status: SessionStatus, reason: str) -> Session:
    """End the session; it is announced as it is now (and returned)."""
    tx.conn.execute(tx.q.sessions.end, (status.value, reason, tx.now, tx.now, session_id))
    session = load_session(tx.conn, tx.q, session_id)
    tx.changes.sessions.append(session)
    return session


def close_job(tx: TaskTx, inp: EndSessionInput) -> Session:
    """No more tasks: the session ends once every task has finished (at once if they have)."""
    q = tx.q
    row = _row(tx.conn, q, inp.session_id)
    if row["closed_at"] is None and row["status"] == SessionStatus.ACTIVE:
        tx.conn.execute(q.sessions.close, (tx.now, inp.summary, tx.now, inp.session_id))
        settle(tx, {inp.session_id: False})
    elif inp.summary:
        tx.conn.execute(q.sessions.set_summary, (inp.summary, tx.now, inp.session_id))
    return load_session(tx.conn, q, inp.session_id)


def cancel_job(tx: TaskTx, inp: EndSessionInput) -> tuple[Session, list[str]]:
    """Cancel the session and every unfinished task in it (telling lease holders)."""
    q = tx.q
    row = _row(tx.conn, q, inp.session_id)
    if row["status"] != SessionStatus.ACTIVE:
        if row["status"] == SessionStatus.CANCELLED:
            return load_session(tx.conn, q, inp.session_id), []  # a repeat
        raise FailedPrecondition(f"session {inp.session_id!r} has already ended ({row['status']})")
    reason = inp.reason or "session cancelled"
    rows = tx.conn.execute(q.sessions.unfinished_tasks, (inp.session_id,)).fetchall()
    cancelled = tx.cancel_each(rows, reason, inp.actor or "session")
    tx.conn.execute(q.sessions.cancel, (tx.now, inp.summary or row["summary"], inp.session_id))
    return _end(tx, inp.session_id, SessionStatus.CANCELLED, reason), cancelled


def archive_job(conn: Connection, q: Queries, ended_before: int, limit: int) -> int:
    """Sessions that ended before ``ended_before`` are archived; archived ones whose tasks are all
    purged are deleted. Returns how many changed."""
    n = conn.execute(q.sessions.archive, (ended_before, limit)).rowcount
    n += conn.execute(q.sessions.delete_archived, (limit,)).rowcount
    return n
