"""Contract: schedules (create, read, list, pause, resume, delete; a firing claims, submits and
records in one write, once; a trigger) and tasks held until their not_before time, on every
backend, each write group also rehearsed (run, rolled back, run again)."""

from __future__ import annotations

from typing import Any

import pytest

from broker.domain import schedules as rules
from broker.errors import AlreadyExists, FailedPrecondition, NotFound
from broker.models.schedules import (
    MissedPolicy,
    OverlapPolicy,
    ScheduleFilter,
    ScheduleSpecInput,
    ScheduleStatus,
)
from broker.models.tasks import TaskFilter, TaskSpecInput, TaskStatus
from broker.storage import Storage

from .helpers import T0, S, spec, status, submit


def every(seconds: int, **kw: Any) -> ScheduleSpecInput:
    return ScheduleSpecInput(interval_us=seconds * S, task=TaskSpecInput(title="job"), **kw)


async def create(store: Storage, schedule_id: str, s: ScheduleSpecInput, paused: bool = False, now: int = T0):
    return await store.create_schedule(schedule_id, s, paused, rules.check(s, now), now)


async def tasks_of(store: Storage, schedule_id: str) -> list:
    found, _ = await store.list_tasks(TaskFilter(label=f"a2a.schedule={schedule_id}", page_size=1000))
    return found


async def test_a_schedule_is_stored_read_listed_and_deleted(store):
    s = await create(store, "nightly", every(10, jitter_us=3 * S, missed=MissedPolicy.RUN_ALL))
    assert (s.status, s.next_fire_at, s.fired_count) == (ScheduleStatus.ACTIVE, T0 + 10 * S, 0)
    assert T0 + 10 * S <= s.next_due_at <= T0 + 13 * S
    assert (await store.get_schedule("nightly")).spec == s.spec
    with pytest.raises(AlreadyExists):
        await create(store, "nightly", every(5))
    await create(store, "hourly", every(3600), paused=True)
    page, more = await store.list_schedules(ScheduleFilter(page_size=1))
    assert [x.schedule_id for x in page] == ["hourly"] and more == "hourly"
    page, more = await store.list_schedules(ScheduleFilter(page_size=1, after=more))
    assert [x.schedule_id for x in page] == ["nightly"] and more is None
    paused, _ = await store.list_schedules(ScheduleFilter(status=ScheduleStatus.PAUSED))
    assert [x.schedule_id for x in paused] == ["hourly"]
    await store.delete_schedule("hourly")
    with pytest.raises(NotFound):
        await store.get_schedule("hourly")
    with pytest.raises(NotFound):
        await store.delete_schedule("hourly")


async def test_a_firing_submits_its_task_once_and_moves_the_schedule_on(store):
    await create(store, "s", every(10))
    assert await store.due_schedules(T0 + 10 * S - 1, 10) == []
    assert await store.next_schedule_due() == T0 + 10 * S
    assert await store.due_schedules(T0 + 10 * S, 10) == ["s"]
    fired, changes = await store.fire_schedule("s", T0 + 10 * S)
    (task,) = fired.tasks
    assert task.idempotency_key == rules.firing_key("s", T0, T0 + 10 * S)
    assert task.labels["a2a.schedule"] == "s" and task.status is TaskStatus.READY
    assert [tr.to_status for tr in changes.transitions] == [TaskStatus.PENDING, TaskStatus.READY]
    assert fired.schedule is not None
    assert (fired.schedule.next_fire_at, fired.schedule.fired_count) == (T0 + 20 * S, 1)
    assert (fired.schedule.last_fire_at, fired.schedule.last_task_id) == (T0 + 10 * S, task.task_id)
    again, _ = await store.fire_schedule("s", T0 + 10 * S)  # as a second broker would: not due any more
    assert again.schedule is None and again.tasks == []
    assert len(await tasks_of(store, "s")) == 1


async def test_a_firing_claimed_twice_still_stores_one_task(store):
    """The second line of defence: should the schedule's next firing be read as it was (the claim
    passed twice), the firing's idempotency key still stores one task."""
    await create(store, "s", every(10))
    await store.fire_schedule("s", T0 + 10 * S)
    p = store.q.param
    rewind = f"UPDATE schedules SET next_fire_at = {p}, next_due_at = {p} WHERE schedule_id = {p}"
    await store.engine.write(lambda conn: conn.execute(rewind, (T0 + 10 * S, T0 + 10 * S, "s")))
    fired, _ = await store.fire_schedule("s", T0 + 10 * S)
    assert fired.tasks == [] and fired.schedule is not None and fired.schedule.fired_count == 1
    assert len(await tasks_of(store, "s")) == 1


async def test_missed_firings_and_the_overlap_policy_in_one_write(store):
    s = every(10, missed=MissedPolicy.RUN_ALL, max_catchup=3, overlap=OverlapPolicy.CANCEL_PREVIOUS)
    await create(store, "s", s)
    fired, _ = await store.fire_schedule("s", T0 + 55 * S)  # 10...50 due: the last three run
    times = [t.metadata["a2a.fire_time"] for t in fired.tasks]
    assert times == [rules.iso(T0 + n * S) for n in (30, 40, 50)]
    assert [await status(store, t.task_id) for t in fired.tasks] == ["cancelled", "cancelled", "ready"]
    assert fired.schedule is not None and fired.schedule.skipped_count == 2


async def test_a_firing_the_broker_refuses_is_recorded_and_the_schedule_goes_on(store):
    template = TaskSpecInput(title="child", parent_id="t-gone")
    await create(store, "s", ScheduleSpecInput(interval_us=10 * S, task=template))
    fired, _ = await store.fire_schedule("s", T0 + 10 * S)
    assert fired.tasks == [] and fired.schedule is not None
    assert fired.schedule.skipped_count == 1 and "t-gone" in fired.schedule.last_error
    assert fired.schedule.next_fire_at == T0 + 20 * S


async def test_pause_resume_and_trigger(store):
    await create(store, "s", every(10, overlap=OverlapPolicy.SKIP))
    paused = await store.pause_schedule("s", "maintenance", T0 + S)
    assert (paused.status, paused.note) == (ScheduleStatus.PAUSED, "maintenance")
    assert await store.due_schedules(T0 + 100 * S, 10) == []
    fired, _ = await store.trigger_schedule("s", T0 + 100 * S, None)  # runs while paused
    (task,) = fired.tasks
    assert task.idempotency_key is None
    skipped, _ = await store.trigger_schedule("s", T0 + 101 * S, None)  # overlap: skip
    assert skipped.tasks == [] and task.task_id in skipped.skipped
    forced, _ = await store.trigger_schedule("s", T0 + 102 * S, OverlapPolicy.ALLOW)
    assert len(forced.tasks) == 1
    resumed = await store.resume_schedule("s", T0 + 105 * S)
    assert (resumed.status, resumed.next_fire_at, resumed.note) == (ScheduleStatus.ACTIVE, T0 + 110 * S, "")
    assert resumed.fired_count == 2


async def test_a_schedule_ends_after_its_last_firing(store):
    await create(store, "s", every(10, end_at=T0 + 15 * S))
    fired, _ = await store.fire_schedule("s", T0 + 10 * S)
    assert fired.schedule is not None and fired.schedule.status is ScheduleStatus.ENDED
    assert fired.schedule.next_fire_at is None and await store.next_schedule_due() is None
    with pytest.raises(FailedPrecondition):
        await store.pause_schedule("s", "", T0 + 20 * S)
    with pytest.raises(FailedPrecondition):
        await store.trigger_schedule("s", T0 + 20 * S, None)


async def test_a_task_held_until_its_time_starts_when_it_comes(store):
    (t,) = await submit(store, spec("held", not_before=T0 + 30 * S))
    assert (t.status, t.not_before) == (TaskStatus.PENDING, T0 + 30 * S)
    await store.release_backoffs(T0 + 29 * S)
    assert await status(store, t.task_id) == "pending"
    changes = await store.release_backoffs(T0 + 30 * S)
    assert await status(store, t.task_id) == "ready" and changes.ready
    (u,) = await submit(store, spec("held too", not_before=T0 + 60 * S))
    await store.sweep_tasks(T0 + 60 * S)
    assert await status(store, u.task_id) == "ready"
