"""Access tokens on the database, with no broker running: what the ``a2a-broker tokens`` command
uses (the layers above storage name no backend; this is the storage layer's door to it).

A SQLite file is opened directly, beside a running broker's connections (WAL allows a second
writer; the broker's ``<db>.lock`` is not taken), so that the first admin token can be made before
any broker runs (the command touches the marker file a running broker watches for revocations,
``security/tokens.py``). A PostgreSQL database is migrated if it is new, and a revocation tells
every broker on it in its own transaction (the brokers' relay hears it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

from ..config import sqlite_path
from .base import TokenRecord
from .sql import tokens as _tokens
from .sql.connection import Connection
from .sql.queries import Queries
from .sqlite.lock import create_private
from .sqlite.migrate import migrate
from .sqlite.queries import SQLITE

__all__ = ["TokenDb", "insert_token", "list_tokens", "open_db", "open_tokens", "revoke_token"]


def open_db(path: str) -> sqlite3.Connection:
    """The SQLite database, created owner-only if new and migrated; no broker lock taken."""
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


def is_postgres(url: str) -> bool:
    return url.split("://", 1)[0] in ("postgresql", "postgres")


class TokenDb:
    """Tokens on one database, each operation its own transaction."""

    def __init__(self, conn: Connection, q: Queries, transaction: Any, path: str | None) -> None:
        self._conn = conn
        self._q = q
        self._transaction = transaction  # () -> a context manager around one transaction
        # The SQLite file (a running broker watches a marker beside it for revocations: the
        # command touches it), None on PostgreSQL (the revocation's transaction tells the brokers).
        self.path = path

    def insert(self, rec: TokenRecord) -> None:
        with self._transaction():
            _tokens.insert_token(self._conn, self._q, rec)

    def list(self) -> list[TokenRecord]:
        with self._transaction():
            return _tokens.list_tokens(self._conn, self._q)

    def revoke(self, token_id: str, now: int) -> bool:
        with self._transaction():
            return _tokens.revoke_token(self._conn, self._q, token_id, now)


@contextmanager
def open_tokens(url: str) -> Iterator[TokenDb]:
    """The tokens of the database at ``url`` (a SQLite path or URL, or ``postgresql://``)."""
    if is_postgres(url):
        import psycopg

        from .postgres.connection import PgConnection, row_factory
        from .postgres.migrate import migrate as pg_migrate
        from .postgres.queries import POSTGRES

        pg_migrate(url)
        with psycopg.connect(url, autocommit=True, row_factory=row_factory) as raw:
            yield TokenDb(PgConnection(raw), POSTGRES, raw.transaction, None)
        return
    path = sqlite_path(url) or url
    with closing(open_db(path)) as conn:

        @contextmanager
        def transaction() -> Iterator[None]:
            yield  # autocommit: each statement is its own transaction

        yield TokenDb(conn, SQLITE, transaction, path)
