"""Coalescing concurrent Complete calls into one write job.

The engine already commits concurrent jobs together, but each job still costs
its own savepoint, its own transaction helper and its own statements, and on
the writer thread every statement is a round trip for the GIL against the
busy event loop. Completions are the one write every task makes, so they are
gathered: while one batch is being written, new ones wait, and the next job
takes them all. An idle broker writes a lone Complete at once, so this adds no
latency when there is no load.

Each Complete is still judged on its own: a stale lease refuses that one item
(storage checks before it changes anything). If the batch job fails as a
whole (a storage fault), every item is retried in a job of its own, so one bad
item cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..clock import now_us
from ..errors import BrokerError
from ..models.tasks import Changes, CompleteInput, Task
from ..storage.base import Storage

log = logging.getLogger("broker.tasks")


class CompleteBatcher:
    def __init__(
        self, storage: Storage, announce: Callable[[Changes], None], spawn: Callable[[Any], None]
    ) -> None:
        self.storage = storage
        self.announce = announce
        self.spawn = spawn
        self._pending: list[tuple[CompleteInput, asyncio.Future[Task]]] = []
        self._writing = False
        self.batches = 0  # write jobs used (for tests and benchmarks)

    async def complete(self, inp: CompleteInput) -> Task:
        fut: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        self._pending.append((inp, fut))
        if not self._writing:
            self._writing = True
            self.spawn(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self.batches += 1
                try:
                    results, changes = await self.storage.complete_tasks([inp for inp, _ in batch], now_us())
                except Exception:  # a storage fault: isolate the items
                    log.warning("batched Complete failed; retrying %d items one by one", len(batch))
                    for inp, fut in batch:
                        await self._one(inp, fut)
                    continue
                self.announce(changes)
                for (_, fut), result in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(result, BrokerError):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)
        finally:
            self._writing = False

    async def _one(self, inp: CompleteInput, fut: asyncio.Future[Task]) -> None:
        try:
            task, changes = await self.storage.complete_task(inp, now_us())
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)
            return
        self.announce(changes)
        if not fut.done():
            fut.set_result(task)
