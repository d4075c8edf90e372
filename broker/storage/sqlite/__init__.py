"""The embedded SQLite backend: one file, WAL, one group-committing writer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from ...models.stats import StorageStats
from ..sql.a2a import A2AOps
from ..sql.agents import AgentOps
from ..sql.census import CensusOps
from ..sql.limits import LimitOps
from ..sql.schedules import ScheduleOps
from ..sql.tasks import TaskOps
from ..sql.tokens import TokenOps
from . import lock
from .engine import SqliteEngine
from .messages import SqliteMessageOps
from .migrate import migrate
from .queries import SQLITE

if TYPE_CHECKING:
    from ...config import Settings

__all__ = ["SqliteStorage"]


class SqliteStorage(AgentOps, SqliteMessageOps, TaskOps, ScheduleOps, LimitOps, TokenOps, CensusOps, A2AOps):
    """Implements ``broker.storage.Storage`` on one SQLite file: the shared operations
    (``broker/storage/sql/``) with SQLite's statements, on SQLite's engine."""

    shared = False  # one broker per file (the file lock): what it finds at start-up is a previous run's
    relay = None  # nobody else to wake
    q = SQLITE
    engine: SqliteEngine

    def __init__(self, path: str, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self._lock: int | None = None  # the file lock's descriptor while open (one broker per file)
        self.engine = SqliteEngine(
            path,
            synchronous=settings.sqlite_synchronous,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            readers=settings.sqlite_readers,
            batch_max=settings.write_batch_max,
        )

    @property
    def engine_stats(self) -> StorageStats:
        return self.engine.stats

    @property
    def write_queue_depth(self) -> int:
        return self.engine.queue_depth

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._lock = lock.acquire(self.path)  # before anything touches the file
            lock.create_private(self.path)
        try:
            await asyncio.to_thread(migrate, self.path)
            await self.engine.open()
        except BaseException:
            self._unlock()
            raise

    async def close(self) -> None:
        try:
            await self.engine.close()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            lock.release(self._lock)
            self._lock = None
