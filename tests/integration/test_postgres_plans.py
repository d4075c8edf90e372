"""The hot statements of the PostgreSQL backend are served by the indexes made for them (EXPLAIN),
on a migrated database filled with enough rows, analyzed, and with sequential scans priced out so
that a plan shows which index *can* serve each statement."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from broker.models.a2a import A2AListQuery
from broker.models.messages import MessageFilter
from broker.models.sessions import SessionFilter, SessionStatus
from broker.models.tasks import TaskFilter
from broker.storage.postgres import messages as pgm
from broker.storage.postgres.queries import POSTGRES
from broker.storage.sql import a2a as a2a_rows
from broker.storage.sql.message_rows import list_messages_sql
from broker.storage.sql.sessions import list_sessions_sql
from broker.storage.sql.tasks_read import GRAPH_NEIGHBOURS, list_tasks_sql

M, T, A, SE = POSTGRES.messages, POSTGRES.tasks, POSTGRES.agents, POSTGRES.sessions

# Under pytest -n (make test) on one worker, which builds the module's filled database once (15 s).
pytestmark = pytest.mark.xdist_group("postgres_plans")

FILL = [
    "INSERT INTO agents (agent_id, name, max_concurrent_tasks, status, registered_at, updated_at,"
    " last_heartbeat_at) SELECT 'a' || i, 'n', 50, (ARRAY['available','busy','offline'])[1 + i % 3], 0, 0, i"
    " FROM generate_series(1, 2000) i",
    "INSERT INTO a2a_messages (message_id, send_id, sender_id, recipient_id, target_kind,"
    " target_capability, payload, status, attempt, created_at, ack_deadline, delivered_at, finished_at,"
    " expires_at, deliver_after)"
    " SELECT 'm' || i, 'm' || i, 'a1', CASE WHEN i % 4 = 0 THEN NULL ELSE 'a' || (i % 2000 + 1) END,"
    " CASE WHEN i % 4 = 0 THEN 'anycast' ELSE 'direct' END, CASE WHEN i % 4 = 0 THEN 'cap' || i % 20 END,"
    " '\\x00'::bytea, (ARRAY['pending','delivered','processed','failed'])[1 + i % 4],"
    " CASE WHEN i % 4 = 0 THEN 0 ELSE 1 END, i,"
    " CASE WHEN i % 4 = 1 THEN i END, CASE WHEN i % 4 = 1 THEN i END, CASE WHEN i % 4 = 2 THEN i END,"
    " CASE WHEN i % 10 = 0 THEN i END, CASE WHEN i % 8 = 0 THEN i END"
    " FROM generate_series(1, 20000) i",
    "UPDATE a2a_messages SET conversation_id = 'c' || (seq % 500)",
    "INSERT INTO capability_sets (capset_id, caps) VALUES (1, '[]'), (2, '[\"x\"]')",
    "INSERT INTO tasks (task_id, title, capset_id, dispatch_rank, root_id, path, lease_timeout_us, status,"
    " created_at, updated_at, deadline)"
    " SELECT 't' || i, 't', 1 + i % 2, i, 't' || i, '/t' || i || '/', 1, 'ready', i, i,"
    " CASE WHEN i % 5 = 0 THEN i END FROM generate_series(1, 20000) i",
    "UPDATE tasks SET status = 'running', assigned_agent_id = 'a' || (seq % 2000 + 1), lease_expires_at = seq"
    " WHERE seq % 3 = 0",
    "UPDATE tasks SET in_backoff = 1, next_attempt_at = seq WHERE seq % 3 = 1 AND seq % 7 = 0",
    "UPDATE tasks SET run_deadline = seq WHERE seq % 3 = 0 AND seq % 2 = 0",
    "UPDATE tasks SET status = 'running', assigned_agent_id = 'a' || (seq % 2000 + 1), lease_expires_at = seq"
    " WHERE seq % 3 = 2",
    "UPDATE tasks SET status = 'completed', lease_expires_at = NULL, started_at = seq - 1, finished_at = seq"
    " WHERE seq % 3 = 2",
    "UPDATE tasks SET status = 'failed', lease_expires_at = NULL, finished_at = seq WHERE seq % 15 = 0",
    "INSERT INTO orchestration_sessions (session_id, created_by, parent_session_id, status, created_at,"
    " updated_at) SELECT 's' || i, 'planner' || i % 50, CASE WHEN i > 100 THEN 's' || i % 100 END,"
    " (ARRAY['active','completed','failed','cancelled','archived'])[1 + i % 5], i, 0"
    " FROM generate_series(1, 5000) i",
    "UPDATE tasks SET session_id = 's' || (seq % 5000 + 1)",
    "INSERT INTO task_labels (label, seq) SELECT 'team=' || (seq % 40), seq FROM tasks",
    "INSERT INTO task_dependencies (dependent_id, prerequisite_id)"
    " SELECT 't' || i, 't' || (i - 1) FROM generate_series(2, 20000, 2) i",
    "INSERT INTO a2a_tasks (task_id, owner, context_id, state, status_at, root_seq)"
    " SELECT 'a' || i, 'caller' || i % 50, 'ctx' || i % 2000,"
    " (ARRAY['TASK_STATE_COMPLETED','TASK_STATE_WORKING','TASK_STATE_FAILED'])[1 + i % 3], i, i"
    " FROM generate_series(1, 20000) i",
    "ANALYZE",
]


@pytest.fixture(scope="module")
def conn(pg_cluster) -> Iterator[psycopg.Connection[Any]]:
    url = pg_cluster.url(pg_cluster.create_database("a2a_template"))
    with psycopg.connect(url, autocommit=True) as c:
        for sql in FILL:
            c.execute(sql.encode())
        c.execute("SET enable_seqscan = off")
        yield c


def plan(conn: psycopg.Connection[Any], sql: str, args: Any) -> str:
    return " | ".join(r[0] for r in conn.execute("EXPLAIN " + sql, args))


def _tasks(**flt: Any) -> tuple[str, list[Any]]:
    return list_tasks_sql("%s", TaskFilter(**flt))


def _page(**flt: Any) -> tuple[str, list[Any]]:
    return list_sessions_sql("%s", SessionFilter(**flt))


def _a2a(**flt: Any) -> tuple[str, list[Any]]:
    return a2a_rows.list_sql("%s", A2AListQuery(**flt))


def _a2a_count(**flt: Any) -> tuple[str, list[Any]]:
    return a2a_rows.count_sql("%s", A2AListQuery(**flt))


NOW = {"now": 10_000, "n": 10, "lim": 100, "agent": "a7", "cap": "cap4", "before": 5_000}
HOT = [
    ("claim: an agent's next messages", M.next_direct, NOW, "idx_messages_next"),
    ("claim: a capability's next anycast messages", M.next_anycast, NOW, "idx_messages_anycast_next"),
    ("ack by message id", pgm.ACK, {**NOW, "ids": ["m5", "m9"]}, "a2a_messages_message_id_key"),
    ("sweep: ack deadlines passed", pgm.LAPSED, NOW, "idx_messages_ack_deadline"),
    ("sweep: expiry", pgm.EXPIRING, NOW, "idx_messages_expiry"),
    ("sweep: retention", pgm.PURGEABLE, NOW, "idx_messages_retention"),
    ("an agent's deliveries, released", "SELECT seq FROM a2a_messages WHERE recipient_id = %(agent)s"
     " AND status = 'delivered'", NOW, "idx_messages_delivered_to"),
    ("scheduled messages come due", M.due_scheduled, NOW, "idx_messages_scheduled"),
    ("lease: a capability set's next ready tasks", T.next_ready, (1, 10), "idx_tasks_ready"),
    ("sweep: lapsed leases", T.expired_leases, {"now": 5_000, "lim": 100}, "idx_tasks_lease"),
    ("sweep: attempts past max_run_time", T.timed_out, (5_000, 100), "idx_tasks_run_deadline"),
    ("sweep: backoffs due", T.due_backoff, (5_000,), "idx_tasks_backoff"),
    ("a departed agent's running tasks", T.holder_running, ("a7",), "idx_tasks_agent"),
    ("an agent's record: its finished tasks", A.outcomes, ("a7", 0, 1000), "idx_tasks_agent"),
    ("sweep: deadline urgency", T.urgency_window, (5_000,), "idx_tasks_deadline"),
    ("sweep: overdue heartbeats", A.liveness_scan, (100,), "idx_agents_liveness"),
    ("a session's tasks by status", SE.task_counts, ("s7",), "idx_tasks_session"),
    ("an unfinished task of a session", SE.has_unfinished, ("s7",), "idx_tasks_session"),
    ("a failed task of a session", SE.has_failed, ("s7",), "idx_tasks_session"),
    ("sweep: offline agents past the retention", A.offline_since, (100, 500), "idx_agents_status"),
    ("A2A ListTasks: a caller's, newest first", *_a2a(owner="caller7"), "idx_a2a_tasks_owner"),
    ("A2A ListTasks: a caller's in a state", *_a2a(owner="caller7", state="TASK_STATE_FAILED"),
     "idx_a2a_tasks_owner_state"),
    ("A2A ListTasks: a caller's in a context", *_a2a(owner="caller7", context_id="ctx7"),
     "idx_a2a_tasks_owner_context"),
    ("A2A ListTasks: an admin's, newest first", *_a2a(owner=None, after=(500, "a9")), "idx_a2a_tasks_recent"),
    # (a third of the tasks in that state: reading the recent ones backwards fills a page as soon)
    ("A2A ListTasks: an admin's in a state", *_a2a(owner=None, state="TASK_STATE_FAILED"),
     "Index Scan Backward using idx_a2a_tasks_"),
    ("A2A ListTasks total: a caller's in a state", *_a2a_count(owner="caller7", state="TASK_STATE_FAILED"),
     "idx_a2a_tasks_owner_state"),
    ("A2A ListTasks total: a caller's since a time", *_a2a_count(owner="caller7", since_us=19_000),
     "idx_a2a_tasks_owner"),
    ("sessions, oldest first", *_page(page_size=50), "idx_sessions_created"),
    ("sessions by initiating agent", *_page(initiated_by="planner3"), "idx_sessions_created_by"),
    ("a session's child sessions", *_page(parent_session_id="s7"), "idx_sessions_parent"),
    ("sessions by status", *_page(status=SessionStatus.FAILED), "idx_sessions_status"),
    ("sessions, newest first", *_page(page_size=50, newest_first=True), "idx_sessions_created"),
    ("sessions by status, newest first", *_page(status=SessionStatus.FAILED, newest_first=True),
     "Index Scan Backward using idx_sessions_status"),
    ("tasks by type", *_tasks(task_type="report"), "idx_tasks_type"),
    ("a tree's tasks", *_tasks(root_id="t7"), "idx_tasks_root"),
    ("tasks by label", *_tasks(label="team=a"), "task_labels_pkey"),
    ("tasks at a depth", *_tasks(level=1), "idx_tasks_level"),
    ("tasks by time", *_tasks(created_after=10, created_before=20), "idx_tasks_created"),
    ("tasks, newest first", *_tasks(newest_first=True, after=500), "Index Scan Backward using tasks_pkey"),
    ("tasks by status, newest first", *_tasks(status="failed", newest_first=True),
     "Index Scan Backward using idx_tasks_status"),
    ("an agent's failed tasks, newest first", *_tasks(agent_id="a7", status="failed", newest_first=True),
     "Index Scan Backward using idx_tasks_agent"),
    ("a graph's prerequisites", GRAPH_NEIGHBOURS[0].format(ids="%s,%s", p="%s"), ("t7", "t9", 501),
     "task_dependencies_pkey"),
    ("a graph's dependents", GRAPH_NEIGHBOURS[1].format(ids="%s,%s", p="%s"), ("t7", "t9", 501),
     "idx_task_dependencies_prerequisite"),
    ("a graph's children", GRAPH_NEIGHBOURS[2].format(ids="%s,%s", p="%s"), ("t7", "t9", 501),
     "idx_tasks_parent"),
    ("messages, newest first", *list_messages_sql("%s", MessageFilter(newest_first=True)),
     "Index Scan Backward using a2a_messages_pkey"),
    ("an agent's messages, newest first",
     *list_messages_sql("%s", MessageFilter(recipient_id="a7", newest_first=True)), "idx_messages_recipient"),
    ("messages by type", *list_messages_sql("%s", MessageFilter(message_type="x")), "idx_messages_type"),
    ("conversations", M.conversations, ("", 100), "idx_messages_conversation"),
    ("an agent's conversations", M.conversations_of, ("", "a7", "a7", 100), "idx_messages_sender"),
    ("a conversation's counts", M.conversation_stats, ("c1",), "idx_messages_conversation"),
    ("a conversation's participants", M.conversation_people, ("c1",), "idx_messages_conversation"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "sql", "args", "index"), HOT, ids=[h[0] for h in HOT])
def test_hot_statement_uses_its_index(conn, what, sql, args, index):
    p = plan(conn, sql, args)
    assert index in p, f"{what}: {p}"
