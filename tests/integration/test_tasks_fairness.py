"""Concurrency keys (#26.3), on a real broker (both backends: --backend postgres): a limit on a
key's running tasks holds under many racing workers without holding back other keys, keys with
ready work take turns so that one key's backlog does not delay another key's task, a capability's
limit covers every task requiring it, and a rate limit's bucket holds across a restart."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import grpc

from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as pb
from broker.server import start_server
from tests.clock_support import ManualClock, manual_clock
from tests.conftest import stopped, stubs_for

from .tasks_helpers import claim, complete, duration, refused, register, spec


async def set_limit(stubs: Any, name: str, **kw: Any) -> pb.ConcurrencyLimit:
    per = kw.pop("per", None)
    limit = pb.ConcurrencyLimit(name=name, **kw)
    if per is not None:
        limit.per.CopyFrom(duration(per))
    return await stubs.tasks.SetConcurrencyLimit(pb.SetConcurrencyLimitRequest(limit=limit))


async def submit_many(stubs: Any, n: int, key: str, title: str = "t", **kw: Any) -> list[str]:
    """``n`` tasks under ``key``, in SubmitGraph batches of 1000; their ids in submission order."""
    ids: list[str] = []
    for start in range(0, n, 1000):
        nodes = [
            pb.GraphNode(key=str(i), task=spec(f"{title}{i}", concurrency_key=key, **kw))
            for i in range(start, min(n, start + 1000))
        ]
        resp = await stubs.tasks.SubmitGraph(pb.SubmitGraphRequest(nodes=nodes))
        ids += [resp.task_ids[str(i)] for i in range(start, min(n, start + 1000))]
    return ids


async def keys(stubs: Any, prefix: str = "") -> dict[str, pb.ConcurrencyKey]:
    resp = await stubs.tasks.ListConcurrencyKeys(pb.ListConcurrencyKeysRequest(prefix=prefix))
    return {k.key: k for k in resp.keys}


async def test_a_keys_limit_is_never_exceeded_under_20_racing_workers(stubs):
    """20 workers claim and finish tasks of two keys at once: the limited key never has more than
    its limit running (seen by the workers and by the broker), reaches it, and the other key
    runs past it meanwhile."""
    await set_limit(stubs, "tenants", key="tenant-*", max_running=3)
    await set_limit(stubs, "big-tenant", key="tenant-big", max_running=1000)  # more specific: wins
    limited = await submit_many(stubs, 60, "tenant-a", tags=["tenant-a"])
    free = await submit_many(stubs, 60, "tenant-big", tags=["tenant-big"])
    workers = [f"w{i:02d}" for i in range(20)]
    for w in workers:
        await register(stubs, w, capacity=3)
    running: Counter[str] = Counter()
    most: Counter[str] = Counter()
    done: set[str] = set()
    rng = random.Random(26)
    over: list[str] = []
    seen: list[int] = []  # the key's running tasks as the broker listed them

    async def work(agent: str) -> None:
        while len(done) < len(limited) + len(free):
            got = await claim(stubs, agent, n=3, wait=0.5)
            for a in got:
                running[a.task.spec.concurrency_key] += 1
            for key, n in running.items():
                most[key] = max(most[key], n)
            await asyncio.sleep(rng.random() * 0.05)  # the work
            for a in got:
                running[a.task.spec.concurrency_key] -= 1
                await complete(stubs, a, agent)
                done.add(a.task.task_id)

    async def watch() -> None:
        """The broker's own view: the key's running tasks, listed, never above the limit."""
        while True:
            listed = await stubs.tasks.List(
                pb.ListTasksRequest(status=pb.TASK_STATUS_RUNNING, tag="tenant-a", page_size=1000)
            )
            counted = (await keys(stubs, "tenant-a")).get("tenant-a")
            seen.append(len(listed.tasks))
            if len(listed.tasks) > 3 or (counted is not None and counted.running > 3):
                over.append(f"{len(listed.tasks)} listed, {counted.running if counted else 0} counted")
            await asyncio.sleep(0.005)

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait_for(asyncio.gather(*(work(w) for w in workers)), 45)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    assert not over, over[:5]
    assert max(most["tenant-a"], *seen) == 3, (most, max(seen))
    assert most["tenant-big"] > 3, most
    now = await keys(stubs)
    assert all(k.running == 0 and k.waiting == 0 for k in now.values()), now


async def test_tasks_over_the_limit_wait_in_order_and_start_as_room_frees(stubs):
    await set_limit(stubs, "one-at-a-time", key="solo", max_running=1)
    ids = await submit_many(stubs, 3, "solo")
    other = await submit_many(stubs, 2, "other")
    await register(stubs, "w", capacity=5)
    got = await claim(stubs, "w", n=5)
    assert sorted(a.task.task_id for a in got) == sorted([ids[0], *other])
    assert await claim(stubs, "w", n=5) == []  # the key is at its limit: its next task waits
    k = (await keys(stubs))["solo"]
    assert (k.running, k.waiting, k.limit, k.max_running) == (1, 2, "one-at-a-time", 1)
    # A Claim waiting for work is woken when the key's running task finishes (another agent's:
    # the end frees room under the limit, not only its holder's capacity).
    await register(stubs, "w2", capacity=5)
    waiting = asyncio.ensure_future(claim(stubs, "w2", n=5, wait=10))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await complete(stubs, next(a for a in got if a.task.task_id == ids[0]), "w")
    nxt = await asyncio.wait_for(waiting, 5)
    assert [a.task.task_id for a in nxt] == [ids[1]]


async def test_one_keys_backlog_does_not_hold_back_another_keys_task(stubs):
    """10,000 ready tasks of one key, then one task of another: it starts within the next two
    assignments, and the backlog then goes on in its own order."""
    big = await submit_many(stubs, 10_000, "big")
    await register(stubs, "w", capacity=1)
    handed: list[str] = []
    for _ in range(3):
        (a,) = await claim(stubs, "w")
        handed.append(a.task.task_id)
        await complete(stubs, a, "w")
    assert handed == big[:3]
    (small,) = await submit_many(stubs, 1, "small")
    after: list[str] = []
    for _ in range(4):
        (a,) = await claim(stubs, "w")
        after.append(a.task.task_id)
        await complete(stubs, a, "w")
    assert small in after[:2], after
    assert [t for t in after if t != small] == big[3:6]


async def test_keys_take_turns_within_a_priority_and_a_higher_priority_goes_first(stubs):
    for key in ("a", "b", "c"):
        await submit_many(stubs, 3, key, title=key)
    (urgent,) = await submit_many(stubs, 1, "d", title="d", priority=9)
    await register(stubs, "w", capacity=20)
    got = await claim(stubs, "w", n=20)
    titles = [a.task.spec.title for a in got]
    assert titles[0] == "d0" and got[0].task.task_id == urgent
    assert titles[1:] == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"], titles


async def test_a_capabilitys_limit_covers_every_task_requiring_it(stubs):
    await set_limit(stubs, "one-gpu", capability="gpu", max_running=1)
    await stubs.tasks.Submit(pb.SubmitRequest(task=spec("plain", required_capabilities=["gpu"])))
    await stubs.tasks.Submit(
        pb.SubmitRequest(task=spec("keyed", required_capabilities=["gpu"], concurrency_key="k"))
    )
    await register(stubs, "g1", caps=["gpu"], capacity=2)
    await register(stubs, "g2", caps=["gpu"], capacity=2)
    first = await claim(stubs, "g1", n=2)
    assert len(first) == 1
    assert await claim(stubs, "g2", n=2) == []
    await complete(stubs, first[0], "g1")
    second = await claim(stubs, "g2", n=2)
    assert len(second) == 1 and second[0].task.task_id != first[0].task.task_id


async def test_limits_are_a_resource_and_bad_ones_are_refused_naming_the_field(stubs):
    made = await set_limit(stubs, "api", key="tenant-*", rate=5, per=1.0)
    assert (made.rate, made.burst, made.per.seconds, made.max_running) == (5, 5, 1, 0)
    again = await set_limit(stubs, "api", key="tenant-*", max_running=2)
    assert (again.rate, again.max_running) == (0, 2) and again.created_at == made.created_at
    for kw, words in (
        ({"key": "a", "capability": "b", "max_running": 1}, "limit: give exactly one of key and capability"),
        ({"key": "a"}, "limit: give max_running, rate, or both"),
        ({"key": "a", "rate": 3}, "limit: per: a rate needs its period"),
        ({"key": "a", "max_running": -1}, "limit.max_running: must be at least 0"),
        ({"key": "a", "rate": 1, "per": 0.0001}, "limit.per: must be at least 0.001 s"),
        ({"key": "a\n", "max_running": 1}, "limit.key: must not contain control characters"),
    ):
        msg = await refused(set_limit(stubs, "bad", **kw), grpc.StatusCode.INVALID_ARGUMENT)
        assert words in msg, msg
    msg = await refused(
        set_limit(stubs, "bad name", key="a", max_running=1), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert msg.startswith("limit.name: must match"), msg
    listed = await stubs.tasks.ListConcurrencyLimits(pb.ListConcurrencyLimitsRequest())
    assert [x.name for x in listed.limits] == ["api"]
    await stubs.tasks.DeleteConcurrencyLimit(pb.DeleteConcurrencyLimitRequest(name="api"))
    msg = await refused(
        stubs.tasks.DeleteConcurrencyLimit(pb.DeleteConcurrencyLimitRequest(name="api")),
        grpc.StatusCode.NOT_FOUND,
    )
    assert "api" in msg
    msg = await refused(
        stubs.tasks.Submit(pb.SubmitRequest(task=spec("t", concurrency_key="a*"))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert msg.startswith("task.concurrency_key: must not contain '*'"), msg


async def _claim_all(stubs: Any, agent: str) -> list[pb.Assignment]:
    return await claim(stubs, agent, n=10)


async def _already_stopped(grace: float | None = None) -> None:
    return None


@manual_clock
async def test_a_rate_limit_holds_across_a_restart(broker):
    """Two starts per 10 s: two start, none more; after a restart the bucket is as it was (not
    full again), and the next start comes when it has refilled by one (a waiting Claim is
    woken then, without any other wake-up). (The `broker` fixture's broker first, on either
    backend; then a second on its database.)"""
    clock = broker.tasks.clock
    stubs = stubs_for(broker.address)
    try:
        await set_limit(stubs, "api", key="api-*", rate=2, per=10.0)
        await submit_many(stubs, 5, "api-x")
        await register(stubs, "w", capacity=10)
        assert len(await _claim_all(stubs, "w")) == 2
        assert await _claim_all(stubs, "w") == []
    finally:
        await stubs.channel.close()
        await stopped(broker)
        broker.stop = _already_stopped  # type: ignore[method-assign]  # (the fixture stops it again)
    clock2 = ManualClock(clock.now_us() + 1_000_000)  # 1 s later: a fifth of a start refilled
    b = await start_server(broker.settings, clock=clock2)
    stubs = stubs_for(b.address)
    try:
        await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="w"))
        assert await _claim_all(stubs, "w") == []
        k = (await keys(stubs))["api-x"]
        assert (k.running, k.waiting, k.limit, k.rate) == (2, 3, "api", 2)
        assert 0.19 < k.tokens < 0.21, k.tokens
        waiting = asyncio.ensure_future(claim(stubs, "w", n=10, wait=30))
        await asyncio.sleep(0.2)
        await clock2.advance(3.0)  # 4 s after the bucket emptied: 0.8 of a start
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await clock2.advance(1.0)  # 5 s: one start
        got = await asyncio.wait_for(waiting, 5)
        assert len(got) == 1
        assert await _claim_all(stubs, "w") == []
    finally:
        await stubs.channel.close()
        await stopped(b)
