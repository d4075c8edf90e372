"""Bad input: the right status, a message naming the field and the rule, and nothing stored."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from broker.models.common import encode_page_token
from broker.pb import tasks_pb2 as pb

from .tasks_helpers import all_tasks, claim, duration, refused, register, spec, submit

Code = grpc.StatusCode


def with_(**changes) -> pb.TaskSpec:
    msg = spec("ok", session_id="s-bad")
    for path, value in changes.items():
        target = msg
        *parents, leaf = path.split("__")
        for p in parents:
            target = getattr(target, p)
        field = getattr(target, leaf)
        if hasattr(field, "CopyFrom"):
            field.CopyFrom(value)
        elif isinstance(value, list):
            del field[:]
            field.extend(value)
        else:
            setattr(target, leaf, value)
    return msg


BAD_SPECS = [
    (with_(priority=-1), Code.INVALID_ARGUMENT, "task.priority"),
    (with_(priority=11), Code.INVALID_ARGUMENT, "task.priority"),
    (with_(title=""), Code.INVALID_ARGUMENT, "task.title"),
    (with_(title="x" * 513), Code.INVALID_ARGUMENT, "task.title"),
    (with_(parent_id="t-unknown"), Code.NOT_FOUND, "task.parent_id"),
    (with_(parent_id="bad id!"), Code.INVALID_ARGUMENT, "task.parent_id"),
    (with_(lease_timeout=duration(0)), Code.INVALID_ARGUMENT, "task.lease_timeout"),
    (with_(lease_timeout=duration(86401)), Code.INVALID_ARGUMENT, "task.lease_timeout"),
    (with_(retry__max_retries=101), Code.INVALID_ARGUMENT, "task.retry.max_retries"),
    (with_(retry__multiplier=0.5), Code.INVALID_ARGUMENT, "task.retry.multiplier"),
    (with_(retry__initial_backoff=duration(-1)), Code.INVALID_ARGUMENT, "task.retry.initial_backoff"),
    (with_(required_capabilities=[""]), Code.INVALID_ARGUMENT, "task.required_capabilities"),
    (
        with_(required_capabilities=[f"c{i}" for i in range(65)]),
        Code.INVALID_ARGUMENT,
        "required_capabilities",
    ),
    (with_(tags=[f"t{i}" for i in range(33)]), Code.INVALID_ARGUMENT, "task.tags"),
    (with_(depends_on=[pb.Dependency(task_id="t-x", type=9)]), Code.INVALID_ARGUMENT, "depends_on[0].type"),
    (
        with_(depends_on=[pb.Dependency(task_id="t-x"), pb.Dependency(task_id="t-x")]),
        Code.INVALID_ARGUMENT,
        "task.depends_on",
    ),
    (with_(payload=b"x" * (1024 * 1024 + 1)), Code.INVALID_ARGUMENT, "task.payload"),
    (with_(idempotency_key="k" * 129), Code.INVALID_ARGUMENT, "task.idempotency_key"),
    (with_(session_id="s" * 129), Code.INVALID_ARGUMENT, "task.session_id"),
    (with_(deadline=Timestamp(seconds=2**62)), Code.INVALID_ARGUMENT, "task.deadline"),
    (with_(deadline=Timestamp(seconds=-(2**62))), Code.INVALID_ARGUMENT, "task.deadline"),
    (
        with_(metadata=Struct(fields={"x": Value(number_value=float("nan"))})),
        Code.INVALID_ARGUMENT,
        "task.metadata",
    ),
]


@pytest.mark.parametrize(("bad", "code", "field"), BAD_SPECS, ids=[b[2] for b in BAD_SPECS])
async def test_bad_submit_is_refused_and_stores_nothing(stubs, bad, code, field):
    msg = await refused(stubs.tasks.Submit(pb.SubmitRequest(task=bad)), code)
    assert field in msg
    assert await all_tasks(stubs) == []
    assert await all_tasks(stubs, session_id="s-bad") == []


async def test_bad_worker_calls(stubs):
    await register(stubs, "w", capacity=1)
    t = await submit(stubs, "t")
    (a,) = await claim(stubs, "w")
    tid = t.task_id
    cases = [
        (stubs.tasks.Claim(pb.ClaimRequest(agent_id="nobody")), Code.NOT_FOUND, "nobody"),
        (stubs.tasks.Claim(pb.ClaimRequest(agent_id="")), Code.INVALID_ARGUMENT, "agent_id"),
        (
            stubs.tasks.Claim(pb.ClaimRequest(agent_id="w", max_tasks=1001)),
            Code.INVALID_ARGUMENT,
            "max_tasks",
        ),
        (stubs.tasks.Claim(pb.ClaimRequest(agent_id="w", wait=duration(61))), Code.INVALID_ARGUMENT, "wait"),
        (
            stubs.tasks.Complete(pb.CompleteRequest(task_id=tid, agent_id="w")),
            Code.INVALID_ARGUMENT,
            "attempt",
        ),
        (
            stubs.tasks.Complete(pb.CompleteRequest(task_id="t-no", agent_id="w", attempt=1)),
            Code.NOT_FOUND,
            "t-no",
        ),
        (
            stubs.tasks.Fail(pb.FailRequest(task_id=tid, agent_id="w", attempt=1)),
            Code.INVALID_ARGUMENT,
            "error",
        ),
        (
            stubs.tasks.ExtendLease(
                pb.ExtendLeaseRequest(task_id=tid, agent_id="w", attempt=1, extension=duration(0.5))
            ),
            Code.INVALID_ARGUMENT,
            "extension",
        ),
        (stubs.tasks.Get(pb.GetTaskRequest(task_id="")), Code.INVALID_ARGUMENT, "task_id"),
        (stubs.tasks.Get(pb.GetTaskRequest(task_id="t-no")), Code.NOT_FOUND, "t-no"),
        (stubs.tasks.List(pb.ListTasksRequest(status=42)), Code.INVALID_ARGUMENT, "status"),
        (stubs.tasks.List(pb.ListTasksRequest(page_size=5000)), Code.INVALID_ARGUMENT, "page_size"),
        (
            stubs.tasks.List(pb.ListTasksRequest(page_token=encode_page_token(2**70))),
            Code.INVALID_ARGUMENT,
            "page_token",
        ),
        (stubs.tasks.GetTree(pb.GetTreeRequest(task_id="t-no")), Code.NOT_FOUND, "t-no"),
    ]
    for call, code, field in cases:
        assert field in await refused(call, code)
    stream = stubs.tasks.Listen(pb.ListenRequest(agent_id="nobody"))
    assert "nobody" in await refused(stream.read(), Code.NOT_FOUND)
    # None of it touched the lease.
    got = await stubs.tasks.Get(pb.GetTaskRequest(task_id=tid))
    assert (got.status, got.attempt, got.assigned_agent_id) == (pb.TASK_STATUS_RUNNING, a.attempt, "w")


async def test_an_empty_submission_names_the_field_as_the_proto_does_and_the_rule_in_words(stubs):
    """What a client written from the protos reads: SubmitRequest.task.title, and the rule, not
    pydantic's "String should have at least 1 character"."""
    msg = await refused(stubs.tasks.Submit(pb.SubmitRequest()), Code.INVALID_ARGUMENT)
    assert msg == "task.title: must not be empty"
    graph = pb.SubmitGraphRequest(
        nodes=[
            pb.GraphNode(key="a", task=spec("a")),
            pb.GraphNode(key="b", task=pb.TaskSpec(title="x" * 513)),
        ]
    )
    msg = await refused(stubs.tasks.SubmitGraph(graph), Code.INVALID_ARGUMENT)
    assert msg == "nodes[1].task.title: must be at most 512 characters"
    assert await all_tasks(stubs) == []
