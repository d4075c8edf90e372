"""The embedded SQLite backend: one file, WAL, one group-committing writer."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .agents import AgentOps
from .engine import SqliteEngine
from .messages import MessageOps
from .migrate import migrate
from .tasks import TaskOps

if TYPE_CHECKING:
    from ...config import Settings

__all__ = ["SqliteStorage"]


class SqliteStorage(AgentOps, MessageOps, TaskOps):
    """Implements ``broker.storage.Storage`` on one SQLite file."""

    def __init__(self, path: str, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self.engine = SqliteEngine(
            path,
            synchronous=settings.sqlite_synchronous,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            readers=settings.sqlite_readers,
            batch_max=settings.write_batch_max,
        )

    async def open(self) -> None:
        await asyncio.to_thread(migrate, self.path)
        await self.engine.open()

    async def close(self) -> None:
        await self.engine.close()
