"""PostgreSQL engine: one group-committing writer connection per broker, and a few readers.

Writes keep the SQLite engine's contract (broker/storage/sqlite/engine.py): a job is a synchronous
function of a connection, run with the other jobs waiting at that moment in one transaction, each in
its own SAVEPOINT, and its future resolves only after the COMMIT. The transaction is SERIALIZABLE
(claims and acks aside, below): with several brokers on one database, each job's reads and writes
behave as if the jobs of every broker ran one at a time, which is what the shared operations were
written for on SQLite's single writer (read an agent's free capacity, then lease; read a delivery,
then ack). A transaction that PostgreSQL aborts to keep that promise (serialization failure,
deadlock) changed nothing: the whole group is run again, up to ``retries`` times, then its callers
get UNAVAILABLE. A connection found lost before a group sent anything (it died while idle: a
database restart, a failover) is reopened and the group runs on the new one; lost in the middle of
a group, the group's callers get UNAVAILABLE (it may or may not have committed) and the next group
reconnects. Reads are run again once on a new connection.

Claims add ``FOR UPDATE SKIP LOCKED`` (broker/storage/postgres/messages.py) so that two brokers
claiming the same queue take different rows instead of one aborting. Such jobs need no more than
READ COMMITTED (``group_commit.row_locking``: claims, acks): they run at that level, where a row
another broker changed meanwhile is read again rather than aborting the group (a SERIALIZABLE
group's retries are ``a2a_storage_retried``). When both kinds wait, they commit as two
transactions: a claim or an ack beside a SERIALIZABLE job (a heartbeat, a sweep) would otherwise
be aborted with it, again and again while another broker sends to the same queue.

Other brokers hear of the commits through relay.py (NOTIFY after the commit, not inside it).

Each connection lives on its own thread (psycopg's synchronous API, the same shape as sqlite3's):
that is what lets the storage operations (broker/storage/sql/) be shared with the SQLite backend
instead of copied.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerrors

from ...errors import BrokerError, StorageUnavailable
from ...models.stats import StorageStats
from ..group_commit import STOP, next_group, run_jobs, settle
from .connection import PgConnection, row_factory

T = TypeVar("T")
Job = Callable[[PgConnection], Any]
log = logging.getLogger("broker.storage")

_RETRYABLE = (pgerrors.SerializationFailure, pgerrors.DeadlockDetected, pgerrors.LockNotAvailable)


class _Reconnect(Exception):
    """The writer's connection was found lost before the group sent anything."""


def _wrap(exc: BaseException) -> BaseException:
    """Driver errors stop here: they become StorageUnavailable (the core maps it to UNAVAILABLE)."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, psycopg.Error):
        log.error("storage error: %r", exc)
        return StorageUnavailable(f"storage error: {exc.__class__.__name__}: {exc}".strip())
    return exc


class _Conn:
    """One psycopg connection and the thread it runs on."""

    def __init__(self, url: str, name: str, *, autocommit: bool = False, tag: str | None = None) -> None:
        self.url = url
        self.autocommit = autocommit
        self.tag = tag  # the broker's, on the rows it writes (``a2a.broker``: postgres/history.py)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.conn: psycopg.Connection[Any] | None = None

    def connect(self) -> PgConnection:
        """On the thread: the connection, opened again if it was lost."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = psycopg.connect(self.url, autocommit=self.autocommit, row_factory=row_factory)
            if self.tag is not None:
                self.conn.execute("SELECT set_config('a2a.broker', %s, false)", (self.tag,))
        return PgConnection(self.conn)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close_sync(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    async def close(self) -> None:
        await self.run(self.close_sync)
        self.pool.shutdown(wait=True)


class PgEngine:
    """The writer, reader and listener connections of one broker on one PostgreSQL database."""

    def __init__(
        self,
        url: str,
        *,
        readers: int = 2,
        batch_max: int = 512,
        retries: int = 20,
        rehearse: bool = False,
        tag: str | None = None,
    ) -> None:
        self.url = url
        # Run every group twice: once rolled back, then for real (as a retry runs it; the contract
        # suite's check that every group may be run again whole).
        self.rehearse = rehearse
        self._batch_max = batch_max
        self._retries = retries
        self._writer = _Conn(url, "pg-writer", autocommit=True, tag=tag)
        self._readers = [_Conn(url, f"pg-reader-{i}", autocommit=True) for i in range(readers)]
        self._next_reader = 0
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = StorageStats()
        self.commits = 0  # transactions committed (for tests and benchmarks)
        self.jobs = 0  # write jobs run
        self.retried = 0  # groups run again after a serialization failure or deadlock

    async def open(self) -> None:
        try:
            await self._writer.run(self._writer.connect)
            for r in self._readers:
                await r.run(r.connect)
        except psycopg.Error as exc:
            raise _wrap(exc) from exc
        self._closing = False
        self._task = asyncio.create_task(self._writer_loop(), name="pg-writer")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            await self._queue.put(STOP)
            await self._task
            self._task = None
        for c in [self._writer, *self._readers]:
            await c.close()

    async def write(self, fn: Callable[[PgConnection], T]) -> T:
        """Run fn in a write transaction shared with other jobs; return after the commit."""
        if self._task is None or self._closing:
            raise StorageUnavailable("storage is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((fn, fut))
        return await fut

    async def read(self, fn: Callable[[PgConnection], T]) -> T:
        """Run fn on a reader connection, in a read-only REPEATABLE READ transaction."""
        if self._task is None:
            raise StorageUnavailable("storage is closed")
        c = self._readers[self._next_reader % len(self._readers)]
        self._next_reader += 1
        try:
            try:
                return await c.run(_read_tx, c, fn)
            except psycopg.OperationalError:  # the connection was lost: a read is safe to run again
                return await c.run(_read_tx, c, fn)
        except BaseException as exc:
            raise _wrap(exc) from exc

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    async def _writer_loop(self) -> None:
        stop = False
        while not stop:
            group, stop = await next_group(self._queue, self._batch_max)
            if not group:
                continue
            jobs = [fn for fn, _ in group]
            outcomes: list[tuple[bool, Any]] = [(False, None)] * len(jobs)
            for level, picked in _by_level(jobs):
                part = [jobs[i] for i in picked]
                try:
                    t0 = time.perf_counter()
                    done, tries = await self._writer.run(self._run_group, part, level)
                    self.stats.commit_seconds.observe(time.perf_counter() - t0)
                    self.stats.jobs_per_commit.observe(len(part))
                    self.commits += 1
                    self.jobs += len(part)
                    self.retried += tries
                    self.stats.retried += tries
                except BaseException as exc:  # the commit itself failed: nobody's change is durable
                    done = [(False, _wrap(exc))] * len(part)
                for i, outcome in zip(picked, done, strict=True):
                    outcomes[i] = outcome
            settle(group, outcomes, _wrap)

    def _run_group(self, jobs: list[Job], level: str) -> tuple[list[tuple[bool, Any]], int]:
        """On the writer thread: the group in one transaction at ``level``, run again while
        PostgreSQL aborts it (serialization failure, deadlock)."""
        for attempt in range(self._retries + 1):
            try:
                return _run_batch(self._writer.connect(), jobs, self.rehearse, level), attempt
            except _Reconnect:  # lost while idle (nothing was sent): safe to run on a new one
                self._writer.close_sync()
                if attempt == self._retries:
                    raise StorageUnavailable("storage unavailable: cannot reconnect to PostgreSQL") from None
            except _RETRYABLE as exc:
                if attempt == self._retries:
                    raise StorageUnavailable(
                        f"storage contention: the transaction was aborted {attempt + 1} times"
                        f" ({exc.sqlstate})"
                    ) from exc
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
            except psycopg.OperationalError:
                self._writer.close_sync()  # reopened by the next group
                raise
        raise AssertionError("unreachable")


def _by_level(jobs: list[Job]) -> list[tuple[str, list[int]]]:
    """The group's row-locking jobs (READ COMMITTED) and the others (SERIALIZABLE), by index: two
    transactions when both kinds wait, so that a claim or an ack is never aborted for what a
    SERIALIZABLE job beside it read."""
    locking = [i for i, fn in enumerate(jobs) if getattr(fn, "row_locking", False)]
    others = [i for i, fn in enumerate(jobs) if not getattr(fn, "row_locking", False)]
    return [(level, idx) for level, idx in (("READ COMMITTED", locking), ("SERIALIZABLE", others)) if idx]


def _read_tx(c: _Conn, fn: Callable[[PgConnection], T]) -> T:
    conn = c.connect()
    try:
        with conn.raw.transaction():
            conn.raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return fn(conn)
    except psycopg.OperationalError:
        c.close_sync()
        raise


def _run_batch(
    conn: PgConnection, jobs: list[Job], rehearse: bool = False, level: str = "SERIALIZABLE"
) -> list[tuple[bool, Any]]:
    """Run jobs in one transaction at isolation ``level``, each in a savepoint; commit once.
    ``rehearse``: run the whole group first and roll it back, then run it again and commit (as a
    retry would)."""
    raw = conn.raw
    single = len(jobs) == 1 and not rehearse
    begin = f"BEGIN ISOLATION LEVEL {level}"
    try:
        raw.execute(begin)
    except psycopg.OperationalError as exc:
        raise _Reconnect from exc
    try:
        if rehearse:
            run_jobs(raw.execute, conn, jobs, single=False, passthrough=_RETRYABLE)
            raw.execute("ROLLBACK")
            raw.execute(begin)
        out = run_jobs(raw.execute, conn, jobs, single, passthrough=_RETRYABLE)
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raw.execute("COMMIT")
    except BaseException:
        if not raw.closed and not raw.broken:
            raw.execute("ROLLBACK")
        raise
    return out
