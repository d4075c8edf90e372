"""A psycopg connection as the shared operations use it (``sql.connection.Connection``): rows read
by position and by column name, as ``sqlite3.Row`` is. The statements are PostgreSQL's own
(``postgres/queries.py``, ``%s`` and ``%(name)s``): nothing is rewritten on its way to the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import psycopg


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
    """A psycopg connection behind the surface the shared operations use."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = (), /) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        cur.execute(sql, params)  # even empty: psycopg then reads %% as % (as in every statement)
        return cur

    def executemany(
        self, sql: str, seq: Iterable[Sequence[Any] | Mapping[str, Any]], /
    ) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        cur.executemany(sql, list(seq))
        return cur
