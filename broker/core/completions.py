"""Concurrent Complete calls, coalesced into shared write jobs (see coalescer.py).

Completions are the one write every task makes, so they are gathered. Each Complete is still
judged on its own: a stale lease refuses that one item (storage checks before it changes
anything). If a shared job fails as a whole (a storage fault), each item is retried in a job of
its own (``complete_task``), so one bad item cannot fail the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..clock import Clock
from ..errors import BrokerError
from ..models.tasks import Changes, CompleteInput, Task
from ..storage.base import Storage
from .coalescer import Coalescer


class CompleteBatcher:
    """``complete(inp)``: one Complete, written with the others in flight; ``announce`` is told
    of every committed change (with task snapshots while ``watched()``)."""

    def __init__(
        self,
        storage: Storage,
        announce: Callable[[Changes], None],
        watched: Callable[[], bool],
        clock: Clock | None = None,
    ) -> None:
        self.storage = storage
        self.clock = clock or Clock()
        self.announce = announce
        self.watched = watched  # whether task snapshots are wanted (someone watches)
        self._coalescer: Coalescer[CompleteInput, Task] = Coalescer(
            self._write, write_one=self._write_one, what="Complete"
        )

    @property
    def batches(self) -> int:
        """Shared write jobs used (for tests and benchmarks)."""
        return self._coalescer.batches

    async def complete(self, inp: CompleteInput) -> Task:
        return await self._coalescer.submit(inp)

    def complete_many(self, inps: list[CompleteInput]) -> list[asyncio.Future[Task]]:
        """Several Completes (a batched request), in the same write job: one future each."""
        return self._coalescer.submit_many(inps)

    async def _write(self, inps: list[CompleteInput]) -> list[Task | BrokerError]:
        results, changes = await self.storage.complete_tasks(
            inps, self.clock.now_us(), snapshots=self.watched()
        )
        self.announce(changes)
        return results

    async def _write_one(self, inp: CompleteInput) -> Task:
        task, changes = await self.storage.complete_task(inp, self.clock.now_us(), snapshots=self.watched())
        self.announce(changes)
        return task
