"""Hot task-queue queries are served by indexes (EXPLAIN QUERY PLAN) on a migrated file with
enough rows in every status that the planner has a real choice, with and without statistics."""

from __future__ import annotations

import json
import sqlite3

import pytest

from broker.models.tasks import TaskFilter, TaskStatus
from broker.storage.sql.tasks_read import GRAPH_NEIGHBOURS, list_tasks_sql
from broker.storage.sql.tasks_rows import capset_id_of, subtree_bounds
from broker.storage.sqlite.migrate import migrate
from broker.storage.sqlite.queries import SQLITE

T = SQLITE.tasks
L = SQLITE.limits
N = 20_000
KEYED = capset_id_of(("python",), keyed=True)
STATUSES = ["blocked", "ready", "ready", "running", "completed", "completed", "failed", "cancelled"]


@pytest.fixture(scope="module", params=["analyzed", "no-statistics"])
def conn(tmp_path_factory, request):
    db = tmp_path_factory.mktemp("taskplans") / "plans.db"
    migrate(str(db))
    c = sqlite3.connect(db)
    c.execute("DROP TRIGGER trg_tasks_insert")  # test data goes straight into every status
    sets = [(), ("python",), ("gpu", "python"), ("rust",), ("go", "python")]
    for caps in sets:
        c.execute(
            "INSERT INTO capability_sets VALUES (?, ?, 0)", (capset_id_of(caps), json.dumps(list(caps)))
        )
    c.execute("INSERT INTO capability_sets VALUES (?, ?, 1)", (KEYED, json.dumps(["python"])))
    c.executemany(
        "INSERT INTO key_queues (capset_id, concurrency_key, standing) VALUES (?, ?, ?)",
        [(KEYED, f"k{k}", float(k)) for k in range(13)],
    )
    rows = []
    for i in range(N):
        status = STATUSES[i % len(STATUSES)]
        root = f"t{(i // 50) * 50:06d}"
        tid = f"t{i:06d}"
        path = f"/{root}/" if tid == root else f"/{root}/{tid}/"
        running = status == "running"
        keyed = i % 10 == 1  # some of the python set's tasks have a concurrency key
        rows.append(
            (
                tid,
                KEYED if keyed else capset_id_of(sets[i % len(sets)]),
                float(i % 11) - i / 1000,
                root,
                1 if tid != root else 0,
                path,
                status,
                "a1" if running else None,
                i if running else None,
                i if status in ("completed", "failed", "cancelled") else None,
                i if status == "ready" and i % 3 == 0 else None,
                1 if status == "ready" and i % 3 == 0 else 0,
                i if i % 4 == 0 else None,
                f"k{i % 13}" if keyed else None,
            )
        )
    c.executemany(
        "INSERT INTO tasks (task_id, title, capset_id, dispatch_rank, root_id, level, path, lease_timeout_us,"
        " status, assigned_agent_id, lease_expires_at, finished_at, next_attempt_at, in_backoff, deadline,"
        " concurrency_key, created_at, updated_at)"
        " VALUES (?, 't', ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
        rows,
    )
    c.executemany(
        "INSERT INTO task_dependencies (dependent_id, prerequisite_id) VALUES (?, ?)",
        [(f"t{i:06d}", f"t{i - 1:06d}") for i in range(1, N, 2)],
    )
    c.commit()
    if request.param == "analyzed":
        c.execute("ANALYZE")
    yield c
    c.close()


def plan(conn, sql, args):
    rows = conn.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
    return " | ".join(r[3] for r in rows)


def test_next_ready_task_for_a_capability_set_is_one_index_range_without_sorting(conn):
    p = plan(conn, T.next_ready, (capset_id_of(("python",)), 10))
    assert "USING INDEX idx_tasks_ready (capset_id=?)" in p, p
    assert "TEMP B-TREE" not in p, p


def test_a_keyed_sets_keys_are_read_best_standing_first_by_index(conn):
    p = plan(conn, L.heads, (KEYED, 100, 0))
    assert "INDEX idx_key_queues_standing (capset_id=?" in p, p
    assert "TEMP B-TREE" not in p, p


def test_the_next_tasks_of_several_keys_are_one_index_range_each(conn):
    p = plan(conn, SQLITE.key_tasks(3), (KEYED, "k1", 5, KEYED, "k2", 5, KEYED, "k3", 5))
    assert p.count("USING INDEX idx_tasks_keyed (capset_id=? AND concurrency_key=?)") == 3, p
    assert "TEMP B-TREE" not in p, p


def test_a_keys_turn_reads_its_next_head_by_index(conn):
    pairs = json.dumps([[KEYED, "k1"], [KEYED, "k2"]])
    p = plan(conn, L.serve, {"pairs": pairs, "served": 5, "aging": 3e8})
    assert "USING INDEX idx_tasks_keyed (capset_id=? AND concurrency_key=?)" in p, p
    assert "SEARCH key_queues USING PRIMARY KEY" in p, p
    assert "SCAN key_queues" not in p, p


def test_dependents_of_a_task_use_an_index(conn):
    p = plan(conn, T.dependents, ("t000010",))
    assert "idx_task_dependencies_prerequisite (prerequisite_id=?)" in p, p


def test_expired_leases_use_an_index(conn):
    p = plan(conn, T.expired_leases, {"now": 500, "lim": 100})
    assert "USING INDEX idx_tasks_lease (lease_expires_at<?)" in p, p
    assert "TEMP B-TREE" not in p, p


def test_an_agents_record_reads_its_finished_tasks_by_index(conn):
    p = plan(conn, SQLITE.agents.outcomes, ("a1", 0, 1000))
    assert "idx_tasks_agent (assigned_agent_id=? AND status=?)" in p, p


def test_a_tasks_dependency_edges_use_indexes(conn):
    p = plan(conn, T.prerequisites, ("t000011",))
    assert "SEARCH d USING PRIMARY KEY (dependent_id=?)" in p and "SCAN" not in p.replace("SCAN d", ""), p
    p = plan(conn, T.dependent_edges, ("t000010",))
    assert "idx_task_dependencies_prerequisite (prerequisite_id=?)" in p, p


def test_attempts_past_their_max_run_time_use_an_index(conn):
    p = plan(conn, T.timed_out, (500, 100))
    assert "USING INDEX idx_tasks_run_deadline (run_deadline>? AND run_deadline<?)" in p, p
    assert "TEMP B-TREE" not in p, p


def test_subtree_by_path_is_a_range_scan(conn):
    p = plan(conn, T.subtree, (*subtree_bounds("/t000050/"), 10_000))
    assert "USING INDEX idx_tasks_path (path>? AND path<?)" in p, p
    assert "TEMP B-TREE" not in p, p


def test_get_tree_pages_and_counts_are_range_scans(conn):
    """GetTree: a page after a path (optionally depth-limited) and the subtree's counts walk the
    path index in order, with no sort."""
    lo, hi = subtree_bounds("/t000050/")
    for sql, args in (
        (T.subtree_page, (lo, hi, "/t000050/t000060/", 100)),
        (T.subtree_page_depth, (lo, hi, "", 1, 100)),
        (T.subtree_counts, (lo, hi)),
    ):
        p = plan(conn, sql, args)
        assert "USING INDEX idx_tasks_path" in p, (sql, p)
        assert "TEMP B-TREE FOR ORDER BY" not in p, (sql, p)


def test_other_sweeper_and_bookkeeping_queries_use_indexes(conn):
    assert "idx_tasks_backoff" in plan(conn, T.due_backoff, (100,))
    assert "idx_tasks_agent" in plan(conn, T.holder_running, ("a1",))
    assert "idx_tasks_deadline" in plan(conn, T.urgency_window, (100,))
    p = plan(conn, T.unfinished_prereqs, ("t000011",))
    assert "SEARCH d USING PRIMARY KEY (dependent_id=?)" in p and "task_id=?" in p, p


@pytest.mark.parametrize(
    ("flt", "index"),
    [
        (TaskFilter(status=TaskStatus.READY), "idx_tasks_status"),
        (TaskFilter(session_id="s"), "idx_tasks_session"),
        (TaskFilter(agent_id="a1"), "idx_tasks_agent"),
        (TaskFilter(parent_id="t000050"), "idx_tasks_parent"),
        (TaskFilter(task_type="report"), "idx_tasks_type"),
        (TaskFilter(root_id="t000050"), "idx_tasks_root"),
        (TaskFilter(level=1), "idx_tasks_level"),
        (TaskFilter(created_after=100, created_before=200), "idx_tasks_created"),
        (TaskFilter(capability="python"), "SEARCH x USING PRIMARY KEY (capability=?"),
        (TaskFilter(tag="x"), "SEARCH x USING PRIMARY KEY (tag=?"),
        (TaskFilter(label="team=search"), "SEARCH x USING PRIMARY KEY (label=?"),
        (
            TaskFilter(capability="python", label="team=search"),
            "SEARCH task_labels USING PRIMARY KEY (label=?",
        ),
        (
            TaskFilter(tag="x", status=TaskStatus.READY, after=5),
            "SEARCH x USING PRIMARY KEY (tag=? AND seq>?)",
        ),
    ],
)
def test_list_filters_use_indexes(conn, flt, index):
    sql, args = list_tasks_sql("?", flt)
    p = plan(conn, sql, args)
    assert index in p, p
    assert "SCAN t " not in p + " ", p


@pytest.mark.parametrize(
    ("flt", "index"),
    [
        (TaskFilter(), "SCAN t"),
        (TaskFilter(status=TaskStatus.READY, after=500), "idx_tasks_status (status=? AND seq<?)"),
        (TaskFilter(session_id="s"), "idx_tasks_session"),
        (TaskFilter(agent_id="a1", status=TaskStatus.FAILED), "idx_tasks_agent"),
        (TaskFilter(capability="python", after=500), "SEARCH x USING PRIMARY KEY (capability=? AND seq<?)"),
    ],
)
def test_newest_first_pages_read_the_same_indexes_backwards(conn, flt, index):
    """The console's default order: no sort, the index (or the table's seq) read from its end."""
    sql, args = list_tasks_sql("?", flt.model_copy(update={"newest_first": True}))
    p = plan(conn, sql, args)
    assert index in p and "TEMP B-TREE" not in p, p


def test_a_tasks_graph_reads_its_neighbours_by_index(conn):
    """The console's graph of a task: prerequisites, dependents and children of a frontier."""
    prereqs, dependents, children = (s.format(ids="?,?", p="?") for s in GRAPH_NEIGHBOURS)
    p = plan(conn, prereqs, ("t000011", "t000013", 500))
    assert "SEARCH task_dependencies USING COVERING INDEX" in p or "PRIMARY KEY (dependent_id=?)" in p, p
    p = plan(conn, dependents, ("t000010", "t000012", 500))
    assert "idx_task_dependencies_prerequisite (prerequisite_id=?)" in p, p
    p = plan(conn, children, ("t000050", "t000100", 500))
    assert "idx_tasks_parent (parent_id=?)" in p, p
