"""Numbered migrations: files ``NNNN_name.sql``, one folder per dialect (SQLite's in
``broker/storage/migrations``, PostgreSQL's in ``broker/storage/postgres/migrations``), loaded
the same way and applied by each backend's ``migrate``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import MigrationError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class MigrationReport:
    applied: list[int]
    backup: Path | None


def load_migrations(directory: Path) -> list[Migration]:
    """The migrations of a folder, ``NNNN_name.sql`` files, in order."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"migration file name {path.name!r} is not NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a number in {directory}")
    return found
