import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from broker.pb import agents_pb2 as pb
from broker.pb import messaging_pb2


async def test_health_serving(broker, stubs):
    resp = await health_pb2_grpc.HealthStub(stubs.channel).Check(health_pb2.HealthCheckRequest())
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_register_and_get(stubs):
    r = await stubs.agents.Register(pb.RegisterRequest(agent_id="a1", max_concurrent_tasks=1))
    assert r.created
    got = await stubs.agents.GetAgent(pb.GetAgentRequest(agent_id="a1"))
    assert got.agent_id == "a1"


async def test_unimplemented_placeholder(stubs):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.messaging.GetMessage(messaging_pb2.GetMessageRequest(message_id="x"))
    assert err.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND)
