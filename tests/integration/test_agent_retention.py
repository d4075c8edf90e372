"""Agents offline longer than ``--agent-retention-s`` are deregistered by the sweeper (their
records go, as a Deregister would take them); live agents, and offline ones while the retention
is 0, stay."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from broker.pb import agents_pb2 as pb
from tests.conftest import eventually, next_within

LIVENESS = {"heartbeat_interval_s": 0.1, "liveness_timeout_s": 0.3, "sweeper_period_s": 0.05}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(request.param)  # each test names its retention


async def beat_forever(stubs, agent_id: str) -> None:
    while True:
        await stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id=agent_id))
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("settings_overrides", [{**LIVENESS, "agent_retention_s": 1.0}], indirect=True)
async def test_an_agent_offline_past_the_retention_is_deregistered_and_a_live_one_stays(stubs):
    stream = stubs.agents.WatchAgents(pb.WatchAgentsRequest(agent_ids=["silent"]))
    beating = None
    try:
        await asyncio.wait_for(stream.initial_metadata(), 5)
        registered = time.monotonic()
        await stubs.agents.Register(pb.RegisterRequest(agent_id="silent", max_concurrent_tasks=1))
        await stubs.agents.Register(pb.RegisterRequest(agent_id="alive", max_concurrent_tasks=1))
        beating = asyncio.ensure_future(beat_forever(stubs, "alive"))
        assert (await next_within(stream)).type == pb.AGENT_EVENT_TYPE_REGISTERED
        assert (await next_within(stream)).type == pb.AGENT_EVENT_TYPE_OFFLINE
        got = await stubs.agents.GetAgent(pb.GetAgentRequest(agent_id="silent"))
        assert got.status == pb.AGENT_STATUS_OFFLINE  # offline, not yet past the retention

        assert (await next_within(stream, timeout=10)).type == pb.AGENT_EVENT_TYPE_DEREGISTERED
        assert time.monotonic() - registered >= 1.0  # not before its last heartbeat + the retention
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.agents.GetAgent(pb.GetAgentRequest(agent_id="silent"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await stubs.agents.ListAgents(pb.ListAgentsRequest())
        assert [a.agent_id for a in listed.agents] == ["alive"]
        alive = await stubs.agents.GetAgent(pb.GetAgentRequest(agent_id="alive"))
        assert alive.status == pb.AGENT_STATUS_AVAILABLE
    finally:
        stream.cancel()
        if beating is not None:
            beating.cancel()


@pytest.mark.parametrize("settings_overrides", [{**LIVENESS, "agent_retention_s": 0}], indirect=True)
async def test_with_a_retention_of_0_offline_agents_are_kept(broker, stubs):
    await stubs.agents.Register(pb.RegisterRequest(agent_id="silent", max_concurrent_tasks=1))

    async def offline() -> bool:
        got = await stubs.agents.GetAgent(pb.GetAgentRequest(agent_id="silent"))
        return got.status == pb.AGENT_STATUS_OFFLINE

    await eventually(offline, what="the agent offline")
    since, rounds = time.monotonic(), broker.sweeper.rounds

    async def swept_a_while() -> bool:  # 20 sweeps, over a second: enough for a 1 s retention
        return broker.sweeper.rounds >= rounds + 20 and time.monotonic() - since > 1.0

    await eventually(swept_a_while, timeout=10, what="sweeps")
    assert await offline()
