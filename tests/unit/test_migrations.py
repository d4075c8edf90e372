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
    assert report.applied == [m.version for m in load_migrations(MIGRATIONS_DIR)]
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


def _agents_rebuild_widening_status(db: Path) -> str:
    """A migration in SQLite's rebuild style: ``agents`` (which other tables reference) gets a
    wider status CHECK. The new definition is the file's current one, so the test follows the
    schema as it evolves."""
    with sqlite3.connect(db) as conn:
        (table_sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'agents'").fetchone()
        others = [
            r[0]
            for r in conn.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'agents'"
                " AND type IN ('index', 'trigger') AND sql IS NOT NULL"
            )
        ]
        columns = ", ".join(r[1] for r in conn.execute("PRAGMA table_info(agents)"))
    old_check = "'offline', 'deregistered')"
    assert old_check in table_sql
    new_table = table_sql.replace("CREATE TABLE agents", "CREATE TABLE agents_new", 1).replace(
        old_check, "'offline', 'deregistered', 'draining')"
    )
    return (
        f"{new_table};\n"
        f"INSERT INTO agents_new ({columns}) SELECT {columns} FROM agents;\n"
        "DROP TABLE agents;\n"
        "ALTER TABLE agents_new RENAME TO agents;\n" + "".join(f"{sql};\n" for sql in others)
    )


def _file_with_an_agent_and_its_dependents(tmp_path: Path) -> tuple[Path, Path]:
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations)
    db = tmp_path / "r.db"
    migrate(str(db), migrations)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(
        "INSERT INTO agents (agent_id, name, max_concurrent_tasks,"
        " registered_at, updated_at, last_heartbeat_at) VALUES ('a', 'a', 2, 1, 1, 1)"
    )
    conn.execute("INSERT INTO agent_capabilities (capability, agent_id) VALUES ('x', 'a')")
    conn.execute(
        "INSERT INTO a2a_messages (message_id, send_id, sender_id, recipient_id, target_kind,"
        " payload, created_at) VALUES ('m1', 'm1', 'a', 'a', 'direct', x'00', 1)"
    )
    conn.commit()
    conn.close()
    return migrations, db


def test_migration_rebuilding_a_referenced_table_widens_its_check_and_keeps_dependents(tmp_path):
    migrations, db = _file_with_an_agent_and_its_dependents(tmp_path)
    (migrations / "0901_agents_may_drain.sql").write_text(_agents_rebuild_widening_status(db))
    triggers = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
    with sqlite3.connect(db) as conn:
        triggers_before = conn.execute(triggers).fetchall()

    report = migrate(str(db), migrations)

    assert report.applied == [901]
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys=ON")
    try:
        # The rows of the rebuilt table and of the tables referencing it are all still there
        # (no ON DELETE CASCADE fired when the old table was dropped).
        assert conn.execute("SELECT agent_id, status FROM agents").fetchall() == [("a", "available")]
        assert conn.execute("SELECT capability, agent_id FROM agent_capabilities").fetchall() == [("x", "a")]
        assert conn.execute("SELECT sender_id FROM a2a_messages").fetchall() == [("a",)]
        # The widened CHECK accepts the new value; the rest of it still refuses.
        conn.execute("UPDATE agents SET status = 'draining' WHERE agent_id = 'a'")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE agents SET status = 'sleeping' WHERE agent_id = 'a'")
        # The foreign keys that point at the rebuilt table still hold.
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO agent_capabilities (capability, agent_id) VALUES ('y', 'nobody')")
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'agents'")}
        assert {"idx_agents_status", "idx_agents_type", "idx_agents_liveness"} <= indexes
        # The tasks triggers that keep agents' counts still name the (rebuilt) agents table.
        assert conn.execute(triggers).fetchall() == triggers_before
    finally:
        conn.close()


def test_migration_leaving_a_dangling_reference_is_refused_and_changes_nothing(tmp_path):
    migrations, db = _file_with_an_agent_and_its_dependents(tmp_path)
    before = dump(db)
    # Foreign keys are off while migrations run (so that tables can be rebuilt), which would let
    # this delete orphan the agent's capability and message: the check before COMMIT refuses it.
    (migrations / "0901_orphans.sql").write_text("DELETE FROM agents WHERE agent_id = 'a';\n")

    with pytest.raises(MigrationError) as err:
        migrate(str(db), migrations)

    assert "0901_orphans" in str(err.value) and "foreign key" in str(err.value)
    assert dump(db) == before
