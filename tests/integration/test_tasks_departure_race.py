"""Two departures of one agent whose commits land before either's listeners run (the
sweeper marks it offline while it deregisters): what the first requeued is still announced."""

from __future__ import annotations

import asyncio

from broker.clock import now_us
from broker.core.wakeups import agent_key
from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as pb

from ..conftest import eventually
from .tasks_helpers import claim, duration, register, status, submit


async def test_requeue_of_an_offline_then_deregistered_agent_wakes_a_waiting_claim(stubs, broker):
    await register(stubs, "gone", capacity=1)
    t = await submit(stubs, "t")
    assert len(await claim(stubs, "gone")) == 1
    gone_at = (await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id="gone"))).last_heartbeat_at
    await register(stubs, "other", capacity=1)

    # "other" long-polls for work; wait until its first look found nothing and it sleeps.
    dispatch = broker.tasks.dispatch
    before = dispatch.lease_attempts
    waiting = asyncio.ensure_future(stubs.tasks.Claim(pb.ClaimRequest(agent_id="other", wait=duration(30))))
    try:

        async def asleep() -> bool:
            return dispatch.lease_attempts > before and dispatch.signals.watching(agent_key("other"))

        await eventually(asleep, what="the Claim to wait")

        # The sweeper's job commits (agent offline, task requeued) ...
        offline = await broker.storage.mark_offline(
            gone_at.seconds * 1_000_000 + gone_at.nanos // 1000 + 1, now_us()
        )
        assert [g.agent.agent_id for g in offline] == ["gone"]
        assert await status(stubs, t.task_id) == "ready"
        # ... then a Deregister commits and tells its listeners, then the sweeper tells its own.
        await broker.registry.deregister("gone")
        for g in offline:
            await broker.registry._tell_gone(g)

        resp = await asyncio.wait_for(waiting, 5)  # woken by the requeue, not the 30 s timeout
        assert [a.task.task_id for a in resp.assignments] == [t.task_id]
    finally:
        waiting.cancel()
