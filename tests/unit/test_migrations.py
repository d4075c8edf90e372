"""Migrations: new file, already-migrated file, failing migration."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from broker.errors import MigrationError
from broker.storage.sqlite.migrate import MIGRATIONS_DIR, load_migrations, migrate, split_statements

EXPECTED_TABLES = {
    "agents",
    "agent_capabilities",
    "a2a_messages",
    "tasks",
    "task_dependencies",
    "task_state_history",
    "orchestration_sessions",
    "schema_migrations",
}


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_new_file_gets_every_table(tmp_path):
    db = tmp_path / "new.db"
    report = migrate(str(db))
    assert report.applied == [m.version for m in load_migrations()]
    assert report.backup is None  # nothing to back up in a new file
    assert EXPECTED_TABLES <= tables(db)


def test_already_migrated_file_is_left_alone(tmp_path):
    db = tmp_path / "b.db"
    migrate(str(db))
    before = dump(db)
    report = migrate(str(db))
    assert report.applied == [] and report.backup is None
    assert dump(db) == before
    assert not list(tmp_path.glob("b.db.bak-*"))


def test_constraints_live_in_the_database(tmp_path):
    db = tmp_path / "c.db"
    migrate(str(db))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys=ON")
    now = 1
    conn.execute(
        "INSERT INTO agents (agent_id, name, max_concurrent_tasks,"
        " registered_at, updated_at, last_heartbeat_at)"
        " VALUES ('a', 'a', 2, ?, ?, ?)",
        (now, now, now),
    )
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE agents SET current_task_count = 3 WHERE agent_id = 'a'")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE agents SET status = 'sleeping' WHERE agent_id = 'a'")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO agent_capabilities (capability, agent_id) VALUES ('x', 'nobody')")
    conn.close()


def test_failing_migration_leaves_file_as_it_was_with_backup(tmp_path):
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations)
    db = tmp_path / "f.db"
    migrate(str(db), migrations)
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO agents (agent_id, name, max_concurrent_tasks,"
        " registered_at, updated_at, last_heartbeat_at)"
        " VALUES ('keep', 'keep', 1, 1, 1, 1)"
    )
    conn.commit()
    conn.close()
    before = dump(db)

    # Two new migrations: the first would succeed alone, the second fails half-way.
    (migrations / "0901_add_column.sql").write_text("ALTER TABLE agents ADD COLUMN extra TEXT;\n")
    (migrations / "0902_broken.sql").write_text(
        "CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"
    )
    with pytest.raises(MigrationError) as err:
        migrate(str(db), migrations)
    assert "0902_broken" in str(err.value)

    assert dump(db) == before  # nothing of 0901 or 0902 remains
    backups = list(tmp_path.glob("f.db.bak-*"))
    assert len(backups) == 1
    assert dump(backups[0]) == before
    with sqlite3.connect(db) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert 901 not in versions and 902 not in versions

    # Fixed, it applies, after one more backup.
    (migrations / "0902_broken.sql").write_text("CREATE TABLE fixed (x INTEGER);\n")
    report = migrate(str(db), migrations)
    assert report.applied == [901, 902] and report.backup is not None
    assert "fixed" in tables(db)


def test_split_statements_keeps_triggers_whole():
    sql = """
    -- comment
    CREATE TABLE t (x);
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET x = 1;
        UPDATE t SET x = 2;
    END;
    """
    stmts = split_statements(sql)
    assert len(stmts) == 2
    assert stmts[1].startswith("CREATE TRIGGER") and stmts[1].rstrip().endswith("END;")


def test_bad_migration_name_is_refused(tmp_path):
    (tmp_path / "1_x.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError):
        load_migrations(tmp_path)
