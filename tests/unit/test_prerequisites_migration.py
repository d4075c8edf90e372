"""The migration that keeps a task's prerequisites in one place (SQLite 0016, PostgreSQL 0010):
the ``tasks.depends_on`` copy goes, and ``task_dependencies`` keeps the order the prerequisites were
given in (``ordinal``), so that a task reads back as it did before the upgrade."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from broker.models.tasks import Dependency, DepType
from broker.storage import open_storage
from tests.conftest import make_settings

TASKS = (
    "(task_id, title, capset_id, dispatch_rank, root_id, path, lease_timeout_us, status, created_at,"
    " updated_at, depends_on, dep_depth)"
)
ROWS = [
    ("t-a", "'[]'", 0),
    ("t-b", "'[]'", 0),
    # t-c waits on t-b (hard), then t-a (soft): not the prerequisites' own order
    ("t-c", """'[["t-b", "hard"], ["t-a", "soft"]]'""", 1),
]
EDGES = [("t-c", "t-a", "soft"), ("t-c", "t-b", "hard")]


def _before(src: Path, dest: Path, last: int) -> Path:
    """The migrations up to ``last`` (the schema before the one under test)."""
    dest.mkdir()
    for f in src.glob("*.sql"):
        if int(f.name[:4]) <= last:
            shutil.copy(f, dest)
    return dest


def _fill(execute) -> None:
    execute("INSERT INTO capability_sets (capset_id, caps) VALUES (1, '[]')")
    for task_id, deps, depth in ROWS:
        execute(
            f"INSERT INTO tasks {TASKS} VALUES ('{task_id}', '{task_id}', 1, 0, '{task_id}', '/{task_id}/',"
            f" 1, 'ready', 0, 0, {deps}, {depth})"
        )
    for dependent, prerequisite, kind in EDGES:
        execute(
            "INSERT INTO task_dependencies (dependent_id, prerequisite_id, dep_type)"
            f" VALUES ('{dependent}', '{prerequisite}', '{kind}')"
        )


WANT = (Dependency("t-b", DepType.HARD), Dependency("t-a", DepType.SOFT))


async def test_sqlite_prerequisites_keep_their_order_and_depends_on_goes(tmp_path):
    from broker.storage.sqlite.migrate import MIGRATIONS_DIR, migrate

    db = tmp_path / "old.db"
    migrate(str(db), _before(MIGRATIONS_DIR, tmp_path / "old", 15))
    with sqlite3.connect(db) as conn:
        _fill(conn.execute)
    assert migrate(str(db)).applied[0] == 16
    with sqlite3.connect(db) as conn:
        assert "depends_on" not in [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
        edges = conn.execute("SELECT prerequisite_id, ordinal FROM task_dependencies ORDER BY ordinal")
        assert edges.fetchall() == [("t-b", 0), ("t-a", 1)]
    store = await open_storage(make_settings(tmp_path, db=str(db)))
    try:
        assert (await store.get_task("t-c")).depends_on == WANT
    finally:
        await store.close()


async def test_postgresql_prerequisites_keep_their_order_and_depends_on_goes(tmp_path, pg_cluster):
    import psycopg

    from broker.storage.postgres.migrate import MIGRATIONS_DIR, migrate

    url = pg_cluster.url(pg_cluster.create_database())
    migrate(url, _before(MIGRATIONS_DIR, tmp_path / "old", 9))
    with psycopg.connect(url, autocommit=True) as conn:
        _fill(lambda sql: conn.execute(sql.encode()))
    assert migrate(url).applied[0] == 10
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks'"
        ).fetchall()
        assert ("depends_on",) not in columns
        edges = conn.execute("SELECT prerequisite_id, ordinal FROM task_dependencies ORDER BY ordinal")
        assert edges.fetchall() == [("t-b", 0), ("t-a", 1)]
    store = await open_storage(make_settings(tmp_path, db=url))
    try:
        assert (await store.get_task("t-c")).depends_on == WANT
    finally:
        await store.close()
