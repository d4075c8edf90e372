"""Numbered, idempotent schema migrations for the SQLite file.

Files ``NNNN_name.sql`` in ``broker/storage/migrations`` are applied in order
and recorded in ``schema_migrations``. Before the
first pending migration changes a file that already holds a schema, the whole
file is copied beside it (``<file>.bak-<from>-to-<to>-<time>``) with SQLite's
online backup. All pending migrations run in one transaction; one that fails
rolls them all back, so the file is left as it was, and the error names it.

A migration may rebuild a table (SQLite cannot change a CHECK or drop a
constraint in place) with the documented procedure: ``CREATE TABLE x_new``,
copy the rows, ``DROP TABLE x``, ``ALTER TABLE x_new RENAME TO x``, recreate
the indexes and triggers. For that, foreign keys are switched off around the
transaction (the pragma is a no-op inside one, so it is set before BEGIN):
dropping a table that others reference would otherwise fail, or fire their
``ON DELETE CASCADE``. In their place, ``PRAGMA foreign_key_check`` runs after
each migration, before COMMIT, and any dangling reference refuses the
migration and rolls everything back. Foreign keys are switched on again after.
``legacy_alter_table`` is on meanwhile, so that the RENAME leaves alone the
triggers of other tables that name ``x`` (they refer to the rebuilt table);
a migration that renames a table for good rewrites such triggers itself.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from ...clock import now_us
from ...errors import MigrationError
from ..sql.migrations import Migration, MigrationReport, load_migrations

__all__ = ["MIGRATIONS_DIR", "Migration", "MigrationReport", "load_migrations", "migrate", "split_statements"]

log = logging.getLogger("broker.storage.migrate")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def split_statements(sql: str) -> list[str]:
    """Split a script into statements (triggers' inner semicolons kept together).

    ``executescript`` would commit before running, so statements are run one
    by one inside our own transaction instead.
    """
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()
    ):
        raise MigrationError("migration ends with an incomplete statement")
    return statements


def _applied(conn: sqlite3.Connection) -> set[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def _has_schema(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name != 'schema_migrations'"
    ).fetchone()
    return bool(row[0])


def _backup(conn: sqlite3.Connection, path: str, frm: int, to: int) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    dest = Path(f"{path}.bak-{frm:04d}-to-{to:04d}-{stamp}")
    n = 1
    while dest.exists():
        dest = Path(f"{path}.bak-{frm:04d}-to-{to:04d}-{stamp}.{n}")
        n += 1
    target = sqlite3.connect(dest)
    try:
        conn.backup(target)
    finally:
        target.close()
    return dest


def _check_foreign_keys(conn: sqlite3.Connection) -> None:
    """Refuse a migration that left a reference to a missing row (foreign keys are off)."""
    problems = conn.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        shown = "; ".join(
            f"{table} row {rowid} references a missing {parent} row"
            for table, rowid, parent, _ in problems[:3]
        )
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise MigrationError(f"foreign key check failed: {shown}{more}")


def migrate(path: str, directory: Path = MIGRATIONS_DIR) -> MigrationReport:
    """Bring the file at ``path`` up to the newest migration. Safe to run again."""
    migrations = load_migrations(directory)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        done = _applied(conn)
        pending = [m for m in migrations if m.version not in done]
        if not pending:
            return MigrationReport([], None)
        backup = None
        if path != ":memory:" and _has_schema(conn):
            backup = _backup(conn, path, max(done, default=0), pending[-1].version)
            log.info("backed up %s to %s before migrating", path, backup)
        # All pending migrations run in one transaction: a failure anywhere
        # leaves the file exactly as it was before this start-up.
        current = None
        conn.execute("PRAGMA foreign_keys=OFF")  # before BEGIN: inside a transaction it is a no-op
        conn.execute("PRAGMA legacy_alter_table=ON")
        try:
            conn.execute("BEGIN IMMEDIATE")
            for m in pending:
                current = m
                for statement in split_statements(m.sql):
                    conn.execute(statement)
                _check_foreign_keys(conn)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (m.version, m.name, now_us()),
                )
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            name = f"{current.version:04d}_{current.name}" if current else "?"
            raise MigrationError(
                f"migration {name} failed and nothing was changed: {exc}"
                + (f" (backup: {backup})" if backup else "")
            ) from exc
        finally:
            conn.execute("PRAGMA legacy_alter_table=OFF")
            conn.execute("PRAGMA foreign_keys=ON")
        applied = [m.version for m in pending]
        for m in pending:
            log.info("applied migration %04d_%s", m.version, m.name)
        return MigrationReport(applied, backup)
    finally:
        conn.close()
