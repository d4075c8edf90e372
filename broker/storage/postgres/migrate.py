"""Numbered schema migrations for a PostgreSQL database, run once however many brokers start.

Files ``NNNN_name.sql`` in ``broker/storage/postgres/migrations`` (PostgreSQL's dialect; the same
numbering and loader as SQLite's, ``broker/storage/sql/migrations.py``) are applied in order and
recorded in ``schema_migrations``. A broker takes a session advisory lock before it looks: a second
broker starting at the same moment waits, then finds nothing left to do. All pending migrations
run in one transaction (PostgreSQL's DDL is transactional): one that fails leaves the database as
it was, and the error names it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg

from ...clock import now_us
from ...errors import MigrationError
from ..sql.migrations import MigrationReport, load_migrations

log = logging.getLogger("broker.storage.migrate")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x_A2A_0001  # pg_advisory_lock key: one migrator at a time per database


def migrate(url: str, directory: Path = MIGRATIONS_DIR) -> MigrationReport:
    """Bring the database at ``url`` up to the newest migration. Safe to run again, and at once
    from several brokers."""
    migrations = load_migrations(directory)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            pending = [m for m in migrations if m.version not in done]
            current = None
            try:
                with conn.transaction():
                    for m in pending:
                        current = m
                        conn.execute(m.sql.encode())  # a script: no parameters, several statements
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                            (m.version, m.name, now_us()),
                        )
            except psycopg.Error as exc:
                name = f"{current.version:04d}_{current.name}" if current else "?"
                raise MigrationError(f"migration {name} failed and nothing was changed: {exc}") from exc
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    for m in pending:
        log.info("applied migration %04d_%s", m.version, m.name)
    return MigrationReport([m.version for m in pending], None)
