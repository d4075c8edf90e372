"""SQLite engine: one writer that commits in groups, a few readers.

Every write is a synchronous function ``fn(conn) -> T`` run on the writer's
aiosqlite thread. The writer takes every job waiting when it wakes, runs them
in one transaction, each inside its own SAVEPOINT (a job that raises is rolled
back alone and gets its exception), then commits once: concurrent requests
share one fsync. A job's future resolves only after that commit, so a caller
that awaits ``write`` is told yes only once its change is durable.

Running a whole job on the connection's thread (aiosqlite's ``_execute``)
costs one thread hop per transaction instead of one per statement; that is
what makes group commit pay off.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ...errors import BrokerError, StorageUnavailable
from ...models.stats import StorageStats
from ..group_commit import STOP, next_group, run_jobs, settle

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
log = logging.getLogger("broker.storage")


def _configure(conn: sqlite3.Connection, synchronous: str, busy_timeout_ms: int) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")


async def _run(aconn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    # aiosqlite runs fn on the connection's own thread; one hop per call.
    return await aconn._execute(fn, aconn._conn, *args)


def _wrap(exc: BaseException) -> BaseException:
    """Driver errors stop here: they become StorageUnavailable."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, sqlite3.Error):
        log.error("storage error: %r", exc)
        return StorageUnavailable(f"storage error: {exc.__class__.__name__}: {exc}")
    return exc


class SqliteEngine:
    """The writer and reader connections of one SQLite file."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        readers: int = 2,
        batch_max: int = 512,
        rehearse: bool = False,
    ) -> None:
        self.path = path
        # Run every group twice: once rolled back, then for real (the contract suite's check that
        # a group may be run again whole, as the storage protocol says it may).
        self.rehearse = rehearse
        self._synchronous = synchronous
        self._busy = busy_timeout_ms
        self._n_readers = readers
        self._batch_max = batch_max
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._reader_cycle: itertools.cycle[aiosqlite.Connection] | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = StorageStats()
        self.commits = 0  # transactions committed (for tests and benchmarks)
        self.jobs = 0  # write jobs run

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        await _run(self._writer, _configure, self._synchronous, self._busy)
        for _ in range(self._n_readers):
            r = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
            await _run(r, _configure, self._synchronous, self._busy)
            await r.execute("PRAGMA query_only=ON")
            self._readers.append(r)
        self._reader_cycle = itertools.cycle(self._readers)
        self._closing = False
        self._task = asyncio.create_task(self._writer_loop(), name="sqlite-writer")

    async def close(self) -> None:
        self._closing = True  # a write from now on would queue behind the stop, never to run
        if self._task is not None:
            await self._queue.put(STOP)
            await self._task
            self._task = None
        for conn in [*self._readers, self._writer]:
            if conn is not None:
                await conn.close()
        self._readers.clear()
        self._writer = None

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn in a write transaction shared with other jobs; return after the commit."""
        if self._task is None or self._closing:
            raise StorageUnavailable("storage is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((fn, fut))
        return await fut

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn on a reader connection (its own read transaction, committed data only)."""
        if self._reader_cycle is None:
            raise StorageUnavailable("storage is closed")
        conn = next(self._reader_cycle)
        try:
            return await _run(conn, _read_tx, fn)
        except BaseException as exc:
            raise _wrap(exc) from exc

    async def _writer_loop(self) -> None:
        assert self._writer is not None
        stop = False
        while not stop:
            group, stop = await next_group(self._queue, self._batch_max)
            if not group:
                continue
            jobs = [fn for fn, _ in group]
            try:
                t0 = time.perf_counter()
                outcomes = await _run(self._writer, _run_batch, jobs, self.rehearse)
                self.stats.commit_seconds.observe(time.perf_counter() - t0)
                self.stats.jobs_per_commit.observe(len(jobs))
                self.commits += 1
                self.jobs += len(jobs)
            except BaseException as exc:  # the commit itself failed: nobody's change is durable
                outcomes = [(False, _wrap(exc))] * len(group)
            settle(group, outcomes, _wrap)


def _read_tx(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN")
    try:
        return fn(conn)
    finally:
        conn.execute("COMMIT")


def _run_batch(conn: sqlite3.Connection, jobs: list[Job], rehearse: bool = False) -> list[tuple[bool, Any]]:
    """Run jobs in one transaction, each in a savepoint; commit once. ``rehearse``: run the whole
    group first and roll it back, then run it again and commit (as a retried group would run)."""
    single = len(jobs) == 1 and not rehearse
    conn.execute("BEGIN IMMEDIATE")
    try:
        if rehearse:
            run_jobs(conn.execute, conn, jobs, single=False)
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
        out = run_jobs(conn.execute, conn, jobs, single)
        if conn.in_transaction:  # (a lone job that failed has rolled back already)
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return out
