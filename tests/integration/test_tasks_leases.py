"""Leases and their ends: retries with backoff, lease loss, offline agents, cancel, history, watch."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as pb
from tests.conftest import eventually, next_within

from .tasks_helpers import (
    agent_count,
    all_tasks,
    claim,
    complete,
    duration,
    fail,
    get,
    history,
    name,
    refused,
    register,
    status,
    submit,
    us,
)

Code = grpc.StatusCode


async def test_retries_wait_out_an_exponential_backoff_then_fail_for_good(stubs):
    await register(stubs, "w", capacity=1)
    t = await submit(stubs, "flaky", retries=2, backoff=0.4, multiplier=2.0)

    (a1,) = await claim(stubs, "w")
    f1 = await fail(stubs, a1, "w", error="e1")
    assert (name(f1.status), f1.attempt, f1.last_error) == ("ready", 1, "e1")
    wait1 = us(f1.next_attempt_at) - us(f1.updated_at)
    assert 400_000 <= wait1 <= 480_000  # 0.4 s plus at most 20 % jitter
    if time.time() * 1e6 < us(f1.next_attempt_at) - 100_000:
        assert await claim(stubs, "w") == []  # visible as ready, but not leasable yet

    (a2,) = await claim(stubs, "w", wait=10)
    assert a2.attempt == 2 and us(a2.task.started_at) >= us(f1.next_attempt_at)
    f2 = await fail(stubs, a2, "w", error="e2")
    wait2 = us(f2.next_attempt_at) - us(f2.updated_at)
    assert 800_000 <= wait2 <= 960_000  # doubled

    (a3,) = await claim(stubs, "w", wait=10)
    assert a3.attempt == 3 and us(a3.task.started_at) >= us(f2.next_attempt_at)
    f3 = await fail(stubs, a3, "w", error="e3")
    assert (name(f3.status), f3.attempt, f3.last_error) == ("failed", 3, "e3")
    assert await agent_count(stubs, "w") == 0
    assert "no retries left" in (await history(stubs, t.task_id))[-1][2]


async def test_non_retryable_failure_is_final_at_once(stubs):
    await register(stubs, "w", capacity=1)
    await submit(stubs, "t", retries=5)
    (a,) = await claim(stubs, "w")
    f = await fail(stubs, a, "w", error="bad input", final=True)
    assert (name(f.status), f.attempt) == ("failed", 1)
    assert await claim(stubs, "w", wait=0.3) == []


async def test_lost_lease_goes_to_another_worker_and_the_late_complete_is_refused(stubs):
    await register(stubs, "slow", capacity=1)
    await register(stubs, "fast", capacity=1)
    t = await submit(stubs, "t", lease=1.0, backoff=0.0)
    (a1,) = await claim(stubs, "slow")
    # The slow worker stops extending; in maintenance its stream takes no new work, only news.
    await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="slow", status=apb.AGENT_STATUS_MAINTENANCE))
    slow_listen = stubs.tasks.Listen(pb.ListenRequest(agent_id="slow"))

    (a2,) = await claim(stubs, "fast", wait=15)  # once the slow worker's lease lapses
    assert (a2.task.task_id, a2.attempt) == (t.task_id, 2)
    told = await next_within(slow_listen, 5)
    assert [(c.task_id, c.attempt) for c in told.cancellations] == [(t.task_id, 1)]
    assert "expired" in told.cancellations[0].reason
    slow_listen.cancel()

    late = pb.CompleteRequest(task_id=t.task_id, agent_id="slow", attempt=1, result=b"first")
    msg = await refused(stubs.tasks.Complete(late), Code.FAILED_PRECONDITION)
    assert "not leased to agent 'slow'" in msg
    await refused(
        stubs.tasks.ExtendLease(pb.ExtendLeaseRequest(task_id=t.task_id, agent_id="slow", attempt=1)),
        Code.FAILED_PRECONDITION,
    )
    stale = pb.FailRequest(task_id=t.task_id, agent_id="fast", attempt=1, error="x")
    assert "stale" in await refused(stubs.tasks.Fail(stale), Code.FAILED_PRECONDITION)
    assert await status(stubs, t.task_id) == "running"  # the refusals changed nothing

    done = await complete(stubs, a2, "fast", result=b"second")
    assert (name(done.status), done.result) == ("completed", b"second")
    assert (await get(stubs, t.task_id)).result == b"second"
    trail = await history(stubs, t.task_id)
    assert (
        "running",
        "ready",
        "attempt 1 failed: lease of agent slow expired; retry now",
        "broker",
        1,
    ) in trail
    assert await agent_count(stubs, "slow") == 0


async def test_extend_lease_keeps_the_task_and_records_progress(stubs):
    await register(stubs, "w", capacity=1)
    await submit(stubs, "t", lease=1.0)
    (a,) = await claim(stubs, "w")
    ext = await stubs.tasks.ExtendLease(
        pb.ExtendLeaseRequest(
            task_id=a.task.task_id,
            agent_id="w",
            attempt=a.attempt,
            progress=40,
            status_note="halfway",
            extension=duration(30),
        )
    )
    assert us(ext.lease_expires_at) - time.time() * 1e6 > 25e6
    got = await get(stubs, a.task.task_id)
    assert (got.progress, got.status_note, name(got.status)) == (40, "halfway", "running")
    bad = pb.ExtendLeaseRequest(task_id=a.task.task_id, agent_id="w", attempt=a.attempt, progress=101)
    await refused(stubs.tasks.ExtendLease(bad), Code.INVALID_ARGUMENT)


@pytest.mark.parametrize("settings_overrides", [{"heartbeat_interval_s": 0.2}])
async def test_offline_agents_running_tasks_go_back_to_ready_promptly(stubs):
    await register(stubs, "gone", capacity=2)
    t1, t2 = await submit(stubs, "t1"), await submit(stubs, "t2")
    assert len(await claim(stubs, "gone", n=2)) == 2
    t0 = time.monotonic()

    async def requeued() -> bool:
        return [await status(stubs, t1.task_id), await status(stubs, t2.task_id)] == ["ready", "ready"]

    await eventually(requeued, timeout=10, what="the offline agent's tasks to be requeued")
    assert time.monotonic() - t0 < 5  # the liveness timeout (0.6 s), not the 60 s lease
    got = await get(stubs, t1.task_id)
    assert got.attempt == 1 and "heartbeat" in got.last_error and not got.assigned_agent_id
    assert (await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id="gone"))).current_task_count == 0

    await register(stubs, "next", capacity=2)
    assert sorted(a.attempt for a in await claim(stubs, "next", n=2)) == [2, 2]


async def test_deregistering_requeues_at_once(stubs):
    await register(stubs, "w", capacity=1)
    t = await submit(stubs, "t")
    await claim(stubs, "w")
    resp = await stubs.agents.Deregister(apb.DeregisterRequest(agent_id="w"))
    assert resp.requeued_tasks == 1
    assert await status(stubs, t.task_id) == "ready"


async def test_cancel_cascades_to_descendants_and_tells_the_running_holder(stubs):
    await register(stubs, "w", capacity=5)
    root = await submit(stubs, "root")
    child = await submit(stubs, "child", parent_id=root.task_id)
    grandchild = await submit(stubs, "grandchild", parent_id=child.task_id)
    other = await submit(stubs, "other")
    stream = stubs.tasks.Listen(pb.ListenRequest(agent_id="w"))
    first = await next_within(stream)
    running = {a.task.task_id: a.attempt for a in first.assignments}
    assert len(running) == 4 and await agent_count(stubs, "w") == 4

    resp = await stubs.tasks.Cancel(
        pb.CancelRequest(task_id=root.task_id, cascade=True, reason="plan changed", actor="orch")
    )
    cancelled = {root.task_id, child.task_id, grandchild.task_id}
    assert set(resp.cancelled_task_ids) == cancelled
    told: dict[str, tuple[int, str]] = {}
    while len(told) < 3:
        for c in (await next_within(stream)).cancellations:
            told[c.task_id] = (c.attempt, c.reason)
    assert set(told) == cancelled
    assert told[root.task_id] == (1, "plan changed")
    assert "ancestor" in told[grandchild.task_id][1]
    assert await agent_count(stubs, "w") == 1
    assert await status(stubs, other.task_id) == "running"
    g = await get(stubs, grandchild.task_id)
    assert name(g.status) == "cancelled" and not g.HasField("lease_expires_at")
    late = pb.CompleteRequest(task_id=root.task_id, agent_id="w", attempt=1)
    await refused(stubs.tasks.Complete(late), Code.FAILED_PRECONDITION)
    await refused(stubs.tasks.Cancel(pb.CancelRequest(task_id=root.task_id)), Code.FAILED_PRECONDITION)
    await refused(stubs.tasks.Cancel(pb.CancelRequest(task_id="t-none")), Code.NOT_FOUND)
    stream.cancel()


async def test_cancel_without_cascade_leaves_children(stubs):
    root = await submit(stubs, "root")
    child = await submit(stubs, "child", parent_id=root.task_id)
    resp = await stubs.tasks.Cancel(pb.CancelRequest(task_id=root.task_id))
    assert list(resp.cancelled_task_ids) == [root.task_id]
    assert await status(stubs, child.task_id) == "ready"


async def test_cancel_with_cascade_under_a_finished_root_cancels_its_unfinished_descendants(stubs):
    """The root completed (a parent finishes before its children): a cascading Cancel still reaches
    the children that have not finished, and leaves the root and finished children as they are.
    Without cascade, a finished task is refused as before."""
    await register(stubs, "w", capacity=5)
    root = await submit(stubs, "root")
    (a,) = await claim(stubs, "w")
    assert a.task.task_id == root.task_id
    done_child = await submit(stubs, "done", parent_id=root.task_id)
    (d,) = await claim(stubs, "w")
    await complete(stubs, d, "w")
    await complete(stubs, a, "w")
    open_child = await submit(stubs, "open", parent_id=root.task_id)
    grandchild = await submit(stubs, "grandchild", parent_id=open_child.task_id)

    await refused(stubs.tasks.Cancel(pb.CancelRequest(task_id=root.task_id)), Code.FAILED_PRECONDITION)
    assert await status(stubs, open_child.task_id) == "ready"

    resp = await stubs.tasks.Cancel(pb.CancelRequest(task_id=root.task_id, cascade=True, reason="stop"))
    assert set(resp.cancelled_task_ids) == {open_child.task_id, grandchild.task_id}
    assert await status(stubs, root.task_id) == "completed"
    assert await status(stubs, done_child.task_id) == "completed"
    assert await status(stubs, open_child.task_id) == "cancelled"
    assert await status(stubs, grandchild.task_id) == "cancelled"


async def test_history_of_a_retried_and_completed_task_is_exact(stubs):
    await register(stubs, "w", capacity=1)
    t = await submit(stubs, "t", retries=1, backoff=0.0, submitted_by="orch")
    (a1,) = await claim(stubs, "w")
    await fail(stubs, a1, "w", error="oops")
    (a2,) = await claim(stubs, "w")
    await complete(stubs, a2, "w", result=b"ok")
    assert await history(stubs, t.task_id) == [
        ("", "pending", "submitted", "orch", 0),
        ("pending", "ready", "no unfinished prerequisites", "orch", 0),
        ("ready", "running", "leased to w", "w", 1),
        ("running", "ready", "attempt 1 failed: oops; retry now", "w", 1),
        ("ready", "running", "leased to w", "w", 2),
        ("running", "completed", "completed", "w", 2),
    ]
    resp = await stubs.tasks.GetHistory(pb.GetHistoryRequest(task_id=t.task_id))
    times = [us(tr.time) for tr in resp.transitions]
    assert times == sorted(times) and times[0] == us(t.created_at)
    await refused(stubs.tasks.GetHistory(pb.GetHistoryRequest(task_id="t-none")), Code.NOT_FOUND)


async def test_watch_streams_the_transitions_of_a_subtree_and_a_session(stubs):
    await register(stubs, "w", capacity=2)
    root = await submit(stubs, "root", session_id="s")
    child = await submit(stubs, "child", parent_id=root.task_id)
    unrelated = await submit(stubs, "unrelated")
    tree = stubs.tasks.Watch(pb.WatchTasksRequest(subtree_root_id=root.task_id, include_snapshot=True))
    session = stubs.tasks.Watch(pb.WatchTasksRequest(session_id="s", include_snapshot=True))
    snap = [await next_within(tree), await next_within(tree)]
    assert all(e.snapshot for e in snap)
    assert {e.task.task_id for e in snap} == {root.task_id, child.task_id}
    # the child inherited the root's session: both are in its snapshot
    assert {(await next_within(session)).task.task_id for _ in range(2)} == {root.task_id, child.task_id}

    await stubs.tasks.Cancel(pb.CancelRequest(task_id=unrelated.task_id))
    leased = await claim(stubs, "w", n=2)
    for a in leased:
        await complete(stubs, a, "w")
    events = [await next_within(tree) for _ in range(4)]
    assert not any(e.snapshot for e in events)
    seen = {(e.task.task_id, name(e.transition.from_status), name(e.transition.to_status)) for e in events}
    assert seen == {
        (root.task_id, "ready", "running"),
        (child.task_id, "ready", "running"),
        (root.task_id, "running", "completed"),
        (child.task_id, "running", "completed"),
    }
    done = [
        e for e in events if e.task.task_id == child.task_id and name(e.transition.to_status) == "completed"
    ]
    assert name(done[0].task.status) == "completed" and done[0].transition.actor == "w"
    s_events = [await next_within(session) for _ in range(4)]
    assert {e.task.task_id for e in s_events} == {root.task_id, child.task_id}  # not the unrelated task
    tree.cancel()
    session.cancel()

    await refused(next_within(stubs.tasks.Watch(pb.WatchTasksRequest(task_id="t-none"))), Code.NOT_FOUND)
    await refused(next_within(stubs.tasks.Watch(pb.WatchTasksRequest())), Code.INVALID_ARGUMENT)


async def test_a_lease_that_commits_after_the_listen_stream_ended_is_handed_back(stubs, broker):
    await register(stubs, "w", capacity=1)
    t = await submit(stubs, "t")
    committed, release = asyncio.Event(), asyncio.Event()
    real = broker.storage.lease_tasks

    async def slow_lease(agent_id: str, n: int, now: int):
        res = await real(agent_id, n, now)  # the lease is committed ...
        committed.set()
        await release.wait()  # ... but the answer is late
        return res

    broker.storage.lease_tasks = slow_lease
    try:
        stream = stubs.tasks.Listen(pb.ListenRequest(agent_id="w"))
        reading = asyncio.ensure_future(stream.read())
        await asyncio.wait_for(committed.wait(), 5)
        assert await status(stubs, t.task_id) == "running"
        stream.cancel()  # the agent goes away before it hears of the task

        async def stream_gone() -> bool:
            return broker.tasks.dispatch.listening("w") == 0

        await eventually(stream_gone, what="the broker to see the stream end")
    finally:
        del broker.storage.lease_tasks
        release.set()

    async def handed_back() -> bool:
        return await status(stubs, t.task_id) == "ready"

    await eventually(handed_back, what="the undelivered lease to be handed back")
    got = await get(stubs, t.task_id)
    assert got.attempt == 0 and await agent_count(stubs, "w") == 0
    assert (await history(stubs, t.task_id))[-1][:3] == (
        "running",
        "ready",
        "lease not delivered: the agent's call ended",
    )
    (a,) = await claim(stubs, "w")
    assert a.attempt == 1
    reading.cancel()


@pytest.mark.parametrize("settings_overrides", [{"task_retention_s": 0.0}])
async def test_finished_tasks_are_purged_after_the_retention_period(stubs):
    await register(stubs, "w", capacity=2)
    parent = await submit(stubs, "parent")
    child = await submit(stubs, "child", parent_id=parent.task_id)
    keep = await submit(stubs, "keep")
    leased = {a.task.spec.title: a for a in await claim(stubs, "w", n=2)}
    assert set(leased) == {"parent", "child"}
    await complete(stubs, leased["child"], "w")

    async def purged() -> bool:
        try:
            await get(stubs, child.task_id)
        except grpc.aio.AioRpcError as err:
            return err.code() == Code.NOT_FOUND
        return False

    await eventually(purged, what="the finished child to be purged")
    assert await status(stubs, parent.task_id) == "running"  # not finished: kept
    assert await status(stubs, keep.task_id) == "ready"
    await complete(stubs, leased["parent"], "w")

    async def parent_purged() -> bool:
        return not [t for t in await all_tasks(stubs) if t.task_id == parent.task_id]

    await eventually(parent_purged, what="the finished parent to be purged")
    assert [t.task_id for t in await all_tasks(stubs)] == [keep.task_id]


async def test_concurrent_completes_share_write_jobs_and_are_judged_one_by_one(stubs, broker):
    await register(stubs, "w", capacity=20)
    for i in range(20):
        await submit(stubs, f"t{i}")
    leased = await claim(stubs, "w", n=20)
    before = broker.tasks.completions.batches
    stale = pb.CompleteRequest(task_id=leased[0].task.task_id, agent_id="w", attempt=2)
    calls = [stubs.tasks.Complete(stale)] + [
        stubs.tasks.Complete(pb.CompleteRequest(task_id=a.task.task_id, agent_id="w", attempt=a.attempt))
        for a in leased
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[0], grpc.aio.AioRpcError)
    assert results[0].code() == Code.FAILED_PRECONDITION and "stale" in results[0].details()
    assert all(r.task.status == pb.TASK_STATUS_COMPLETED for r in results[1:])
    assert broker.tasks.completions.batches - before < len(calls)  # shared jobs
    assert await agent_count(stubs, "w") == 0


async def test_listen_ends_with_not_found_when_the_agent_deregisters(stubs):
    await register(stubs, "w", capacity=1)
    t = await submit(stubs, "t")
    stream = stubs.tasks.Listen(pb.ListenRequest(agent_id="w"))
    first = await next_within(stream)
    assert [a.task.task_id for a in first.assignments] == [t.task_id]
    await stubs.agents.Deregister(apb.DeregisterRequest(agent_id="w"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        while True:
            await next_within(stream)
    assert err.value.code() == Code.NOT_FOUND
    assert await status(stubs, t.task_id) == "ready"
