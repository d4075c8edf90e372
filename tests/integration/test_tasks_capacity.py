"""Capacity bookkeeping cannot drift: hundreds of random operations, several at a time, then every
agent's current_task_count equals the number of tasks it holds running (checked mid-way too)."""

from __future__ import annotations

import asyncio
import os
import random

import grpc

from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as pb
from tests.conftest import eventually

from .tasks_helpers import all_tasks, duration, spec

AGENTS = ["a0", "a1", "a2", "a3"]
CAPS = ["x", "y"]
SEED = int(os.environ.get("TASKS_RANDOM_SEED", "20261125"))


async def _held(stubs, agent: str) -> set[tuple[str, int]]:
    running = await all_tasks(stubs, agent_id=agent, status=pb.TASK_STATUS_RUNNING)
    return {(t.task_id, t.attempt) for t in running}


async def snapshot(stubs) -> list[tuple[str, int, int, int]]:
    """(agent, count, running tasks held, capacity) for every agent, read through the API.

    An agent's count is read between two reads of the leases it holds; the sweeper may end a lapsed
    lease meanwhile, so the three are taken again until both reads of the leases agree (the count
    moves in the same transaction as every lease and release)."""
    out = []
    agents = (await stubs.agents.ListAgents(apb.ListAgentsRequest(page_size=1000))).agents
    for a in sorted(agents, key=lambda a: a.agent_id):
        for _ in range(100):
            before = await _held(stubs, a.agent_id)
            agent = await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id=a.agent_id))
            if await _held(stubs, a.agent_id) == before:
                break
        else:
            raise AssertionError(f"{a.agent_id}: leases kept changing")
        out.append((a.agent_id, agent.current_task_count, len(before), agent.max_concurrent_tasks))
    return out


async def consistent(stubs) -> None:
    for agent, count, held, cap in await snapshot(stubs):
        assert count == held, f"{agent}: current_task_count {count} but holds {held} running tasks"
        assert held <= cap, f"{agent}: holds {held} tasks with capacity {cap}"


class World:
    def __init__(self, stubs, rng: random.Random) -> None:
        self.stubs = stubs
        self.rng = rng
        self.tasks: list[str] = []
        self.leases: list[pb.Assignment] = []  # some of them stale by now, on purpose
        self.holder: dict[tuple[str, int], str] = {}
        self.caps: dict[str, list[str]] = {}
        self.ops = 0

    async def register(self, agent: str) -> None:
        caps = self.rng.sample(CAPS, self.rng.randint(0, 2))
        self.caps[agent] = caps
        await self.stubs.agents.Register(
            apb.RegisterRequest(
                agent_id=agent, capabilities=caps, max_concurrent_tasks=self.rng.randint(1, 4)
            )
        )

    async def op(self) -> None:
        r, s = self.rng, self.stubs.tasks
        kind = r.choices(
            [
                "submit",
                "claim",
                "complete",
                "fail",
                "extend",
                "cancel",
                "heartbeat",
                "reregister",
                "deregister",
            ],
            weights=[30, 25, 20, 10, 5, 6, 3, 1, 1],
        )[0]
        agent = r.choice(AGENTS)
        self.ops += 1
        try:
            if kind == "submit":
                deps = [
                    (t, "soft") if r.random() < 0.3 else t
                    for t in r.sample(self.tasks, min(len(self.tasks), r.randint(0, 2)))
                ]
                parent = r.choice(self.tasks) if self.tasks and r.random() < 0.3 else ""
                t = await s.Submit(
                    pb.SubmitRequest(
                        task=spec(
                            "t",
                            deps=deps,
                            parent_id=parent,
                            required_capabilities=r.sample(CAPS, r.choice([0, 0, 1, 2])),
                            priority=r.randint(0, 10),
                            retries=r.randint(0, 2),
                            backoff=r.choice([0.0, 0.05]),
                            lease=r.choice([1.0, 60.0, 60.0]),
                        )
                    )
                )
                self.tasks.append(t.task.task_id)
            elif kind == "claim":
                got = await s.Claim(
                    pb.ClaimRequest(
                        agent_id=agent, max_tasks=r.randint(1, 3), wait=duration(r.choice([0, 0.05]))
                    )
                )
                for a in got.assignments:
                    self.leases.append(a)
                    self.holder[(a.task.task_id, a.attempt)] = agent
            elif kind in ("complete", "fail", "extend") and self.leases:
                a = r.choice(self.leases)
                who = self.holder[(a.task.task_id, a.attempt)] if r.random() < 0.9 else agent
                ref = {"task_id": a.task.task_id, "agent_id": who, "attempt": a.attempt}
                if kind == "complete":
                    await s.Complete(pb.CompleteRequest(**ref))
                elif kind == "fail":
                    await s.Fail(pb.FailRequest(**ref, error="x", non_retryable=r.random() < 0.3))
                else:
                    await s.ExtendLease(pb.ExtendLeaseRequest(**ref, progress=r.randint(0, 100)))
            elif kind == "cancel" and self.tasks:
                await s.Cancel(pb.CancelRequest(task_id=r.choice(self.tasks), cascade=r.random() < 0.5))
            elif kind == "heartbeat":
                req = apb.HeartbeatRequest(
                    agent_id=agent,
                    status=r.choice([apb.AGENT_STATUS_AVAILABLE, apb.AGENT_STATUS_MAINTENANCE, 0]),
                )
                if r.random() < 0.5:
                    req.free_capacity = r.randint(0, 1)
                await self.stubs.agents.Heartbeat(req)
            elif kind == "reregister":
                await self.register(agent)
            elif kind == "deregister":
                await self.stubs.agents.Deregister(apb.DeregisterRequest(agent_id=agent))
                await self.register(agent)
        except grpc.aio.AioRpcError as err:
            # Refusals are part of the game (stale leases, finished tasks, lowered capacity,
            # agents that just left), but never anything else.
            assert err.code() in (
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.NOT_FOUND,
            ), (kind, err.code(), err.details())


async def test_random_operations_keep_every_capacity_count_exact(stubs):
    rng = random.Random(SEED)
    world = World(stubs, rng)
    for a in AGENTS:
        await world.register(a)
    for round_ in range(100):
        await asyncio.gather(*(world.op() for _ in range(rng.randint(1, 8))))
        if round_ % 10 == 9:
            await consistent(stubs)
    await consistent(stubs)

    async def short_leases_running() -> int:
        running = await all_tasks(stubs, status=pb.TASK_STATUS_RUNNING)
        return sum(1 for t in running if t.spec.lease_timeout == duration(1.0))

    async def expired() -> bool:
        return await short_leases_running() == 0

    # Make sure at least one lease lapses, whatever the random run left running.
    await stubs.agents.Register(
        apb.RegisterRequest(agent_id="ax", capabilities=["zz"], max_concurrent_tasks=1)
    )
    mine = await stubs.tasks.Submit(
        pb.SubmitRequest(task=spec("expiring", required_capabilities=["zz"], lease=1.0))
    )
    for _ in range(500):  # ax may take ready tasks that need nothing first: finish those
        (got,) = (await stubs.tasks.Claim(pb.ClaimRequest(agent_id="ax"))).assignments
        if got.task.task_id == mine.task.task_id:
            break
        await stubs.tasks.Complete(
            pb.CompleteRequest(task_id=got.task.task_id, agent_id="ax", attempt=got.attempt)
        )
    assert await short_leases_running() > 0
    await eventually(expired, timeout=10, what="the 1 s leases to lapse")
    await consistent(stubs)
    # The same through the API, once nothing is in flight.
    for a in [*AGENTS, "ax"]:
        agent = await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id=a))
        running = await all_tasks(stubs, agent_id=a, status=pb.TASK_STATUS_RUNNING)
        assert agent.current_task_count == len(running) <= agent.max_concurrent_tasks
    statuses = {t.status for t in await all_tasks(stubs)}
    assert world.ops >= 300 and len(world.tasks) > 50 and len(statuses) >= 4, statuses
