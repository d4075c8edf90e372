"""Server reflection lists the services, so grpcurl & co. work without the protos: under
``grpc.reflection.v1alpha`` (grpcio-reflection's) and ``grpc.reflection.v1`` (what newer tools ask
for first), the same messages under another package name."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from broker.reflection import V1_FILE, v1_file_descriptor

SERVICES = {
    "a2a.broker.v1.AgentRegistry",
    "a2a.broker.v1.TaskQueue",
    "a2a.broker.v1.Messaging",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
}


async def test_reflection_v1alpha_lists_services(stubs):
    stub = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)

    async def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        yield reflection_pb2.ServerReflectionRequest(file_containing_symbol="a2a.broker.v1.Messaging")

    responses = [r async for r in stub.ServerReflectionInfo(requests())]
    names = {s.name for s in responses[0].list_services_response.service}
    assert SERVICES <= names
    assert responses[1].file_descriptor_response.file_descriptor_proto


def v1_messages() -> tuple[type, type]:
    """``grpc.reflection.v1``'s request and response classes, as a client built from the v1 proto
    has them (a pool of the client's own, apart from the broker's)."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(v1_file_descriptor().SerializeToString())
    request = pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionRequest")
    response = pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionResponse")
    return message_factory.GetMessageClass(request), message_factory.GetMessageClass(response)


async def test_reflection_v1_lists_and_describes_services(stubs):
    """A client that knows only v1 (grpcurl's first try): the method
    /grpc.reflection.v1.ServerReflection/ServerReflectionInfo with v1 messages lists the services
    and describes the broker's, and v1 itself."""
    request, response = v1_messages()
    call = stubs.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )
    asked = [
        request(list_services=""),
        request(file_containing_symbol="a2a.broker.v1.TaskQueue"),
        request(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
        request(file_by_filename="nothing/here.proto"),
    ]
    answers = [r async for r in call(iter(asked))]
    assert type(answers[0]).DESCRIPTOR.full_name == "grpc.reflection.v1.ServerReflectionResponse"
    assert SERVICES <= {s.name for s in answers[0].list_services_response.service}
    assert answers[0].original_request.HasField("list_services")

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in answers[1].file_descriptor_response.file_descriptor_proto
    ]
    tasks = next(f for f in files if f.name == "a2a/broker/v1/tasks.proto")
    assert "TaskQueue" in [s.name for s in tasks.service]

    (v1,) = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in answers[2].file_descriptor_response.file_descriptor_proto
    ]
    assert (v1.name, v1.package) == (V1_FILE, "grpc.reflection.v1")
    (method,) = v1.service[0].method
    assert (method.input_type, method.output_type) == (
        ".grpc.reflection.v1.ServerReflectionRequest",
        ".grpc.reflection.v1.ServerReflectionResponse",
    )
    assert answers[3].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


@pytest.mark.parametrize("settings_overrides", [{"reflection": False}])
async def test_reflection_off_serves_neither(stubs):
    request, response = v1_messages()
    for method in ("/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"):
        call = stubs.channel.stream_stream(
            method + "ServerReflectionInfo",
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )(iter(()))  # no request to write: a write racing the refusal fails as INTERNAL on the client
        assert await asyncio.wait_for(call.code(), 10) == grpc.StatusCode.UNIMPLEMENTED
