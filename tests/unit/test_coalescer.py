"""The one write coalescer (broker/core/coalescer.py), with a fake write job. The tests wait for
what they look for (a job started, calls waiting), never for a count of event-loop steps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from broker.core.coalescer import Coalescer
from broker.errors import InvalidArgument, StorageUnavailable
from tests.conftest import eventually


class Store:
    def __init__(self) -> None:
        self.jobs: list[list[int]] = []
        self.started = asyncio.Event()  # a job started (set at each)
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, items: list[int]) -> list[int | BaseException]:
        self.jobs.append(items)
        self.started.set()
        await self.gate.wait()
        if len(items) > 1 and 13 in items:
            raise StorageUnavailable("the database refused a row")  # the whole job fails
        if items == [13]:
            raise StorageUnavailable("refused")
        return [InvalidArgument("n", "must not be 7") if i == 7 else i * 10 for i in items]


async def until(check: Callable[[], bool]) -> None:
    """Wait (bounded) until ``check()`` holds: the calls started have reached the coalescer."""

    async def holds() -> bool:
        return check()

    await eventually(holds, interval=0, what="the calls to reach the coalescer")


async def test_concurrent_calls_share_jobs_while_one_is_written():
    store = Store()
    store.gate.clear()
    c: Coalescer[int, int] = Coalescer(store.write, what="test")
    first = asyncio.ensure_future(c.submit(0))
    await asyncio.wait_for(store.started.wait(), 5)
    assert store.jobs == [[0]]  # a lone caller does not wait for company
    more = [asyncio.ensure_future(c.submit(i)) for i in range(1, 9) if i != 7]
    await until(lambda: c.pending == 7)
    assert c.pending == 7 and len(store.jobs) == 1  # waiting for the job in flight
    store.gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, *more), 5)
    assert results == [0, 10, 20, 30, 40, 50, 60, 80]
    assert store.jobs == [[0], [1, 2, 3, 4, 5, 6, 8]] and c.batches == 2
    assert not c.jobs and c.pending == 0


async def test_an_item_refused_by_a_shared_job_fails_alone():
    store = Store()
    c: Coalescer[int, int] = Coalescer(store.write, what="test")
    results = await asyncio.wait_for(
        asyncio.gather(*(c.submit(i) for i in (1, 7, 2)), return_exceptions=True), 5
    )
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], InvalidArgument)


async def test_when_a_shared_job_fails_each_item_is_retried_alone_and_only_the_offender_fails():
    store = Store()
    store.gate.clear()
    c: Coalescer[int, int] = Coalescer(store.write, what="test")
    first = asyncio.ensure_future(c.submit(0))
    await asyncio.wait_for(store.started.wait(), 5)
    calls = [asyncio.ensure_future(c.submit(i)) for i in (1, 13, 2)]
    await until(lambda: c.pending == 3)
    assert store.jobs == [[0]] and c.pending == 3
    store.gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, *calls, return_exceptions=True), 5)
    assert results[:2] == [0, 10] and results[3] == 20
    assert isinstance(results[2], StorageUnavailable)
    assert store.jobs[1] == [1, 13, 2] and sorted(store.jobs[2:]) == [[1], [2], [13]]  # then each alone


async def test_retries_use_write_one_when_given():
    store = Store()
    alone: list[int] = []

    async def write_one(i: int) -> int:
        alone.append(i)
        if i == 13:
            raise StorageUnavailable("refused")
        return -i

    c: Coalescer[int, int] = Coalescer(store.write, write_one=write_one, what="test")
    store.gate.clear()
    first = asyncio.ensure_future(c.submit(0))
    await asyncio.wait_for(store.started.wait(), 5)
    calls = [asyncio.ensure_future(c.submit(i)) for i in (13, 3)]
    await until(lambda: c.pending == 2)
    store.gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, *calls, return_exceptions=True), 5)
    assert results[0] == 0 and results[2] == -3 and isinstance(results[1], StorageUnavailable)
    assert sorted(alone) == [3, 13]


async def test_a_lone_call_that_fails_gets_its_error():
    c: Coalescer[int, int] = Coalescer(Store().write, what="test")
    with pytest.raises(StorageUnavailable):
        await asyncio.wait_for(c.submit(13), 5)
