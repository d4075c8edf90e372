"""Access tokens on a SQLite database file, with no broker running: what the ``a2a-broker tokens``
command uses (the layers above storage name no backend; this is the storage layer's door to it).

The file is opened directly, beside a running broker's connections (WAL allows a second writer;
the broker's ``<db>.lock`` is not taken), so that the first admin token can be made before any
broker runs.
"""

from __future__ import annotations

import sqlite3

from .base import TokenRecord
from .sql import tokens as _tokens
from .sqlite.lock import create_private
from .sqlite.migrate import migrate
from .sqlite.queries import SQLITE

__all__ = ["insert_token", "list_tokens", "open_db", "revoke_token"]


def open_db(path: str) -> sqlite3.Connection:
    """The database, created owner-only if new and migrated; no broker lock taken."""
    create_private(path)
    migrate(path)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def insert_token(conn: sqlite3.Connection, rec: TokenRecord) -> None:
    _tokens.insert_token(conn, SQLITE, rec)


def list_tokens(conn: sqlite3.Connection) -> list[TokenRecord]:
    return _tokens.list_tokens(conn, SQLITE)


def revoke_token(conn: sqlite3.Connection, token_id: str, now: int) -> bool:
    """Revoke a token; False when there is no such token (revoking twice is fine)."""
    return _tokens.revoke_token(conn, SQLITE, token_id, now)
