"""A NUL byte in any string field is refused at validation (INVALID_ARGUMENT naming the field),
in all three services, before anything reaches storage (SQLite's length() stops at NUL)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2

from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as mpb
from broker.pb import tasks_pb2 as tpb

NUL = "bad\x00value"


def reg(**kw):
    return apb.RegisterRequest(**{"agent_id": "nul-agent", "max_concurrent_tasks": 1, **kw})


def send(**kw):
    kw.setdefault("target", mpb.Target(agent_id="bob"))
    return mpb.SendRequest(**{"sender_id": "alice", **kw})


def spec(**kw):
    return tpb.TaskSpec(**{"title": "ok", **kw})


def meta(value):
    s = struct_pb2.Struct()
    s.update(value)
    return s


# (rpc, request, the field the message must name)
CASES = [
    # AgentRegistry
    ("agents.Register", reg(name=NUL), "name"),
    ("agents.Register", reg(agent_type=NUL), "agent_type"),
    ("agents.Register", reg(capabilities=["ok", NUL]), "capabilities"),
    ("agents.Register", reg(endpoint=NUL), "endpoint"),
    ("agents.Register", reg(labels={NUL: "v"}), "labels"),
    ("agents.Register", reg(labels={"k": NUL}), "labels"),
    ("agents.Register", reg(metadata=meta({"k": NUL})), "metadata"),
    ("agents.Register", reg(metadata=meta({NUL: 1})), "metadata"),
    ("agents.Register", reg(agent_id=NUL), "agent_id"),
    ("agents.ListAgents", apb.ListAgentsRequest(agent_type=NUL), "agent_type"),
    ("agents.ListAgents", apb.ListAgentsRequest(capability=NUL), "capability"),
    # Messaging
    ("messaging.Send", send(correlation_id="\x00"), "correlation_id"),
    ("messaging.Send", send(conversation_id=NUL), "conversation_id"),
    ("messaging.Send", send(idempotency_key=NUL), "idempotency_key"),
    ("messaging.Send", send(message_type=NUL), "message_type"),
    ("messaging.Send", send(content_type=NUL), "content_type"),
    ("messaging.Send", send(headers={NUL: "v"}), "headers"),
    ("messaging.Send", send(headers={"k": NUL}), "headers"),
    ("messaging.Send", send(sender_id=NUL), "sender_id"),
    ("messaging.Send", send(target=mpb.Target(agent_id=NUL)), "target.agent_id"),
    (
        "messaging.Send",
        send(target=mpb.Target(anycast=mpb.Anycast(capability=NUL))),
        "target.anycast.capability",
    ),
    (
        "messaging.Send",
        send(target=mpb.Target(broadcast=mpb.Broadcast(capability=NUL))),
        "target.broadcast.capability",
    ),
    (
        "messaging.SendBatch",
        mpb.SendBatchRequest(messages=[send(), send(correlation_id=NUL)]),
        "messages[1].correlation_id",
    ),
    ("messaging.Nack", mpb.NackRequest(agent_id="bob", message_ids=["m1"], reason=NUL), "reason"),
    ("messaging.ListMessages", mpb.ListMessagesRequest(conversation_id=NUL), "conversation_id"),
    ("messaging.ListMessages", mpb.ListMessagesRequest(correlation_id=NUL), "correlation_id"),
    # TaskQueue
    ("tasks.Submit", tpb.SubmitRequest(task=spec(title=NUL)), "task.title"),
    ("tasks.Submit", tpb.SubmitRequest(task=spec(task_type=NUL)), "task.task_type"),
    ("tasks.Submit", tpb.SubmitRequest(task=spec(content_type=NUL)), "task.content_type"),
    ("tasks.Submit", tpb.SubmitRequest(task=spec(required_capabilities=[NUL])), "task.required_capabilities"),
    ("tasks.Submit", tpb.SubmitRequest(task=spec(tags=["a", NUL])), "task.tags"),
    ("tasks.Submit", tpb.SubmitRequest(task=spec(idempotency_key=NUL)), "task.idempotency_key"),
    ("tasks.Submit", tpb.SubmitRequest(task=spec(submitted_by=NUL)), "task.submitted_by"),
    ("tasks.Submit", tpb.SubmitRequest(task=spec(metadata=meta({"k": [NUL]}))), "task.metadata"),
    (
        "tasks.SubmitGraph",
        tpb.SubmitGraphRequest(nodes=[tpb.GraphNode(key=NUL, task=spec())]),
        "nodes[0].key",
    ),
    (
        "tasks.SubmitGraph",
        tpb.SubmitGraphRequest(nodes=[tpb.GraphNode(key="a", task=spec(title=NUL))]),
        "nodes[0].task.title",
    ),
    (
        "tasks.ExtendLease",
        tpb.ExtendLeaseRequest(task_id="t1", agent_id="a", attempt=1, status_note=NUL),
        "status_note",
    ),
    (
        "tasks.Complete",
        tpb.CompleteRequest(task_id="t1", agent_id="a", attempt=1, result_content_type=NUL),
        "result_content_type",
    ),
    ("tasks.Fail", tpb.FailRequest(task_id="t1", agent_id="a", attempt=1, error=NUL), "error"),
    ("tasks.Cancel", tpb.CancelRequest(task_id="t1", reason=NUL), "reason"),
    ("tasks.Cancel", tpb.CancelRequest(task_id="t1", actor=NUL), "actor"),
    ("tasks.List", tpb.ListTasksRequest(capability=NUL), "capability"),
    ("tasks.List", tpb.ListTasksRequest(tag=NUL), "tag"),
]


@pytest.fixture
async def ready(stubs):
    for agent_id in ("alice", "bob"):
        await stubs.agents.Register(apb.RegisterRequest(agent_id=agent_id, max_concurrent_tasks=1))
    return stubs


@pytest.mark.parametrize(
    ("rpc", "request_", "field"), CASES, ids=[f"{rpc}-{field}-{i}" for i, (rpc, _, field) in enumerate(CASES)]
)
async def test_a_nul_byte_in_a_string_field_is_refused_naming_the_field(ready, rpc, request_, field):
    service, method = rpc.split(".")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(getattr(ready, service), method)(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    details = err.value.details()
    assert details.startswith(field), details
    if field not in ("agent_id", "sender_id", "target.agent_id"):  # ids name their own pattern
        assert "must not contain NUL" in details, details
    # Nothing was stored.
    assert len((await ready.messaging.ListMessages(mpb.ListMessagesRequest())).messages) == 0
    assert len((await ready.tasks.List(tpb.ListTasksRequest())).tasks) == 0
    assert len((await ready.agents.ListAgents(apb.ListAgentsRequest())).agents) == 2


@pytest.mark.parametrize("rpc", ["agents.GetAgent", "messaging.Ack"])
async def test_an_id_with_a_trailing_newline_is_refused(ready, rpc):
    service, method = rpc.split(".")
    req = (
        apb.GetAgentRequest(agent_id="alice\n")
        if method == "GetAgent"
        else mpb.AckRequest(agent_id="bob", message_ids=["m1\n"])
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(getattr(ready, service), method)(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
