"""The background sweeper: one loop that runs every component's periodic work.

Heartbeat timeouts (registry), ack deadlines, scheduled delivery, expiry and
retention (mailbox), lease expiry and retry backoff (task queue). A failing
sweep is logged and tried again next period; it never stops the loop. The period runs on the
broker's clock (broker/clock.py): a test that advances its clock runs the rounds that fall due.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .clock import Clock

log = logging.getLogger("broker.sweeper")


class Sweeper:
    def __init__(
        self,
        period_s: float,
        jobs: list[tuple[str, Callable[[], Awaitable[object]]]],
        clock: Clock | None = None,
    ) -> None:
        self.period_s = period_s
        self.jobs = jobs
        self.clock = clock or Clock()
        self.rounds = 0
        self._round = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._running = False  # a round is under way

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sweeper")

    async def run_once(self) -> None:
        for name, job in self.jobs:
            try:
                await job()
            except Exception:
                log.exception("sweep %s failed; will retry next period", name)
        self.rounds += 1
        async with self._round:
            self._round.notify_all()

    def next_round(self) -> Awaitable[None]:
        """Wait until a round that starts after this call has ended (for tests: what the sweep
        would change as of now, changed)."""
        return self._reach(self.rounds + 2 if self._running else self.rounds + 1)

    async def _reach(self, rounds: int) -> None:
        async with self._round:
            await self._round.wait_for(lambda: self.rounds >= rounds)

    async def _loop(self) -> None:
        while True:
            await self.clock.sleep(self.period_s)
            self._running = True
            try:
                await self.run_once()
            finally:
                self._running = False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
