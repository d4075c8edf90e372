"""The Python client's schedule calls and ``TaskSpec.not_before`` against a real broker: typed
values in and out (every field of a spec round-trips), a schedule firing on the broker's manual
clock, pause/resume/trigger/delete, and the broker's refusals raised as typed errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from a2a_broker_client import (
    AlreadyExistsError,
    BrokerClient,
    InvalidArgumentError,
    MissedFiringPolicy,
    NotFoundError,
    OverlapPolicy,
    ScheduleSpec,
    ScheduleStatus,
    SyncBrokerClient,
    TaskSpec,
    TaskStatus,
)

from tests.clock_support import ManualClock, manual_clock
from tests.conftest import eventually


@pytest.fixture
def settings_overrides():
    return {"liveness_timeout_s": 3600.0}


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address, timeout=10) as c:
        yield c


def _now(broker) -> datetime:
    return datetime.fromtimestamp(broker.tasks.clock.now_us() / 1e6, UTC)


async def _fired(client: BrokerClient, schedule_id: str) -> list:
    return [t async for t in client.iter_tasks(label=f"a2a.schedule={schedule_id}")]


@manual_clock
async def test_a_schedule_created_by_the_client_round_trips_and_fires_on_the_brokers_clock(client, broker):
    clock: ManualClock = broker.tasks.clock
    start = _now(broker) + timedelta(seconds=5)
    end = start + timedelta(days=1)
    spec = ScheduleSpec(
        task=TaskSpec("nightly", task_type="report", payload={"k": 1}, labels={"team": "a"}),
        interval=10,
        start_time=start,
        end_time=end,
        jitter=timedelta(seconds=2),
        missed=MissedFiringPolicy.RUN_ALL,
        max_catchup=5,
        misfire_grace=30,
        overlap="skip",
        created_by="me",
    )
    s = await client.create_schedule(spec, schedule_id="nightly")
    assert (s.schedule_id, s.status, s.fired_count) == ("nightly", ScheduleStatus.ACTIVE, 0)
    got = s.spec
    assert (got.interval, got.jitter, got.misfire_grace, got.max_catchup) == (10, 2, 30, 5)
    assert (got.missed, got.overlap, got.created_by) == (MissedFiringPolicy.RUN_ALL, OverlapPolicy.SKIP, "me")
    assert got.start_time == start.replace(microsecond=start.microsecond) and got.end_time == end
    assert (got.task.title, got.task.task_type, got.task.data, got.task.labels) == (
        "nightly",
        "report",
        {"k": 1},
        {"team": "a"},
    )
    assert s.next_fire_time == start and s.next_run_time is not None
    assert start <= s.next_run_time <= start + timedelta(seconds=2)
    assert await client.get_schedule("nightly") == s

    await clock.advance(7.1)  # past the start and the largest jitter
    await eventually(lambda: _count_is(client, "nightly", 1), what="the first firing")
    (t,) = await _fired(client, "nightly")
    assert t.spec.title == "nightly" and t.spec.labels["a2a.schedule"] == "nightly"
    s = await client.get_schedule("nightly")
    assert (s.fired_count, s.last_task_id, s.last_fire_time) == (1, t.task_id, start)


async def _count_is(client: BrokerClient, schedule_id: str, n: int) -> bool:
    return len(await _fired(client, schedule_id)) == n


@manual_clock
async def test_list_pause_resume_trigger_and_delete(client, broker):
    cron = ScheduleSpec(task=TaskSpec("c"), cron="0 9 * * MON-FRI", time_zone="Europe/Paris")
    await client.create_schedule(cron, schedule_id="a")
    await client.create_schedule(
        ScheduleSpec(task=TaskSpec("i"), interval=3600), schedule_id="b", paused=True
    )
    made_up = await client.create_schedule(ScheduleSpec(task=TaskSpec("g"), interval=60))
    assert made_up.schedule_id
    page = await client.list_schedules(page_size=2)
    assert [s.schedule_id for s in page.items] == ["a", "b"] and page.next_page_token
    assert [s.schedule_id async for s in client.iter_schedules()] == sorted(["a", "b", made_up.schedule_id])
    assert [s.schedule_id for s in (await client.list_schedules(status="paused")).items] == ["b"]

    paused = await client.pause_schedule("a", note="holiday")
    assert (paused.status, paused.note) == (ScheduleStatus.PAUSED, "holiday")
    assert (await client.resume_schedule("a")).status == ScheduleStatus.ACTIVE

    run = await client.trigger_schedule("b")  # even paused
    assert run.task is not None and run.task.status == TaskStatus.READY and run.skipped == ""
    assert run.schedule.fired_count == 1 and run.schedule.last_task_id == run.task.task_id
    again = await client.trigger_schedule("b", overlap=OverlapPolicy.SKIP)  # the first is unfinished
    assert again.task is None and again.skipped and again.schedule.skipped_count == 1

    await client.delete_schedule("b")
    with pytest.raises(NotFoundError):
        await client.get_schedule("b")
    with pytest.raises(NotFoundError):
        await client.trigger_schedule("b")
    assert (await client.get_task(run.task.task_id)).task_id == run.task.task_id  # its task stays


async def test_bad_schedules_are_refused_naming_the_field(client):
    with pytest.raises(InvalidArgumentError, match="cron"):
        await client.create_schedule(ScheduleSpec(task=TaskSpec("x"), cron="61 * * * *"), schedule_id="x")
    with pytest.raises(InvalidArgumentError, match="time_zone"):
        await client.create_schedule(
            ScheduleSpec(task=TaskSpec("x"), cron="* * * * *", time_zone="Mars/Base")
        )
    with pytest.raises(InvalidArgumentError, match="interval"):
        await client.create_schedule(ScheduleSpec(task=TaskSpec("x"), interval=0.5))
    with pytest.raises(ValueError, match="unknown value"):  # caught by the client before sending
        await client.create_schedule(ScheduleSpec(task=TaskSpec("x"), interval=5, overlap="sometimes"))
    assert (await client.list_schedules()).items == []


@manual_clock
async def test_a_task_submitted_with_not_before_is_pending_until_then(client, broker):
    clock: ManualClock = broker.tasks.clock
    at = _now(broker) + timedelta(seconds=30)
    res = await client.submit("later", not_before=at)
    assert res.task.status == TaskStatus.PENDING and res.task.spec.not_before == at
    await clock.advance(30.1)
    await eventually(
        lambda: _status_is(client, res.task.task_id, TaskStatus.READY), what="the task ready at its time"
    )


async def _status_is(client: BrokerClient, task_id: str, status: TaskStatus) -> bool:
    return (await client.get_task(task_id)).status == status


async def test_the_sync_client_has_the_schedule_calls(broker):
    def script() -> None:
        with SyncBrokerClient(broker.address, timeout=10) as client:
            s = client.create_schedule(ScheduleSpec(task=TaskSpec("s"), interval=60), schedule_id="s")
            assert [x.schedule_id for x in client.iter_schedules()] == ["s"]
            assert client.pause_schedule("s").status == ScheduleStatus.PAUSED
            with pytest.raises(AlreadyExistsError):
                client.create_schedule(
                    ScheduleSpec(task=TaskSpec("e"), interval=60), schedule_id=s.schedule_id
                )

    await asyncio.to_thread(script)
