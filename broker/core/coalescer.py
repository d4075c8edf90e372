"""Coalescing concurrent calls into shared write jobs (used by Send and by Complete).

The engine already commits concurrent jobs together, but each job still costs its own
savepoint, its own transaction helper and its own statements, and on the writer thread every
statement is a round trip for the GIL against the busy event loop. So concurrent calls of a hot
write are gathered: while ``max_jobs`` jobs are being written, new calls wait, and the next job
takes them all. An idle broker writes a lone call at once: no added latency without load.

Each call still succeeds or fails on its own: ``write`` returns one result per item, an
exception for an item it refused. If a shared job fails as a whole (a row the database refused,
or a storage fault), each of its items is written again in a job of its own (the engine
isolates each job in a savepoint), so one request's content cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741  # an item (one call's input)
O = TypeVar("O")  # noqa: E741  # its result

log = logging.getLogger("broker.coalescer")


class Coalescer(Generic[I, O]):
    """``write(items)`` stores items in one job and returns, for each, its result or the exception
    that refused it. ``write_one(item)`` stores one item alone, raising what refused it (the
    retry after a shared job failed); by default ``write([item])``."""

    def __init__(
        self,
        write: Callable[[list[I]], Awaitable[Sequence[O | BaseException]]],
        *,
        what: str,
        write_one: Callable[[I], Awaitable[O]] | None = None,
        max_jobs: int = 1,
    ) -> None:
        self._write = write
        self._write_one = write_one
        self._what = what  # for the log
        self.max_jobs = max_jobs
        self._pending: list[tuple[I, asyncio.Future[O]]] = []
        self._running = 0
        self.jobs: set[asyncio.Task[None]] = set()  # jobs in flight (shutdown waits for them)
        self.batches = 0  # shared jobs written (for tests and benchmarks)

    @property
    def pending(self) -> int:
        """Calls waiting for the next job."""
        return len(self._pending)

    async def submit(self, item: I) -> O:
        fut: asyncio.Future[O] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        if self._running < self.max_jobs:
            self._flush()
        return await fut

    def submit_many(self, items: list[I]) -> list[asyncio.Future[O]]:
        """Several calls at once (a batched request): one future each, in the same job."""
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[O]] = [loop.create_future() for _ in items]
        self._pending.extend(zip(items, futs, strict=True))
        if self._running < self.max_jobs:
            self._flush()
        return futs

    def _flush(self) -> None:
        if not self._pending:
            return
        group, self._pending = self._pending, []
        self._running += 1
        self.batches += 1
        task = asyncio.ensure_future(self._job(group))
        self.jobs.add(task)
        task.add_done_callback(self.jobs.discard)

    async def _job(self, group: list[tuple[I, asyncio.Future[O]]]) -> None:
        try:
            try:
                results = await self._write([item for item, _ in group])
            except Exception as exc:
                if len(group) == 1:
                    raise
                log.warning(
                    "coalesced %s of %d items failed (%s); retrying each alone", self._what, len(group), exc
                )
                await asyncio.gather(*(self._alone(item, fut) for item, fut in group))
            else:
                for (_, fut), res in zip(group, results, strict=True):
                    _settle(fut, res)
        except BaseException as exc:
            for _, fut in group:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._running -= 1
            self._flush()  # what arrived meanwhile goes as the next job

    async def _alone(self, item: I, fut: asyncio.Future[O]) -> None:
        try:
            if self._write_one is not None:
                res: O | BaseException = await self._write_one(item)
            else:
                res = (await self._write([item]))[0]
        except Exception as exc:
            res = exc
        _settle(fut, res)


def _settle(fut: asyncio.Future[O], res: O | BaseException) -> None:
    if fut.done():
        return
    if isinstance(res, BaseException):
        fut.set_exception(res)
    else:
        fut.set_result(res)
