"""Server reflection lists the three services, so grpcurl & co. work without the protos."""

from __future__ import annotations

from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


async def test_reflection_lists_services(stubs):
    stub = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)

    async def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(file_containing_symbol="a2a.broker.v1.Messaging")

    responses = [r async for r in stub.ServerReflectionInfo(requests())]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {
        "a2a.broker.v1.AgentRegistry",
        "a2a.broker.v1.TaskQueue",
        "a2a.broker.v1.Messaging",
        "grpc.health.v1.Health",
    } <= names
    assert responses[1].file_descriptor_response.file_descriptor_proto
