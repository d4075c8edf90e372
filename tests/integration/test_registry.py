"""AgentRegistry against a real broker: register, heartbeat, list, watch, deregister."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from broker.pb import agents_pb2 as pb
from tests.conftest import next_within


async def register(stubs, agent_id, caps=(), capacity=1, **kw):
    return await stubs.agents.Register(
        pb.RegisterRequest(agent_id=agent_id, capabilities=list(caps), max_concurrent_tasks=capacity, **kw)
    )


async def test_health_and_all_services_serving(stubs):
    health = health_pb2_grpc.HealthStub(stubs.channel)
    for service in ("", "a2a.broker.v1.AgentRegistry", "a2a.broker.v1.TaskQueue", "a2a.broker.v1.Messaging"):
        resp = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_register_returns_agent_and_timing(stubs, broker):
    r = await register(stubs, "a1", ["python", "gpu", "python"], 4, name="Alpha", labels={"zone": "eu"})
    assert r.created
    assert r.agent.agent_id == "a1" and r.agent.name == "Alpha"
    assert list(r.agent.capabilities) == ["gpu", "python"]  # folded and sorted
    assert r.agent.max_concurrent_tasks == 4 and r.agent.current_task_count == 0
    assert r.agent.status == pb.AGENT_STATUS_AVAILABLE
    assert r.agent.labels["zone"] == "eu"
    assert r.heartbeat_interval.ToTimedelta().total_seconds() == broker.settings.heartbeat_interval_s
    assert r.liveness_timeout.ToTimedelta().total_seconds() == broker.settings.liveness_timeout


async def test_register_without_id_generates_one(stubs):
    r = await stubs.agents.Register(pb.RegisterRequest(max_concurrent_tasks=1))
    assert r.created and r.agent.agent_id.startswith("agent-")
    got = await stubs.agents.GetAgent(pb.GetAgentRequest(agent_id=r.agent.agent_id))
    assert got.agent_id == r.agent.agent_id


async def test_reregister_updates_in_place(stubs):
    await register(stubs, "a1", ["x"], 1, metadata={"v": 1})
    r = await register(stubs, "a1", ["y", "z"], 3, metadata={"v": 2}, agent_type="orchestrator")
    assert not r.created
    got = await stubs.agents.GetAgent(pb.GetAgentRequest(agent_id="a1"))
    assert list(got.capabilities) == ["y", "z"]
    assert got.max_concurrent_tasks == 3 and got.agent_type == "orchestrator"
    assert got.metadata["v"] == 2
    listed = await stubs.agents.ListAgents(pb.ListAgentsRequest())
    assert [a.agent_id for a in listed.agents] == ["a1"]
    # The old capability no longer matches.
    assert not (await stubs.agents.ListAgents(pb.ListAgentsRequest(capability="x"))).agents


async def test_heartbeat_updates_status_and_time(stubs):
    first = (await register(stubs, "a1")).agent
    r = await stubs.agents.Heartbeat(
        pb.HeartbeatRequest(agent_id="a1", status=pb.AGENT_STATUS_BUSY, free_capacity=0)
    )
    assert r.agent.status == pb.AGENT_STATUS_BUSY
    assert r.agent.reported_free_capacity == 0
    assert r.agent.last_heartbeat_at.ToMicroseconds() >= first.last_heartbeat_at.ToMicroseconds()
    # UNSPECIFIED keeps the status.
    r = await stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id="a1"))
    assert r.agent.status == pb.AGENT_STATUS_BUSY
    assert not r.agent.HasField("reported_free_capacity")


async def test_heartbeat_unknown_agent_is_not_found(stubs):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id="ghost"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "ghost" in err.value.details()


async def test_list_filters(stubs):
    await register(stubs, "w1", ["python"], agent_type="worker")
    await register(stubs, "w2", ["python", "gpu"], agent_type="worker")
    await register(stubs, "o1", [], agent_type="orchestrator")
    await stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id="w2", status=pb.AGENT_STATUS_MAINTENANCE))

    async def ids(**kw):
        return [a.agent_id for a in (await stubs.agents.ListAgents(pb.ListAgentsRequest(**kw))).agents]

    assert await ids() == ["o1", "w1", "w2"]
    assert await ids(capability="python") == ["w1", "w2"]
    assert await ids(capability="gpu") == ["w2"]
    assert await ids(agent_type="orchestrator") == ["o1"]
    assert await ids(status=pb.AGENT_STATUS_MAINTENANCE) == ["w2"]
    assert await ids(status=pb.AGENT_STATUS_AVAILABLE, capability="python") == ["w1"]
    assert await ids(capability="nope") == []


async def test_list_pagination_visits_every_agent_once(stubs):
    for i in range(23):
        await register(stubs, f"agent-{i:02d}")
    seen, token, pages = [], "", 0
    while True:
        page = await stubs.agents.ListAgents(pb.ListAgentsRequest(page_size=10, page_token=token))
        pages += 1
        seen += [a.agent_id for a in page.agents]
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == [f"agent-{i:02d}" for i in range(23)]


async def test_deregister(stubs):
    await register(stubs, "a1")
    r = await stubs.agents.Deregister(pb.DeregisterRequest(agent_id="a1"))
    assert r.requeued_tasks == 0
    for call in (
        stubs.agents.GetAgent(pb.GetAgentRequest(agent_id="a1")),
        stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id="a1")),
        stubs.agents.Deregister(pb.DeregisterRequest(agent_id="a1")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert not (await stubs.agents.ListAgents(pb.ListAgentsRequest())).agents
    # Registering again brings it back as a new registration.
    assert (await register(stubs, "a1")).created


async def test_watch_events(stubs):
    await register(stubs, "early")
    stream = stubs.agents.WatchAgents(pb.WatchAgentsRequest(include_snapshot=True))
    try:
        snap = await next_within(stream)
        assert snap.type == pb.AGENT_EVENT_TYPE_REGISTERED and snap.agent.agent_id == "early"
        await register(stubs, "a1")
        ev = await next_within(stream)
        assert (ev.type, ev.agent.agent_id) == (pb.AGENT_EVENT_TYPE_REGISTERED, "a1")
        await register(stubs, "a1", ["new"])
        ev = await next_within(stream)
        assert (ev.type, list(ev.agent.capabilities)) == (pb.AGENT_EVENT_TYPE_UPDATED, ["new"])
        await stubs.agents.Deregister(pb.DeregisterRequest(agent_id="a1"))
        ev = await next_within(stream)
        assert (ev.type, ev.agent.agent_id) == (pb.AGENT_EVENT_TYPE_DEREGISTERED, "a1")
    finally:
        stream.cancel()


async def test_watch_filters_by_agent_id(stubs):
    stream = stubs.agents.WatchAgents(pb.WatchAgentsRequest(agent_ids=["b"]))
    try:
        # Initial metadata arrives once the watch is live.
        await asyncio.wait_for(stream.initial_metadata(), 5)
        await register(stubs, "a")
        await register(stubs, "b")
        ev = await next_within(stream)
        assert ev.agent.agent_id == "b"
    finally:
        stream.cancel()


async def test_shutdown_ends_watch_streams_at_once(tmp_path):
    # A graceful stop ends WatchAgents streams with UNAVAILABLE (watch again elsewhere) at once,
    # rather than holding the shutdown for the whole grace period and then cancelling them.
    from broker.server import start_server
    from tests.conftest import make_settings, stubs_for

    b = await start_server(make_settings(tmp_path))
    stubs = stubs_for(b.address)
    try:
        call = stubs.agents.WatchAgents(pb.WatchAgentsRequest())
        await asyncio.wait_for(call.initial_metadata(), 5)
        stop = asyncio.ensure_future(b.stop(15.0))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await next_within(call, 5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in err.value.details(), err.value.details()
        await asyncio.wait_for(asyncio.shield(stop), 5)  # not the 15 s grace
    finally:
        await stop  # bounded by the grace
        await stubs.channel.close()
