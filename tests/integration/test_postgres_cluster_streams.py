"""#23.2: streams that do not stop at the broker. With two brokers on one PostgreSQL database, what
is done through A reaches the streams open on B: a Watch (one task, a subtree, a session with
its end) gets every transition; WatchAgents gets agents registered and gone, with their content;
a worker's Listen or Work stream gets the cancellation of its task, and the loss of its lease to
the sweep. (Before, each of these carried only its own broker's events.) The relay's poll is set
far beyond the timeouts (tests/integration/conftest.py): the notification is what carries them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as pb
from broker.server import Broker
from tests.conftest import Stubs, next_within
from tests.integration import tasks_helpers as th

Cluster = Callable[..., Awaitable[tuple[Broker, Stubs]]]
T = 5.0  # seconds any one event may take


async def _events(call: Any, n: int) -> list[pb.TaskEvent]:
    return [await next_within(call, T) for _ in range(n)]


def _moves(events: list[pb.TaskEvent]) -> list[tuple[str, str, str]]:
    return [
        (e.transition.task_id, th.name(e.transition.from_status), th.name(e.transition.to_status))
        for e in events
    ]


async def test_a_watch_on_one_broker_sees_a_task_worked_through_the_other(cluster: Cluster) -> None:
    (_, a), (_, b) = await cluster(), await cluster()
    await th.register(a, "w", ["x"])
    task = await th.submit(a, "t", required_capabilities=["x"])
    watch = b.tasks.Watch(pb.WatchTasksRequest(task_id=task.task_id))
    await asyncio.wait_for(watch.initial_metadata(), T)  # live: nothing after this is missed
    (lease,) = await th.claim(a, "w")
    await th.complete(a, lease, "w", b"done")
    events = await _events(watch, 2)
    assert _moves(events) == [
        (task.task_id, "ready", "running"),
        (task.task_id, "running", "completed"),
    ]
    assert events[1].task.result == b"done"  # the task as it is now, read by B
    watch.cancel()


async def test_a_session_watch_on_one_broker_sees_its_tasks_and_its_end_through_the_other(
    cluster: Cluster,
) -> None:
    (_, a), (_, b) = await cluster(), await cluster()
    await th.register(a, "w", ["x"])
    session = await a.tasks.CreateSession(pb.CreateSessionRequest(name="plan"))
    watch = b.tasks.Watch(pb.WatchTasksRequest(session_id=session.session_id))
    await asyncio.wait_for(watch.initial_metadata(), T)
    parent = await th.submit(a, "p", required_capabilities=["x"], session_id=session.session_id)
    child = await th.submit(a, "c", required_capabilities=["x"], parent_id=parent.task_id)
    seen = _moves(await _events(watch, 4))  # each: submitted (pending), then ready
    assert sorted(seen) == sorted(
        [
            (t, f, to)
            for t in (parent.task_id, child.task_id)
            for f, to in (("unspecified", "pending"), ("pending", "ready"))
        ]
    ), seen
    await a.tasks.CloseSession(pb.CloseSessionRequest(session_id=session.session_id))
    for _ in range(2):
        (lease,) = await th.claim(a, "w")
        await th.complete(a, lease, "w")
    seen = await _events(watch, 5)  # two leases, two completions, the session's end
    assert sorted(m for m in _moves(seen[:4])) == sorted(
        [
            (t, f, to)
            for t in (parent.task_id, child.task_id)
            for f, to in (("ready", "running"), ("running", "completed"))
        ]
    ), seen
    assert not seen[4].HasField("transition")
    assert (seen[4].session.session_id, seen[4].session.status) == (
        session.session_id,
        pb.SESSION_STATUS_COMPLETED,
    )
    watch.cancel()


async def test_watch_agents_on_one_broker_sees_agents_come_and_go_through_the_other(cluster: Cluster) -> None:
    (_, a), (_, b) = await cluster(), await cluster()
    watch = b.agents.WatchAgents(apb.WatchAgentsRequest())
    await asyncio.wait_for(watch.initial_metadata(), T)
    await a.agents.Register(
        apb.RegisterRequest(
            agent_id="far", capabilities=["x", "y"], max_concurrent_tasks=3, labels={"z": "1"}
        )
    )
    ev = await next_within(watch, T)
    assert ev.type == apb.AGENT_EVENT_TYPE_REGISTERED
    assert (ev.agent.agent_id, list(ev.agent.capabilities), ev.agent.max_concurrent_tasks) == (
        "far",
        ["x", "y"],
        3,
    )
    assert dict(ev.agent.labels) == {"z": "1"}
    await a.agents.Deregister(apb.DeregisterRequest(agent_id="far"))
    ev = await next_within(watch, T)
    assert (ev.type, ev.agent.agent_id) == (apb.AGENT_EVENT_TYPE_DEREGISTERED, "far")
    watch.cancel()


async def _listening(stubs: Stubs, agent_id: str) -> Any:
    call = stubs.tasks.Listen(pb.ListenRequest(agent_id=agent_id))
    await asyncio.wait_for(call.initial_metadata(), T)
    return call


async def _next_cancellation(call: Any) -> pb.Cancellation:
    while True:
        resp = await next_within(call, T)
        if resp.cancellations:
            (c,) = resp.cancellations
            return c


async def test_a_task_cancelled_through_one_broker_is_cancelled_on_the_workers_stream_on_the_other(
    cluster: Cluster,
) -> None:
    (_, a), (_, b) = await cluster(), await cluster()
    await th.register(b, "w", ["x"])
    listen = await _listening(b, "w")
    task = await th.submit(a, "t", required_capabilities=["x"])
    got = await next_within(listen, T)
    (assigned,) = got.assignments
    assert assigned.task.task_id == task.task_id
    await a.tasks.Cancel(pb.CancelRequest(task_id=task.task_id, reason="not needed"))
    c = await _next_cancellation(listen)
    assert (c.task_id, c.attempt) == (task.task_id, assigned.attempt) and "not needed" in c.reason
    listen.cancel()


async def test_a_lease_lost_to_the_other_brokers_sweep_is_cancelled_on_the_workers_stream(
    cluster: Cluster,
) -> None:
    # B sweeps once a minute: its lapsed lease is found by A's sweep, a twentieth of a second apart.
    (_, a), (_, b) = await cluster(sweeper_period_s=0.05), await cluster(sweeper_period_s=60)
    await th.register(b, "w", ["x"])
    work = b.tasks.Work()
    await work.write(pb.WorkRequest(listen=pb.ListenRequest(agent_id="w")))
    await asyncio.wait_for(work.initial_metadata(), T)
    task = await th.submit(a, "t", required_capabilities=["x"], lease=1.0)
    got = await next_within(work, T)
    (assigned,) = got.assignments
    c = await _next_cancellation(work)  # no ExtendLease: the lease lapses, A requeues the task
    assert (c.task_id, c.attempt) == (task.task_id, assigned.attempt)
    work.cancel()
