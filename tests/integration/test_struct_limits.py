"""Struct fields (agent metadata, task metadata) are limited in depth and size at validation, so
nothing stored can break a later read (protobuf's recursion limit)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2

from broker.models.common import MAX_JSON_BYTES, MAX_JSON_DEPTH
from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as tpb


def nested(depth: int, via_list: bool = False) -> struct_pb2.Struct:
    """A Struct ``depth`` levels deep (the top object is level 1; a list is a level too)."""
    value: object = {"leaf": 1}
    for i in range(depth - 1):
        value = [value] if via_list and (depth - i) % 2 else {"k": value}  # the top is an object
    s = struct_pb2.Struct()
    s.update(value)  # type: ignore[arg-type]
    return s


def register(metadata: struct_pb2.Struct) -> apb.RegisterRequest:
    return apb.RegisterRequest(agent_id="deep", max_concurrent_tasks=1, metadata=metadata)


def submit(metadata: struct_pb2.Struct) -> tpb.SubmitRequest:
    return tpb.SubmitRequest(task=tpb.TaskSpec(title="deep", metadata=metadata))


async def refused(call, field: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert err.value.details().startswith(field), err.value.details()
    return err.value.details()


@pytest.mark.parametrize("via_list", [False, True], ids=["objects", "lists"])
async def test_agent_metadata_deeper_than_the_limit_is_refused(stubs, via_list):
    details = await refused(stubs.agents.Register(register(nested(MAX_JSON_DEPTH + 1, via_list))), "metadata")
    assert f"at most {MAX_JSON_DEPTH} levels" in details
    assert not (await stubs.agents.ListAgents(apb.ListAgentsRequest())).agents


async def test_agent_metadata_at_the_depth_limit_is_stored_and_readable(stubs):
    await stubs.agents.Register(register(nested(MAX_JSON_DEPTH)))
    listed = await stubs.agents.ListAgents(apb.ListAgentsRequest())
    assert [a.agent_id for a in listed.agents] == ["deep"]
    await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="deep"))
    got = await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id="deep"))
    assert got.metadata == nested(MAX_JSON_DEPTH)


@pytest.mark.parametrize("via_list", [False, True], ids=["objects", "lists"])
async def test_task_metadata_deeper_than_the_limit_is_refused(stubs, via_list):
    await refused(stubs.tasks.Submit(submit(nested(MAX_JSON_DEPTH + 1, via_list))), "task.metadata")
    assert not (await stubs.tasks.List(tpb.ListTasksRequest())).tasks


async def test_task_metadata_at_the_depth_limit_is_stored_and_readable(stubs):
    task = (await stubs.tasks.Submit(submit(nested(MAX_JSON_DEPTH)))).task
    listed = await stubs.tasks.List(tpb.ListTasksRequest())
    assert [t.task_id for t in listed.tasks] == [task.task_id]
    assert listed.tasks[0].spec.metadata == nested(MAX_JSON_DEPTH)


async def test_metadata_larger_than_the_size_limit_is_refused(stubs):
    big = struct_pb2.Struct()
    big.update({"blob": "x" * MAX_JSON_BYTES})
    details = await refused(stubs.tasks.Submit(submit(big)), "task.metadata")
    assert f"at most {MAX_JSON_BYTES} bytes" in details
