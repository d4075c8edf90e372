"""A scratch table on each SQL dialect, for the tests that run the domain's SQL fragments: on SQLite
an in-memory table, on PostgreSQL a temporary table that shadows the migrated one of the test's
database. ``p`` names a parameter as that dialect's statements do."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from broker.storage.postgres import queries as pg
from broker.storage.sqlite import queries as lite

DIALECTS = ["sqlite", "postgres"]


@dataclass
class Db:
    conn: Any
    table: str
    p: Callable[[str], str]  # the dialect's named parameter

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql, params)

    def insert(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        marks = ", ".join(self.p(c) for c in columns)
        sql = f"INSERT INTO {self.table} ({', '.join(columns)}) VALUES ({marks})"
        if isinstance(self.conn, sqlite3.Connection):
            self.conn.executemany(sql, rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(sql, rows)

    def where(self, fragment: str, key: str, **params: object) -> set[Any]:
        """The ``key`` of the rows ``fragment`` selects."""
        return {r[0] for r in self.execute(f"SELECT {key} FROM {self.table} WHERE {fragment}", params)}


def scratch(request: pytest.FixtureRequest, table: str, columns: str) -> Iterator[Db]:
    """A fixture's body: the table on the dialect named by ``request.param``."""
    if request.param == "sqlite":
        conn = sqlite3.connect(":memory:")
        conn.execute(f"CREATE TABLE {table} ({columns})")
        yield Db(conn, table, lite.named)
        conn.close()
        return
    import psycopg

    with psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True) as conn:
        conn.execute(f"CREATE TEMP TABLE {table} ({columns})".encode())
        yield Db(conn, table, pg.named)
