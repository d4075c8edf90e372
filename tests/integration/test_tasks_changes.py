"""Task writes return what they changed, and the task queue decides whom to tell: no capture
callback, priority policy or requeue side channel in the Storage protocol (issue 9, item 3)."""

from __future__ import annotations

from broker.clock import now_us
from broker.models.tasks import FailInput, TaskStatus
from broker.storage.base import Storage
from broker.storage.sqlite import SqliteStorage

from .tasks_helpers import claim, register, submit

PLUMBING = ("task_policy", "set_task_capture", "take_requeue_changes")


def test_the_storage_protocol_and_backend_hold_no_task_plumbing():
    for name in PLUMBING:
        assert not hasattr(Storage, name), name
        assert not hasattr(SqliteStorage, name), name


async def test_a_departure_returns_what_requeueing_its_tasks_changed(stubs, broker):
    await register(stubs, "w")
    t = await submit(stubs, "t")
    await claim(stubs, "w")
    gone = await broker.storage.deregister_agent("w", now_us())
    assert gone.requeued_tasks == [t.task_id]
    ch = gone.task_changes
    assert [(tr.task_id, tr.from_status, tr.to_status) for tr in ch.transitions] == [
        (t.task_id, TaskStatus.RUNNING, TaskStatus.READY)
    ]
    assert ch.released == {"w"} and ch.ready == {()}
    assert [(agent, c.task_id) for agent, c in ch.cancellations] == [("w", t.task_id)]
    assert ch.tasks[t.task_id].status == TaskStatus.READY  # departures always carry snapshots


async def test_a_write_returns_task_snapshots_only_when_asked(stubs, broker):
    await register(stubs, "w", capacity=2)
    t1, t2 = await submit(stubs, "one"), await submit(stubs, "two")
    by_task = {a.task.task_id: a for a in await claim(stubs, "w", 2)}
    a1, a2 = by_task[t1.task_id], by_task[t2.task_id]
    _, plain = await broker.storage.fail_task(
        FailInput(task_id=t1.task_id, agent_id="w", attempt=a1.attempt, error="x"), now_us()
    )
    assert [tr.task_id for tr in plain.transitions] == [t1.task_id] and plain.tasks == {}
    _, watched = await broker.storage.fail_task(
        FailInput(task_id=t2.task_id, agent_id="w", attempt=a2.attempt, error="x"), now_us(), snapshots=True
    )
    assert watched.tasks[t2.task_id].status == TaskStatus.READY
    assert watched.tasks[t2.task_id].last_error == "x"
