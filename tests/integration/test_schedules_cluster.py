"""Two brokers, one PostgreSQL database, one schedule: each firing submits its task once, whichever
broker gets to it first, even when both fire at the same instant. In the first test the brokers
share a manual clock, so that both find every firing due at once; their sweepers are kept out of
the way (a long period), so that what fires is each broker's timer, and what the test fires itself.
In the second, a broker process and an in-process broker race on the real clock, and the process
is killed midway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from broker.domain.schedules import iso
from broker.pb import tasks_pb2 as pb
from broker.server import Broker, start_server
from tests.clock_support import ManualClock
from tests.conftest import BrokerProcess, Stubs, eventually, make_settings, stopped, stubs_for

from . import tasks_helpers as th

S = 1_000_000


@pytest.fixture
async def pair(tmp_path: Path, pg_url: str) -> AsyncIterator[tuple[ManualClock, list[tuple[Broker, Stubs]]]]:
    clock = ManualClock()
    made: list[tuple[Broker, Stubs]] = []
    try:
        for _ in range(2):
            b = await start_server(
                make_settings(tmp_path, db=pg_url, pg_poll_interval_s=60.0, sweeper_period_s=3600.0),
                clock=clock,
            )
            made.append((b, stubs_for(b.address)))

        async def both_sweepers_wait() -> bool:
            return clock.waiting >= 2

        await eventually(both_sweepers_wait, what="both sweepers' first period")
        yield clock, made
    finally:
        for b, s in made:
            await s.channel.close()
            await stopped(b)


async def test_each_firing_submits_once_across_two_brokers(pair):
    clock, [(a, sa), (b, sb)] = pair
    t0 = clock.now_us()
    spec = pb.ScheduleSpec(task=pb.TaskSpec(title="job"), interval=th.duration(10))
    await sa.tasks.CreateSchedule(pb.CreateScheduleRequest(schedule_id="s", spec=spec))
    # Both brokers fire the same firings at the same instant (their own connections, one database):
    # one submits, the other finds the firing claimed.
    for n in (1, 2, 3):
        now = t0 + n * 10 * S
        results = await asyncio.gather(a.storage.fire_schedule("s", now), b.storage.fire_schedule("s", now))
        assert sorted(len(fired.tasks) for fired, _ in results) == [0, 1]
    # Each broker's firing loop: both timers set for the next firing (at 40 s), both ring at its time.
    await clock.advance(30)
    await asyncio.gather(a.tasks.schedules.fire_due(), b.tasks.schedules.fire_due())  # nothing due yet
    await asyncio.gather(a.tasks.schedules.idle(), b.tasks.schedules.idle())
    for n in (4, 5):
        await clock.advance(10)

        async def fired(count: int = n) -> bool:
            return len(await th.all_tasks(sb, label="a2a.schedule=s")) >= count

        await eventually(fired, what=f"firing {n}")
        await asyncio.gather(a.tasks.schedules.idle(), b.tasks.schedules.idle())
    tasks = await th.all_tasks(sa, label="a2a.schedule=s")
    assert [t.spec.metadata["a2a.fire_time"] for t in tasks] == [iso(t0 + n * 10 * S) for n in range(1, 6)]
    s = await sb.tasks.GetSchedule(pb.GetScheduleRequest(schedule_id="s"))
    assert (s.fired_count, s.skipped_count, th.us(s.next_fire_time)) == (5, 0, t0 + 60 * S)


async def test_on_the_real_clock_two_brokers_fire_each_firing_once_and_one_carries_on_when_the_other_dies(
    tmp_path: Path, pg_url: str, broker_process: Callable[..., BrokerProcess]
):
    """A broker process and an in-process one, both firing a 1 s schedule on the real clock (their
    timers and 50 ms sweepers racing for every firing); the process is SIGKILLed midway. Every
    firing's task is stored once, none is lost, and the survivor fires the rest."""
    doomed = broker_process(pg_url, A2A_BROKER_SWEEPER_PERIOD_S="0.05")  # type: ignore[arg-type]
    doomed.start()
    a = stubs_for(doomed.address)
    survivor = await start_server(
        make_settings(tmp_path, db=pg_url, pg_poll_interval_s=60.0, sweeper_period_s=0.05)
    )
    b = stubs_for(survivor.address)
    try:
        start_us = (int(time.time()) + 2) * S
        spec = pb.ScheduleSpec(task=pb.TaskSpec(title="tick"), interval=th.duration(1))
        spec.start_time.CopyFrom(th.timestamp(start_us))
        await a.tasks.CreateSchedule(pb.CreateScheduleRequest(schedule_id="tick", spec=spec))

        async def stored(n: int) -> list[pb.Task] | None:
            tasks = await th.all_tasks(b, label="a2a.schedule=tick")
            return tasks if len(tasks) >= n else None

        await eventually(lambda: stored(3), timeout=15, what="three firings with both brokers up")
        doomed.kill()
        fired_before = survivor.tasks.schedules.fired
        tasks = await eventually(lambda: stored(6), timeout=15, what="three more firings by the survivor")
        assert survivor.tasks.schedules.fired - fired_before >= 2  # the survivor carried on alone
        times = sorted(t.spec.metadata["a2a.fire_time"] for t in tasks)
        assert times == [iso(start_us + n * S) for n in range(len(tasks))]  # each once, none missing
        s = await b.tasks.GetSchedule(pb.GetScheduleRequest(schedule_id="tick"))
        assert s.skipped_count == 0 and s.fired_count >= len(tasks)
    finally:
        await a.channel.close()
        await b.channel.close()
        await stopped(survivor)
