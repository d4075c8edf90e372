"""What the shared operations need of a database connection, and of the engine that runs them.

The operations of ``broker/storage/sql/`` are synchronous functions of a connection, run by an
engine on its own thread (the SQLite writer, a PostgreSQL connection's thread). They use a small
part of DB-API, written down here as protocols so that mypy checks them against both drivers:
``sqlite3.Connection`` is one as it is; on PostgreSQL ``postgres.connection.PgConnection`` wraps
psycopg's for the rows (a row is read by position and by column name, as ``sqlite3.Row``).

The SQL itself is never here: each dialect names its statements in its own module
(``sqlite/queries.py``, ``postgres/queries.py``), and the operations are given that set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

# A statement's parameters: positional (``?`` / ``%s``) or named (``:x`` / ``%(x)s``).
Params = Sequence[Any] | Mapping[str, Any]


class Row(Protocol):
    """A row: by position (``row[0]``), by column name (``row["task_id"]``), and unpacked."""

    def __getitem__(self, key: Any, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


class Cursor(Protocol):
    """What a statement returns: its rows, and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...  # a Row, or None

    def fetchall(self) -> list[Any]: ...  # of Rows

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection inside the engine's transaction."""

    def execute(self, sql: str, params: Params = ..., /) -> Cursor: ...

    def executemany(self, sql: str, seq: Iterable[Params], /) -> Cursor: ...


class Engine(Protocol):
    """Runs jobs: a write job in the group-committed write transaction (returning after the
    commit), a read job in a read transaction of its own. See the storage protocol's docstring
    (``broker/storage/base.py``) for what a write job must allow: being run again whole."""

    async def write(self, fn: Callable[[Connection], T]) -> T: ...

    async def read(self, fn: Callable[[Connection], T]) -> T: ...
