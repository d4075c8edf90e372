"""Bytes that are not a valid protobuf request get INVALID_ARGUMENT, not UNKNOWN, and the log
gets one short WARNING line (rate-limited), never a traceback per request."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest

# Field 1, length-delimited, with a length varint that never ends: no parser accepts it.
GARBAGE = b"\x0a\xff\xff\xff\xff\xff"


def raw(stubs, kind: str, path: str):
    # No serializers: the bytes go on the wire as they are.
    return getattr(stubs.channel, kind)(path, request_serializer=None, response_deserializer=None)


UNARY = [
    "/a2a.broker.v1.Messaging/Send",
    "/a2a.broker.v1.AgentRegistry/Register",
    "/a2a.broker.v1.TaskQueue/Submit",
]
STREAMING = [
    "/a2a.broker.v1.Messaging/Subscribe",
    "/a2a.broker.v1.TaskQueue/Listen",
    "/a2a.broker.v1.AgentRegistry/WatchAgents",
]


def assert_no_traceback(caplog) -> None:
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("path", UNARY)
async def test_malformed_bytes_to_a_unary_method_are_invalid_argument(stubs, caplog, path):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(raw(stubs, "unary_unary", path)(GARBAGE), 5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "request" in err.value.details()
    assert_no_traceback(caplog)


@pytest.mark.parametrize("path", STREAMING)
async def test_malformed_bytes_to_a_streaming_method_are_invalid_argument(stubs, caplog, path):
    caplog.set_level(logging.DEBUG)
    call = raw(stubs, "unary_stream", path)(GARBAGE)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(call.read(), 5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert_no_traceback(caplog)


async def test_a_burst_of_malformed_requests_logs_one_warning(stubs, caplog):
    caplog.set_level(logging.DEBUG)
    send = raw(stubs, "unary_unary", UNARY[0])
    for _ in range(30):
        with pytest.raises(grpc.aio.AioRpcError):
            await asyncio.wait_for(send(GARBAGE), 5)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "malformed" in warnings[0].getMessage()
    assert_no_traceback(caplog)


async def test_a_valid_request_still_works_beside_the_check(stubs):
    from broker.pb import agents_pb2 as pb

    resp = await stubs.agents.Register(pb.RegisterRequest(agent_id="fine", max_concurrent_tasks=1))
    assert resp.agent.agent_id == "fine"


async def test_malformed_bytes_on_a_request_stream_are_invalid_argument(stubs, caplog):
    caplog.set_level(logging.DEBUG)
    call = stubs.channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=None,
        response_deserializer=None,
    )(iter([GARBAGE]))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(call.read(), 5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert_no_traceback(caplog)
