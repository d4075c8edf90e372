"""An agent that stops heartbeating is marked offline, and comes back on its next heartbeat."""

from __future__ import annotations

import asyncio

import pytest

from broker.pb import agents_pb2 as pb
from tests.clock_support import later, manual_clock
from tests.conftest import eventually, next_within


@pytest.fixture
def settings_overrides():
    return {"heartbeat_interval_s": 0.1, "liveness_timeout_s": 0.4, "sweeper_period_s": 0.05}


async def status_of(stubs, agent_id):
    return (await stubs.agents.GetAgent(pb.GetAgentRequest(agent_id=agent_id))).status


async def test_silent_agent_goes_offline_and_comes_back(stubs):
    """On the real clock, end to end: the liveness timeout and the sweeper."""
    stream = stubs.agents.WatchAgents(pb.WatchAgentsRequest(agent_ids=["a1"]))
    try:
        await asyncio.wait_for(stream.initial_metadata(), 5)
        await stubs.agents.Register(pb.RegisterRequest(agent_id="a1", max_concurrent_tasks=1))
        assert (await next_within(stream)).type == pb.AGENT_EVENT_TYPE_REGISTERED

        # No heartbeats: offline, seen both by GetAgent and on the watch stream.
        ev = await next_within(stream, timeout=5)
        assert (ev.type, ev.agent.status) == (pb.AGENT_EVENT_TYPE_OFFLINE, pb.AGENT_STATUS_OFFLINE)
        assert await status_of(stubs, "a1") == pb.AGENT_STATUS_OFFLINE

        hb = await stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id="a1"))
        assert hb.agent.status == pb.AGENT_STATUS_AVAILABLE
        ev = await next_within(stream)
        assert (ev.type, ev.agent.status) == (pb.AGENT_EVENT_TYPE_ONLINE, pb.AGENT_STATUS_AVAILABLE)
        assert await status_of(stubs, "a1") == pb.AGENT_STATUS_AVAILABLE
    finally:
        stream.cancel()


@manual_clock
async def test_heartbeating_agent_stays_online(stubs, broker):
    await stubs.agents.Register(pb.RegisterRequest(agent_id="steady", max_concurrent_tasks=1))
    await stubs.agents.Register(pb.RegisterRequest(agent_id="silent", max_concurrent_tasks=1))
    # "steady" heartbeats every interval (0.1 s) through six liveness timeouts, a sweep at every
    # step; "silent" sends none.
    for _ in range(24):
        await stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id="steady"))
        await later(broker, 0.1)
    assert await status_of(stubs, "silent") == pb.AGENT_STATUS_OFFLINE
    assert await status_of(stubs, "steady") == pb.AGENT_STATUS_AVAILABLE


async def test_reregister_brings_offline_agent_back(stubs):
    await stubs.agents.Register(pb.RegisterRequest(agent_id="a1", max_concurrent_tasks=1))

    async def offline():
        return await status_of(stubs, "a1") == pb.AGENT_STATUS_OFFLINE

    await eventually(offline, timeout=5, what="agent offline")
    r = await stubs.agents.Register(pb.RegisterRequest(agent_id="a1", max_concurrent_tasks=1))
    assert not r.created and r.agent.status == pb.AGENT_STATUS_AVAILABLE
