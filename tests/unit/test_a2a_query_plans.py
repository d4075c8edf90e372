"""The A2A gateway's ListTasks pages and totals are served by the index of A2A tasks (EXPLAIN QUERY
PLAN on a migrated file with 20,000 of them, with and without statistics): filtered and counted by
index, newest status first with no sort, never a scan (#21: totalSize is the real count, not a scan)."""

from __future__ import annotations

import re
import sqlite3

import pytest

from broker.models.a2a import A2AListQuery
from broker.storage.sql.a2a import count_sql, list_sql
from broker.storage.sqlite.migrate import migrate

N = 20_000
STATES = ["TASK_STATE_COMPLETED", "TASK_STATE_WORKING", "TASK_STATE_FAILED"]


@pytest.fixture(scope="module", params=["analyzed", "no-statistics"])
def conn(tmp_path_factory, request):
    db = tmp_path_factory.mktemp("a2aplans") / "plans.db"
    migrate(str(db))
    c = sqlite3.connect(db)
    c.executemany(
        "INSERT INTO a2a_tasks (task_id, owner, context_id, state, status_at, root_seq)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(f"a{i}", f"caller{i % 50}", f"ctx{i % 2000}", STATES[i % 3], i, i) for i in range(N)],
    )
    c.commit()
    if request.param == "analyzed":
        c.execute("ANALYZE")
    yield c
    c.close()


def plan(conn: sqlite3.Connection, sql: str, args: list) -> str:
    return " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))


OWN = "caller7"
CASES = [
    ("a caller's, newest first", list_sql, {"owner": OWN}, "idx_a2a_tasks_owner"),
    ("a caller's, the next page", list_sql, {"owner": OWN, "after": (9000, "a9000")}, "idx_a2a_tasks_owner"),
    ("a caller's in a state", list_sql, {"owner": OWN, "state": STATES[2]}, "idx_a2a_tasks_owner_state"),
    (
        "a caller's in a context",
        list_sql,
        {"owner": OWN, "context_id": "ctx7"},
        "idx_a2a_tasks_owner_context",
    ),
    ("an admin's, newest first", list_sql, {"owner": None}, "idx_a2a_tasks_recent"),
    ("an admin's in a state", list_sql, {"owner": None, "state": STATES[2]}, "idx_a2a_tasks_state"),
    ("an admin's in a context", list_sql, {"owner": None, "context_id": "ctx7"}, "idx_a2a_tasks_context"),
    ("total: a caller's", count_sql, {"owner": OWN}, "idx_a2a_tasks_owner"),
    (
        "total: a caller's in a state",
        count_sql,
        {"owner": OWN, "state": STATES[2]},
        "idx_a2a_tasks_owner_state",
    ),
    ("total: a caller's since a time", count_sql, {"owner": OWN, "since_us": 19_000}, "idx_a2a_tasks_owner"),
    ("total: an admin's in a state", count_sql, {"owner": None, "state": STATES[2]}, "idx_a2a_tasks_state"),
]


@pytest.mark.parametrize(("what", "build", "flt", "index"), CASES, ids=[c[0] for c in CASES])
def test_list_and_total_use_the_index(conn, what, build, flt, index):
    sql, args = build("?", A2AListQuery(**flt))
    p = plan(conn, sql, args)
    # an index range (SEARCH), or an index read in order until the page is full; never the table
    assert index in p and not re.search(r"SCAN a2a_tasks(?! USING)", p), f"{what}: {p}"
    assert "TEMP B-TREE" not in p, f"{what}: {p}"
