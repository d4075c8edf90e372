"""One connection as the storage operations see it: ``execute(sql, params)`` with SQLite's
parameter style, whatever the backend.

The operations shared by both backends (broker/storage/sqlite/ holds them, with their SQL) are
synchronous functions of a DB-API connection, written with ``?`` and ``:name`` parameters, as
sqlite3 takes them. psycopg takes ``%s`` and ``%(name)s``: ``PgConnection`` rewrites each
statement once (then from a cache), outside string literals, and doubles a literal ``%``. It also
drops SQLite's planner hint ``INDEXED BY <index>``, which PostgreSQL has no use for (its planner
keeps statistics). Nothing else is rewritten: a statement that is SQLite's own dialect has a
PostgreSQL version written out beside it (broker/storage/postgres/messages.py).

Rows come back as ``Row``: a tuple that is also indexed by column name, like ``sqlite3.Row``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg

_TOKEN = re.compile(
    r"""('(?:[^']|'')*')"""  # a string literal, kept as it is
    r"""|(::)"""  # a cast
    r"""|(\?)"""  # a positional parameter
    r"""|:([A-Za-z_][A-Za-z0-9_]*)"""  # a named parameter
    r"""|(%)"""  # a literal percent sign
    r"""|(\bINDEXED\s+BY\s+[A-Za-z_][A-Za-z0-9_]*)""",  # SQLite's planner hint
    re.IGNORECASE,
)


@lru_cache(maxsize=4096)
def to_pg(sql: str) -> str:
    """SQLite's parameter style to psycopg's (the docstring above says what else)."""

    def sub(m: re.Match[str]) -> str:
        literal, cast, qmark, name, percent, hint = m.groups()
        if literal is not None:
            return literal.replace("%", "%%")
        if cast is not None:
            return "::"
        if qmark is not None:
            return "%s"
        if name is not None:
            return f"%({name})s"
        if percent is not None:
            return "%%"
        assert hint is not None
        return ""

    return _TOKEN.sub(sub, sql)


class Row(tuple):
    """A row by position and by column name (``row[0]``, ``row["task_id"]``, ``row.keys()``)."""

    __slots__ = ()
    _index: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def row_factory(cursor: Any) -> Any:
    desc = cursor.description
    if desc is None:
        return tuple
    cls = _row_class(tuple(d.name for d in desc))
    return cls


class PgConnection:
    """A psycopg connection behind the sqlite3-like surface the shared operations use."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        cur.execute(to_pg(sql), params)  # even empty: psycopg then reads %% as %
        return cur

    def executemany(self, sql: str, seq: Iterable[Sequence[Any] | dict[str, Any]]) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        cur.executemany(to_pg(sql), list(seq))
        return cur
