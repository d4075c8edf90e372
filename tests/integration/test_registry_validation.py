"""Bad input gets INVALID_ARGUMENT naming the field and the rule, and writes nothing."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2

from broker.pb import agents_pb2 as pb


def big_struct(n_bytes):
    s = struct_pb2.Struct()
    s.update({"blob": "x" * n_bytes})
    return s


BAD_REGISTERS = [
    ("agent_id", dict(agent_id="x" * 129, max_concurrent_tasks=1)),
    ("agent_id", dict(agent_id="has space", max_concurrent_tasks=1)),
    ("max_concurrent_tasks", dict(agent_id="a", max_concurrent_tasks=0)),
    ("max_concurrent_tasks", dict(agent_id="a", max_concurrent_tasks=-3)),
    ("max_concurrent_tasks", dict(agent_id="a", max_concurrent_tasks=10001)),
    ("capabilities", dict(agent_id="a", max_concurrent_tasks=1, capabilities=[f"c{i}" for i in range(3000)])),
    ("capabilities", dict(agent_id="a", max_concurrent_tasks=1, capabilities=[""])),
    ("capabilities", dict(agent_id="a", max_concurrent_tasks=1, capabilities=["c" * 129])),
    ("metadata", dict(agent_id="a", max_concurrent_tasks=1, metadata=big_struct(70 * 1024))),
    ("labels", dict(agent_id="a", max_concurrent_tasks=1, labels={f"k{i}": "v" for i in range(65)})),
    ("name", dict(agent_id="a", max_concurrent_tasks=1, name="n" * 257)),
    ("agent_type", dict(agent_id="a", max_concurrent_tasks=1, agent_type="t" * 65)),
]


async def assert_invalid(call, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert err.value.details().startswith(field), err.value.details()
    return err.value.details()


async def assert_no_agents(stubs):
    assert not (await stubs.agents.ListAgents(pb.ListAgentsRequest())).agents


@pytest.mark.parametrize(
    ("field", "kwargs"), BAD_REGISTERS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_REGISTERS)]
)
async def test_bad_register_is_refused_and_stores_nothing(stubs, field, kwargs):
    await assert_invalid(stubs.agents.Register(pb.RegisterRequest(**kwargs)), field)
    await assert_no_agents(stubs)


async def test_messages_name_the_rule(stubs):
    details = await assert_invalid(
        stubs.agents.Register(pb.RegisterRequest(agent_id="a", max_concurrent_tasks=0)),
        "max_concurrent_tasks",
    )
    assert details == "max_concurrent_tasks: must be at least 1"


async def test_empty_ids_on_lookups(stubs):
    await assert_invalid(stubs.agents.GetAgent(pb.GetAgentRequest(agent_id="")), "agent_id")
    await assert_invalid(stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id="")), "agent_id")
    await assert_invalid(stubs.agents.Deregister(pb.DeregisterRequest(agent_id="")), "agent_id")


async def test_unknown_enum_values(stubs):
    await stubs.agents.Register(pb.RegisterRequest(agent_id="a", max_concurrent_tasks=1))
    before = await stubs.agents.GetAgent(pb.GetAgentRequest(agent_id="a"))
    await assert_invalid(stubs.agents.ListAgents(pb.ListAgentsRequest(status=42)), "status")
    await assert_invalid(stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id="a", status=42)), "status")
    await assert_invalid(
        stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id="a", status=pb.AGENT_STATUS_OFFLINE)), "status"
    )
    after = await stubs.agents.GetAgent(pb.GetAgentRequest(agent_id="a"))
    assert after == before  # the refused heartbeats changed nothing


async def test_free_capacity_above_capacity(stubs):
    await stubs.agents.Register(pb.RegisterRequest(agent_id="a", max_concurrent_tasks=2))
    await assert_invalid(
        stubs.agents.Heartbeat(pb.HeartbeatRequest(agent_id="a", free_capacity=3)), "free_capacity"
    )


async def test_bad_page_token_and_size(stubs):
    await assert_invalid(stubs.agents.ListAgents(pb.ListAgentsRequest(page_token="garbage!")), "page_token")
    await assert_invalid(stubs.agents.ListAgents(pb.ListAgentsRequest(page_size=5000)), "page_size")


@pytest.mark.parametrize("part", [[1], 10**30, None])
async def test_well_encoded_but_foreign_page_token(stubs, part):
    from broker.models.common import encode_page_token

    token = encode_page_token(part)
    await assert_invalid(stubs.agents.ListAgents(pb.ListAgentsRequest(page_token=token)), "page_token")


async def test_request_over_size_limit_is_refused(stubs, broker):
    too_big = broker.settings.max_request_bytes + 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.agents.Register(
            pb.RegisterRequest(agent_id="a", max_concurrent_tasks=1, endpoint="e" * too_big)
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await assert_no_agents(stubs)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
async def test_non_finite_metadata_number(stubs, value):
    # JSON has no NaN or Infinity: refused naming the field, not an internal error.
    meta = struct_pb2.Struct()
    meta.update({"nested": {"x": value}})
    req = pb.RegisterRequest(agent_id="a", max_concurrent_tasks=1, metadata=meta)
    await assert_invalid(stubs.agents.Register(req), "metadata")
    await assert_no_agents(stubs)
