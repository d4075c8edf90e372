"""The task queue's timed rules on the broker's clock (tests/clock_support.py): a Claim's wait, a
lease that lapses, a retry's backoff. Each moves only when the test advances the clock; the same
rules run on the real clock in test_tasks_leases.py, test_tasks_dispatch.py and test_worker.py."""

from __future__ import annotations

import asyncio

from tests.clock_support import later, manual_clock
from tests.conftest import eventually

from . import tasks_helpers as th


@manual_clock
async def test_a_claims_wait_ends_on_the_brokers_clock(stubs, broker):
    await th.register(stubs, "w", ["x"])
    waiting = asyncio.ensure_future(th.claim(stubs, "w", wait=30))
    clock = broker.tasks.clock

    async def armed() -> bool:  # the claim looked, found nothing and waits for 30 s of the clock
        return broker.tasks.dispatch.lease_attempts == 1 and clock.waiting >= 2

    await eventually(armed, what="the claim waiting")
    await clock.advance(30)
    assert await asyncio.wait_for(waiting, 5) == []  # answered at once, not after 30 real seconds
    assert broker.tasks.dispatch.lease_attempts == 1  # and it did not poll meanwhile


@manual_clock
async def test_a_lease_not_extended_lapses_at_its_end_and_the_attempt_counts(stubs, broker):
    await th.register(stubs, "w", ["x"])
    t = await th.submit(stubs, "t", required_capabilities=["x"], lease=10, retries=2, backoff=0)
    (a,) = await th.claim(stubs, "w")
    await later(broker, 9.9)
    assert await th.status(stubs, t.task_id) == "running"  # swept: not yet
    await later(broker, 0.2)
    assert await th.status(stubs, t.task_id) == "ready"  # lapsed: back in the queue, retried
    (b,) = await th.claim(stubs, "w")
    assert (b.task.task_id, b.attempt) == (t.task_id, a.attempt + 1)


@manual_clock
async def test_a_failed_attempt_waits_its_backoff_then_wakes_a_waiting_claim(stubs, broker):
    await th.register(stubs, "w", ["x"])
    t = await th.submit(stubs, "t", required_capabilities=["x"], retries=1, backoff=5)
    (a,) = await th.claim(stubs, "w")
    await th.fail(stubs, a, "w")
    assert await th.claim(stubs, "w") == []  # backing off: 5 s, and up to 20 % jitter
    waiting = asyncio.ensure_future(th.claim(stubs, "w", wait=60))
    await broker.tasks.clock.advance(4.9)
    assert await th.status(stubs, t.task_id) == "ready" and not waiting.done()
    await broker.tasks.clock.advance(1.1)  # the backoff's timer (no sweep) wakes the claim
    (b,) = await asyncio.wait_for(waiting, 5)
    assert (b.task.task_id, b.attempt) == (t.task_id, 2)
