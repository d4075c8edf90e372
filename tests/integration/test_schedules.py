"""Schedules through the gRPC API: a schedule fires on time and submits one task per firing, once
across a restart, with each missed-firing and overlap policy; pause, resume, trigger and delete;
bad input refused naming the field, with nothing stored. On the manual clock (the firing loop's
timer and sweeper run on it), plus one schedule on the real clock with a test-sized interval."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from broker.domain.schedules import iso
from broker.pb import tasks_pb2 as pb
from broker.server import Broker, start_server
from tests.clock_support import ManualClock, later, manual_clock
from tests.conftest import Stubs, eventually, make_settings, stopped, stubs_for

from . import tasks_helpers as th

S = 1_000_000


@pytest.fixture
def settings_overrides():
    return {"liveness_timeout_s": 3600.0}  # agents stay online while the clock moves on


def schedule_spec(interval: float | None = 10, **kw: Any) -> pb.ScheduleSpec:
    msg = pb.ScheduleSpec(task=kw.pop("task", pb.TaskSpec(title="job", required_capabilities=["x"])), **kw)
    if interval is not None:
        msg.interval.CopyFrom(th.duration(interval))
    return msg


async def create(stubs: Stubs, schedule_id: str = "s", paused: bool = False, **kw: Any) -> pb.Schedule:
    req = pb.CreateScheduleRequest(schedule_id=schedule_id, spec=schedule_spec(**kw), paused=paused)
    return await stubs.tasks.CreateSchedule(req)


async def get(stubs: Stubs, schedule_id: str = "s") -> pb.Schedule:
    return await stubs.tasks.GetSchedule(pb.GetScheduleRequest(schedule_id=schedule_id))


async def fired(stubs: Stubs, schedule_id: str = "s") -> list[pb.Task]:
    """The schedule's tasks, oldest first."""
    return await th.all_tasks(stubs, label=f"a2a.schedule={schedule_id}")


def fire_times(tasks: list[pb.Task]) -> list[str]:
    return [t.spec.metadata["a2a.fire_time"] for t in tasks]


async def count_is(stubs: Stubs, n: int, schedule_id: str = "s") -> bool:
    return len(await fired(stubs, schedule_id)) == n


# ---------------------------------------------------------------- firing on time


@manual_clock
async def test_a_schedule_fires_on_time_by_its_timer_and_submits_one_task_per_firing(stubs, broker):
    clock: ManualClock = broker.tasks.clock
    t0 = clock.now_us()
    s = await create(stubs, interval=10)
    assert th.us(s.next_fire_time) == t0 + 10 * S and s.status == pb.SCHEDULE_STATUS_ACTIVE
    await clock.advance(9.9)
    assert await fired(stubs) == []
    await clock.advance(0.1)  # the firing loop's timer: no sweeper round needed (its period is 1 s)
    await eventually(lambda: count_is(stubs, 1), what="the first firing")
    await clock.advance(10)
    await eventually(lambda: count_is(stubs, 2), what="the second firing")
    tasks = await fired(stubs)
    assert [th.us(t.created_at) for t in tasks] == [t0 + 10 * S, t0 + 20 * S]  # on time
    assert [t.spec.idempotency_key for t in tasks] == [f"schedule:s:{t0:x}:{t0 + n * S:x}" for n in (10, 20)]
    assert all(th.name(t.status) == "ready" and t.spec.title == "job" for t in tasks)
    s = await get(stubs)
    assert (s.fired_count, s.last_task_id, th.us(s.next_fire_time)) == (2, tasks[1].task_id, t0 + 30 * S)


@manual_clock
async def test_a_cron_schedule_fires_at_its_times_in_its_zone(stubs, broker):
    clock: ManualClock = broker.tasks.clock
    await later(broker, 30 - (clock.now_us() / S) % 30 + 1)  # 1 s past a multiple of 30 s
    s = await create(stubs, interval=None, cron="0,30 * * * * *", time_zone="Asia/Kolkata")
    due = th.us(s.next_fire_time)
    assert due % (30 * S) == 0 and 0 < due - clock.now_us() <= 30 * S
    await later(broker, (due - clock.now_us()) / S)
    await eventually(lambda: count_is(stubs, 1), what="the firing")
    assert th.us((await get(stubs)).next_fire_time) == due + 30 * S


async def test_a_schedule_fires_on_the_real_clock(stubs):
    await th.register(stubs, "w", ["x"])
    start = time.time()
    await create(stubs, interval=1, overlap=pb.OVERLAP_POLICY_ALLOW)
    (a,) = await th.claim(stubs, "w", wait=10)  # the first firing wakes a waiting worker
    assert time.time() - start >= 0.95
    await th.complete(stubs, a, "w")
    (b,) = await th.claim(stubs, "w", wait=10)
    times = [th.us(x.task.created_at) for x in (a, b)]
    assert 0.9 * S <= times[1] - times[0] <= 1.5 * S


# ---------------------------------------------------------------- restarts and missed firings


class Restarts:
    """Brokers one after another on one database and one manual clock."""

    def __init__(self, tmp_path: Path, backend: dict[str, Any]) -> None:
        self.settings = make_settings(tmp_path, liveness_timeout_s=3600.0, **backend)
        self.clock = ManualClock()
        self.broker: Broker | None = None
        self.stubs: Stubs | None = None

    async def start(self) -> tuple[Broker, Stubs]:
        self.broker = await start_server(self.settings, clock=self.clock)
        self.stubs = stubs_for(self.broker.address)

        async def sweeper_waits() -> bool:  # its first period has begun: advancing runs a round
            return self.clock.waiting > 0

        await eventually(sweeper_waits, what="the sweeper's first period")
        return self.broker, self.stubs

    async def stop(self) -> None:
        if self.stubs is not None:
            await self.stubs.channel.close()
        if self.broker is not None:
            await stopped(self.broker)
        self.broker = self.stubs = None


@pytest.fixture
async def restarts(tmp_path, backend_overrides):
    r = Restarts(tmp_path, backend_overrides)
    yield r
    await r.stop()


async def test_each_firing_submits_once_across_a_restart(restarts):
    broker, stubs = await restarts.start()
    t0 = restarts.clock.now_us()
    await create(stubs, interval=10)
    await later(broker, 10)
    await eventually(lambda: count_is(stubs, 1), what="the first firing")
    await restarts.stop()
    broker, stubs = await restarts.start()
    await later(broker, 1)  # a sweeper round of the new broker: nothing is due again
    assert len(await fired(stubs)) == 1
    await later(broker, 9)
    await eventually(lambda: count_is(stubs, 2), what="the second firing")
    await later(broker, 1)
    tasks = await fired(stubs)
    assert fire_times(tasks) == [iso(t0 + 10 * S), iso(t0 + 20 * S)]


@pytest.mark.parametrize(
    ("missed", "grace", "ran", "skipped"),
    [
        (pb.MISSED_FIRING_POLICY_SKIP, 1, [], 5),
        (pb.MISSED_FIRING_POLICY_SKIP, 60, [50], 4),  # the latest within the grace still runs
        (pb.MISSED_FIRING_POLICY_RUN_ONCE, 1, [50], 4),
        (pb.MISSED_FIRING_POLICY_RUN_ALL, 1, [30, 40, 50], 2),  # max_catchup 3
    ],
    ids=["skip", "skip-within-grace", "run-once", "run-all-bounded"],
)
async def test_firings_missed_while_no_broker_ran(restarts, missed, grace, ran, skipped):
    broker, stubs = await restarts.start()
    t0 = restarts.clock.now_us()
    await create(stubs, interval=10, missed=missed, max_catchup=3, misfire_grace=th.duration(grace))
    await restarts.stop()
    await restarts.clock.advance(55)  # firings at 10, 20, 30, 40 and 50 s come while no broker runs
    broker, stubs = await restarts.start()
    await later(broker, 1)  # the new broker's first sweeper round
    await eventually(lambda: count_is(stubs, len(ran)), what="the catch-up")
    await later(broker, 1)  # and nothing more
    assert fire_times(await fired(stubs)) == [iso(t0 + n * S) for n in ran]
    s = await get(stubs)
    assert (s.fired_count, s.skipped_count) == (len(ran), skipped)
    assert th.us(s.next_fire_time) == t0 + 60 * S


# ---------------------------------------------------------------- overlap


@manual_clock
async def test_overlap_allow_skip_and_cancel_previous(stubs, broker):
    await th.register(stubs, "w", ["x"], capacity=10)
    await create(stubs, "allow", interval=10, overlap=pb.OVERLAP_POLICY_ALLOW)
    await create(stubs, "skip", interval=10, overlap=pb.OVERLAP_POLICY_SKIP)
    await create(stubs, "cancel", interval=10, overlap=pb.OVERLAP_POLICY_CANCEL_PREVIOUS)
    await later(broker, 10)
    await eventually(lambda: count_is(stubs, 1, "allow"), what="the first firing")
    await later(broker, 10)
    await eventually(lambda: count_is(stubs, 2, "allow"), what="the second firing")
    assert [th.name(t.status) for t in await fired(stubs, "allow")] == ["ready", "ready"]
    (first,) = await fired(stubs, "skip")  # the second firing found the first task unfinished
    assert (await get(stubs, "skip")).skipped_count == 1
    old, new = await fired(stubs, "cancel")
    assert (th.name(old.status), th.name(new.status)) == ("cancelled", "ready")
    assert old.last_error.startswith("superseded by schedule cancel's run at")
    # Once the skip schedule's task has finished, its next firing runs.
    got = await th.claim(stubs, "w", n=10)
    assert first.task_id in {a.task.task_id for a in got}
    for a in got:
        await th.complete(stubs, a, "w")
    await later(broker, 10)
    await eventually(lambda: count_is(stubs, 2, "skip"), what="the firing after the finish")


# ---------------------------------------------------------------- pause, resume, trigger, delete


@manual_clock
async def test_pause_resume_trigger_and_delete(stubs, broker):
    clock: ManualClock = broker.tasks.clock
    t0 = clock.now_us()
    await create(stubs, interval=10)
    s = await stubs.tasks.PauseSchedule(pb.PauseScheduleRequest(schedule_id="s", note="upgrade"))
    assert (s.status, s.note) == (pb.SCHEDULE_STATUS_PAUSED, "upgrade")
    await later(broker, 25)
    assert await fired(stubs) == []  # paused: nothing fires, and nothing is made up after
    r = await stubs.tasks.TriggerSchedule(pb.TriggerScheduleRequest(schedule_id="s"))
    assert r.task.spec.labels["a2a.schedule"] == "s" and not r.skipped
    s = await stubs.tasks.ResumeSchedule(pb.ResumeScheduleRequest(schedule_id="s"))
    assert s.status == pb.SCHEDULE_STATUS_ACTIVE and th.us(s.next_fire_time) == t0 + 30 * S
    await later(broker, 5)
    await eventually(lambda: count_is(stubs, 2), what="the firing after resuming")
    listed = await stubs.tasks.ListSchedules(pb.ListSchedulesRequest(status=pb.SCHEDULE_STATUS_ACTIVE))
    assert [x.schedule_id for x in listed.schedules] == ["s"]
    await stubs.tasks.DeleteSchedule(pb.DeleteScheduleRequest(schedule_id="s"))
    await th.refused(get(stubs), grpc.StatusCode.NOT_FOUND)
    await later(broker, 20)
    assert len(await fired(stubs)) == 2  # its tasks stay; no more come


async def test_unknown_and_ended_schedules(stubs):
    for call in (
        stubs.tasks.GetSchedule(pb.GetScheduleRequest(schedule_id="nope")),
        stubs.tasks.TriggerSchedule(pb.TriggerScheduleRequest(schedule_id="nope")),
        stubs.tasks.DeleteSchedule(pb.DeleteScheduleRequest(schedule_id="nope")),
    ):
        await th.refused(call, grpc.StatusCode.NOT_FOUND)
    await create(stubs, "s", interval=10)
    await th.refused(create(stubs, "s", interval=10), grpc.StatusCode.ALREADY_EXISTS)


# ---------------------------------------------------------------- bad input


def _ts(seconds_from_now: float) -> Any:
    return th.timestamp(int((time.time() + seconds_from_now) * S))


BAD = [
    ({"interval": None, "cron": "61 * * * *"}, "spec.cron: "),
    ({"interval": None, "cron": "every morning"}, "spec.cron: "),
    ({"interval": None, "cron": "0 9 * * *", "time_zone": "Mars/Olympus_Mons"}, "spec.time_zone: "),
    ({"interval": 0}, "spec.interval: must be at least 1 s"),
    ({"interval": -5}, "spec.interval: must be at least 1 s"),
    ({"interval": None}, "spec.cron: give a cron expression or an interval"),
    ({"cron": "0 9 * * *"}, "spec.cron: give a cron expression or an interval, not both"),
    ({"start_time": _ts(100), "end_time": _ts(50)}, "spec.end_time: must be after start_time"),
    ({"end_time": _ts(-50)}, "spec.end_time: "),
    ({"jitter": th.duration(10)}, "spec.jitter: must be less than the interval"),
    ({"jitter": th.duration(7200), "interval": 86400}, "spec.jitter: must be at most 3600 s"),
    ({"misfire_grace": th.duration(0.5)}, "spec.misfire_grace: must be at least 1 s"),
    ({"max_catchup": 5000}, "spec.max_catchup: must be at most 1000"),
    ({"missed": 9}, "spec.missed: unknown value 9"),
    ({"task": pb.TaskSpec(title="")}, "spec.task.title: must not be empty"),
    ({"task": pb.TaskSpec(title="t", idempotency_key="k")}, "spec.task.idempotency_key: "),
    ({"task": pb.TaskSpec(title="t", priority=11)}, "spec.task.priority: "),
]


@pytest.mark.parametrize(
    ("kw", "message"), BAD, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD)]
)
async def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(stubs, kw, message):
    details = await th.refused(create(stubs, **kw), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith(message), details
    assert (await stubs.tasks.ListSchedules(pb.ListSchedulesRequest())).schedules == []


async def test_a_bad_schedule_id_or_missing_task_is_refused(stubs):
    bad_id = pb.CreateScheduleRequest(schedule_id="a" * 65, spec=schedule_spec())
    details = await th.refused(stubs.tasks.CreateSchedule(bad_id), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("schedule_id: "), details
    no_task = pb.CreateScheduleRequest(spec=pb.ScheduleSpec(interval=th.duration(10)))
    details = await th.refused(stubs.tasks.CreateSchedule(no_task), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("spec.task: is required"), details
    assert (await stubs.tasks.ListSchedules(pb.ListSchedulesRequest())).schedules == []
