"""What the broker said yes to is still there after a restart (and after SIGKILL)."""

from __future__ import annotations

import grpc
import pytest

from broker.pb import agents_pb2 as pb
from broker.server import start_server
from tests.conftest import make_settings, stubs_for

# Under pytest -n (make test) the SIGKILL tests run one after another on one worker.
pytestmark = pytest.mark.xdist_group("crash")


async def test_agents_survive_a_restart(tmp_path):
    settings = make_settings(tmp_path)
    b = await start_server(settings)
    s = stubs_for(b.address)
    for i in range(20):
        await s.agents.Register(
            pb.RegisterRequest(agent_id=f"a{i}", capabilities=[f"c{i % 3}"], max_concurrent_tasks=i + 1)
        )
    await s.agents.Deregister(pb.DeregisterRequest(agent_id="a0"))
    await s.channel.close()
    await b.stop(0.2)

    b2 = await start_server(settings)
    s2 = stubs_for(b2.address)
    try:
        listed = await s2.agents.ListAgents(pb.ListAgentsRequest())
        assert [a.agent_id for a in listed.agents] == sorted(f"a{i}" for i in range(1, 20))
        a7 = await s2.agents.GetAgent(pb.GetAgentRequest(agent_id="a7"))
        assert (list(a7.capabilities), a7.max_concurrent_tasks) == (["c1"], 8)
        c2 = await s2.agents.ListAgents(pb.ListAgentsRequest(capability="c2"))
        assert len(c2.agents) == 6
    finally:
        await s2.channel.close()
        await b2.stop(0.2)


async def test_registration_survives_sigkill(tmp_path, broker_process):
    p = broker_process(tmp_path / "kill.db", A2A_BROKER_SQLITE_SYNCHRONOUS="FULL")
    p.start()
    channel = grpc.aio.insecure_channel(p.address)
    from broker.pb import agents_pb2_grpc

    stub = agents_pb2_grpc.AgentRegistryStub(channel)
    for i in range(50):
        await stub.Register(pb.RegisterRequest(agent_id=f"k{i}", max_concurrent_tasks=1))
    p.kill()
    await channel.close()

    p2 = broker_process(tmp_path / "kill.db")
    p2.start()
    channel = grpc.aio.insecure_channel(p2.address)
    try:
        stub = agents_pb2_grpc.AgentRegistryStub(channel)
        listed = await stub.ListAgents(pb.ListAgentsRequest(page_size=1000))
        assert len(listed.agents) == 50
    finally:
        await channel.close()


def test_sigterm_shuts_down_gracefully(tmp_path, broker_process):
    p = broker_process(tmp_path / "term.db")
    p.start()
    assert p.terminate(timeout=15) == 0
