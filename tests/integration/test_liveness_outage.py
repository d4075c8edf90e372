"""A storage outage is not silence: heartbeats refused with UNAVAILABLE because storage failed
still count, so after storage recovers the agents that kept heartbeating are online and their
tasks still theirs."""

from __future__ import annotations

import grpc
import pytest

from broker.errors import StorageUnavailable
from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as tpb
from tests.clock_support import later, manual_clock
from tests.conftest import eventually

from .tasks_helpers import claim, get, name, register, submit

LIVENESS_S = 0.3


@pytest.fixture
def settings_overrides():
    return {"heartbeat_interval_s": 0.1, "liveness_timeout_s": LIVENESS_S, "sweeper_period_s": 0.05}


@manual_clock
async def test_heartbeats_refused_by_a_storage_outage_keep_the_agent_online(stubs, broker, monkeypatch):
    await register(stubs, "w")
    await register(stubs, "silent")
    t = await submit(stubs, "long", lease=600)
    (a,) = await claim(stubs, "w")

    async def disk_full(*args, **kwargs):
        raise StorageUnavailable("storage error: OperationalError: database or disk is full")

    monkeypatch.setattr(broker.storage, "heartbeat", disk_full)
    refused = 0
    # The agent keeps heartbeating every interval through an outage of five liveness timeouts, a
    # sweep at every step.
    for _ in range(15):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="w"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        refused += 1
        await later(broker, 0.1)
    assert refused >= 10
    # The sweeper did run meanwhile: the agent that did not heartbeat is offline.
    silent = await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id="silent"))
    assert silent.status == apb.AGENT_STATUS_OFFLINE

    monkeypatch.undo()  # storage recovers
    hb = await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="w"))
    assert hb.agent.status == apb.AGENT_STATUS_AVAILABLE
    got = await get(stubs, t.task_id)
    assert (name(got.status), got.assigned_agent_id, got.attempt) == ("running", "w", a.attempt)
    history = await stubs.tasks.GetHistory(tpb.GetHistoryRequest(task_id=t.task_id))
    assert [h.to_status for h in history.transitions][-1] == tpb.TASK_STATUS_RUNNING


async def test_an_agent_silent_through_an_outage_still_goes_offline(stubs, broker, monkeypatch):
    """Only refused heartbeats count: an agent that sent none is offline as usual."""

    async def disk_full(*args, **kwargs):
        raise StorageUnavailable("storage error: disk full")

    await register(stubs, "quiet")
    monkeypatch.setattr(broker.storage, "heartbeat", disk_full)

    async def offline() -> bool:
        got = await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id="quiet"))
        return got.status == apb.AGENT_STATUS_OFFLINE

    await eventually(offline, timeout=10, what="the quiet agent offline")
