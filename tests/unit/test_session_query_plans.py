"""Session reads are served by indexes (EXPLAIN QUERY PLAN) on a migrated file with enough
sessions and tasks that the planner has a real choice, with and without statistics."""

from __future__ import annotations

import sqlite3

import pytest

from broker.models.sessions import SessionFilter, SessionStatus
from broker.storage.sql.sessions import list_sessions_sql
from broker.storage.sqlite.migrate import migrate
from broker.storage.sqlite.queries import SQLITE

N = 5_000


@pytest.fixture(scope="module", params=["analyzed", "no-statistics"])
def conn(tmp_path_factory, request):
    db = tmp_path_factory.mktemp("sessionplans") / "plans.db"
    migrate(str(db))
    c = sqlite3.connect(db)
    c.executemany(
        "INSERT INTO orchestration_sessions (session_id, created_by, parent_session_id, status, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, 0)",
        [
            (f"s{i}", f"planner{i % 50}", f"s{i % 100}" if i >= 100 else None,
             ("active", "completed", "failed", "cancelled", "archived")[i % 5], i)
            for i in range(N)
        ],
    )  # fmt: skip
    c.execute("DROP TRIGGER trg_tasks_insert")
    c.execute("INSERT INTO capability_sets (capset_id, caps) VALUES (1, '[]')")
    c.executemany(
        "INSERT INTO tasks (task_id, title, capset_id, dispatch_rank, root_id, path, lease_timeout_us,"
        " status, session_id, created_at, updated_at) VALUES (?, 't', 1, 0, ?, ?, 1, ?, ?, 0, 0)",
        [(f"t{i}", f"t{i}", f"/t{i}/", ("ready", "blocked")[i % 2], f"s{i % N}") for i in range(4 * N)],
    )
    c.commit()
    if request.param == "analyzed":
        c.execute("ANALYZE")
    yield c
    c.close()


def plan(conn: sqlite3.Connection, sql: str, args: list | tuple) -> str:
    return " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


def _page(**flt: object) -> tuple[str, list]:
    return list_sessions_sql("?", SessionFilter(**flt))  # type: ignore[arg-type]


CASES = [
    ("a session's tasks by status", SQLITE.sessions.task_counts, ("s7",), "idx_tasks_session"),
    ("an unfinished task of a session", SQLITE.sessions.has_unfinished, ("s7",), "idx_tasks_session"),
    ("a failed task of a session", SQLITE.sessions.has_failed, ("s7",), "idx_tasks_session"),
    ("all sessions, oldest first", *_page(page_size=50), "idx_sessions_created"),
    ("by initiating agent", *_page(initiated_by="planner3"), "idx_sessions_created_by"),
    ("children of a session", *_page(parent_session_id="s7"), "idx_sessions_parent"),
    ("by status", *_page(status=SessionStatus.FAILED), "idx_sessions_status"),
    ("all sessions, newest first", *_page(newest_first=True, after=(9, "s9")), "idx_sessions_created"),
    (
        "by status, newest first",
        *_page(status=SessionStatus.FAILED, newest_first=True),
        "idx_sessions_status",
    ),
]


@pytest.mark.parametrize(("what", "sql", "args", "index"), CASES, ids=[c[0] for c in CASES])
def test_session_reads_use_their_index(conn, what, sql, args, index):
    p = plan(conn, sql, args)
    assert index in p and "TEMP B-TREE" not in p, f"{what}: {p}"
