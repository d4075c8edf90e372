"""The background sweeper: one loop that runs every component's periodic work.

Heartbeat timeouts (registry), ack deadlines, scheduled delivery, expiry and
retention (mailbox), lease expiry and retry backoff (task queue). A failing
sweep is logged and tried again next period; it never stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("broker.sweeper")


class Sweeper:
    def __init__(self, period_s: float, jobs: list[tuple[str, Callable[[], Awaitable[object]]]]) -> None:
        self.period_s = period_s
        self.jobs = jobs
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sweeper")

    async def run_once(self) -> None:
        for name, job in self.jobs:
            try:
                await job()
            except Exception:
                log.exception("sweep %s failed; will retry next period", name)
        self.rounds += 1

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            await self.run_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
