"""TaskSpec.not_before: a task held PENDING (not dispatched, visible as such) until its time, then
ready, or blocked on an unfinished prerequisite; started by the core's timer at that time, by the
sweeper after a restart. On the manual clock where time matters, plus one run on the real clock."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from broker.pb import tasks_pb2 as pb
from broker.server import start_server
from tests.clock_support import ManualClock, later, manual_clock
from tests.conftest import make_settings, stopped, stubs_for

from . import tasks_helpers as th


@pytest.fixture
def settings_overrides():
    return {"liveness_timeout_s": 3600.0}  # the agents stay online while the clock moves on


def _at(clock_us: int, seconds: float) -> dict:
    return {"not_before": th.timestamp(clock_us + int(seconds * 1_000_000))}


@manual_clock
async def test_a_task_is_held_pending_until_its_time_then_a_waiting_claim_gets_it(stubs, broker):
    clock = broker.tasks.clock
    await th.register(stubs, "w", ["x"])
    t = await th.submit(stubs, "later", required_capabilities=["x"], **_at(clock.now_us(), 30))
    assert th.name(t.status) == "pending" and th.us(t.spec.not_before) == clock.now_us() + 30_000_000
    assert await th.claim(stubs, "w") == []
    (listed,) = await th.all_tasks(stubs, status=pb.TASK_STATUS_PENDING)
    assert listed.task_id == t.task_id  # visible as waiting, with its time
    waiting = asyncio.ensure_future(th.claim(stubs, "w", wait=60))
    await later(broker, 29.9)
    assert await th.status(stubs, t.task_id) == "pending" and not waiting.done()
    await clock.advance(0.2)  # the core's timer (no sweeper round) starts it and wakes the claim
    (a,) = await asyncio.wait_for(waiting, 5)
    assert a.task.task_id == t.task_id
    trail = await th.history(stubs, t.task_id)
    assert [(f, to) for f, to, *_ in trail] == [("", "pending"), ("pending", "ready"), ("ready", "running")]
    assert trail[1][2].startswith("not_before reached")


@manual_clock
async def test_a_time_already_past_is_no_wait(stubs, broker):
    t = await th.submit(stubs, "now", **_at(broker.tasks.clock.now_us(), -5))
    assert th.name(t.status) == "ready"


@manual_clock
async def test_a_held_task_looks_at_its_prerequisites_when_its_time_comes(stubs, broker):
    clock = broker.tasks.clock
    await th.register(stubs, "w", ["x"])
    first = await th.submit(stubs, "first", required_capabilities=["x"])
    second = await th.submit(stubs, "second", required_capabilities=["x"])
    # Both prerequisites finish before its time: it stays pending, then becomes ready.
    early = await th.submit(stubs, "early", deps=[first.task_id], **_at(clock.now_us(), 10))
    # Its prerequisite is still unfinished at its time: blocked, then ready once it completes.
    late = await th.submit(stubs, "late", deps=[second.task_id], **_at(clock.now_us(), 10))
    (a,) = await th.claim(stubs, "w")
    assert a.task.task_id == first.task_id
    await th.complete(stubs, a, "w")
    assert await th.status(stubs, early.task_id) == "pending"
    await later(broker, 10)
    assert await th.status(stubs, early.task_id) == "ready"
    assert await th.status(stubs, late.task_id) == "blocked"
    (b,) = await th.claim(stubs, "w")
    await th.complete(stubs, b, "w")
    assert await th.status(stubs, late.task_id) == "ready"


@manual_clock
async def test_a_held_task_is_cancelled_by_a_hard_prerequisite_failing_and_by_cancel(stubs, broker):
    clock = broker.tasks.clock
    await th.register(stubs, "w", ["x"])
    pre = await th.submit(stubs, "pre", required_capabilities=["x"], retries=0)
    held = await th.submit(stubs, "held", deps=[pre.task_id], **_at(clock.now_us(), 60))
    other = await th.submit(stubs, "other", **_at(clock.now_us(), 60))
    (a,) = await th.claim(stubs, "w")
    await th.fail(stubs, a, "w", final=True)
    assert await th.status(stubs, held.task_id) == "cancelled"
    await stubs.tasks.Cancel(pb.CancelRequest(task_id=other.task_id, reason="not needed"))
    assert await th.status(stubs, other.task_id) == "cancelled"
    await later(broker, 61)  # nothing comes back to life
    assert [await th.status(stubs, i) for i in (held.task_id, other.task_id)] == ["cancelled"] * 2


@manual_clock
async def test_a_held_task_takes_a_prerequisite_and_stays_pending(stubs, broker):
    clock = broker.tasks.clock
    pre = await th.submit(stubs, "pre")
    held = await th.submit(stubs, "held", **_at(clock.now_us(), 10))
    await stubs.tasks.AddDependency(
        pb.AddDependencyRequest(task_id=held.task_id, dependency=pb.Dependency(task_id=pre.task_id))
    )
    assert await th.status(stubs, held.task_id) == "pending"
    await later(broker, 10)
    assert await th.status(stubs, held.task_id) == "blocked"


async def test_a_bad_not_before_is_refused_naming_the_field(stubs):
    bad = pb.TaskSpec(title="t")
    bad.not_before.seconds = 10**12  # past year 9999
    msg = await th.refused(stubs.tasks.Submit(pb.SubmitRequest(task=bad)), grpc.StatusCode.INVALID_ARGUMENT)
    assert msg.startswith("task.not_before:"), msg
    assert await th.all_tasks(stubs) == []


async def test_held_until_its_time_on_the_real_clock(stubs):
    await th.register(stubs, "w", ["x"])
    start = time.time()
    t = await th.submit(stubs, "soon", required_capabilities=["x"], **_at(int(start * 1e6), 0.6))
    assert th.name(t.status) == "pending"
    (a,) = await th.claim(stubs, "w", wait=10)
    assert a.task.task_id == t.task_id
    assert time.time() - start >= 0.59  # not before its time


async def test_a_held_task_due_while_no_broker_ran_starts_after_the_restart(tmp_path, backend_overrides):
    clock = ManualClock()
    settings = make_settings(tmp_path, **backend_overrides)
    first = await start_server(settings, clock=clock)
    stubs = stubs_for(first.address)
    try:
        t = await th.submit(stubs, "held", **_at(clock.now_us(), 30))
    finally:
        await stubs.channel.close()
        await stopped(first)
    await clock.advance(60)
    second = await start_server(settings, clock=clock)
    stubs = stubs_for(second.address)
    try:
        assert await th.status(stubs, t.task_id) == "pending"
        await later(second, second.settings.sweeper_period_s)  # the sweeper's round starts it
        assert await th.status(stubs, t.task_id) == "ready"
    finally:
        await stubs.channel.close()
        await stopped(second)
