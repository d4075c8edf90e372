"""Hot registry queries are served by indexes (EXPLAIN QUERY PLAN), on a migrated file
filled with enough rows that the planner has a real choice."""

from __future__ import annotations

import sqlite3

import pytest

from broker.models.agents import AgentFilter, AgentStatus
from broker.storage.sql.agents import list_agents_sql
from broker.storage.sqlite.migrate import migrate
from broker.storage.sqlite.queries import SQLITE


@pytest.fixture(scope="module", params=["analyzed", "no-statistics"])
def conn(tmp_path_factory, request):
    db = tmp_path_factory.mktemp("plans") / "plans.db"
    migrate(str(db))
    c = sqlite3.connect(db)
    statuses = ["available", "busy", "maintenance", "offline", "deregistered"]
    c.executemany(
        "INSERT INTO agents (agent_id, name, agent_type, max_concurrent_tasks, status,"
        " registered_at, updated_at, last_heartbeat_at) VALUES (?, ?, ?, 1, ?, 0, 0, ?)",
        [(f"a{i:05d}", "n", f"t{i % 7}", statuses[i % 5], i) for i in range(5000)],
    )
    c.executemany(
        "INSERT INTO agent_capabilities (capability, agent_id) VALUES (?, ?)",
        [(f"cap{i % 50}", f"a{i:05d}") for i in range(5000)],
    )
    c.commit()
    if request.param == "analyzed":
        c.execute("ANALYZE")
    yield c
    c.close()


def plan(conn, sql, args):
    rows = conn.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
    return " | ".join(r[3] for r in rows)


def test_sweeper_liveness_scan_uses_index(conn):
    p = plan(conn, SQLITE.agents.liveness_scan, (100,))
    assert "idx_agents_liveness" in p, p
    assert "SCAN" not in p, p


def test_retention_scan_of_offline_agents_uses_index(conn):
    p = plan(conn, SQLITE.agents.offline_since, (100, 500))
    assert "idx_agents_status (status=?)" in p and "TEMP B-TREE" not in p, p


def test_list_by_status_uses_index(conn):
    sql, args = list_agents_sql("?", AgentFilter(status=AgentStatus.BUSY, page_size=100))
    p = plan(conn, sql, args)
    assert "idx_agents_status" in p, p


def test_list_by_capability_uses_index(conn):
    sql, args = list_agents_sql("?", AgentFilter(capability="cap3", page_size=100))
    p = plan(conn, sql, args)
    assert "SEARCH agent_capabilities USING PRIMARY KEY (capability=?)" in p, p
