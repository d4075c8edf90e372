"""Client value conversions: payload encoding, enums, times, protobuf round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from a2a_broker_client import (
    DependencyType,
    GraphDependency,
    GraphNode,
    MessageStatus,
    OutgoingMessage,
    RetryPolicy,
    Target,
    TaskSpec,
    TaskStatus,
    decode_payload,
    encode_payload,
)
from a2a_broker_client import _convert as c
from a2a_broker_client.cli._common import jsonable, read_payload
from a2a_broker_client.cli.tasks import graph_from_json

from broker.pb import messaging_pb2, tasks_pb2


def test_encode_payload_by_type():
    assert encode_payload(b"\x00\x01") == (b"\x00\x01", "")
    assert encode_payload("héllo") == ("héllo".encode(), "text/plain; charset=utf-8")
    assert encode_payload({"a": [1, 2]}) == (b'{"a":[1,2]}', "application/json")
    assert encode_payload([1], "application/x-custom") == (b"[1]", "application/x-custom")
    assert encode_payload(None) == (b"", "")


def test_decode_payload_by_content_type():
    assert decode_payload(b'{"a":1}', "application/json") == {"a": 1}
    assert decode_payload(b'{"a":1}', "application/vnd.x+json; charset=utf-8") == {"a": 1}
    assert decode_payload(b"hi", "text/plain; charset=utf-8") == "hi"
    assert decode_payload(b"\x00", "application/octet-stream") == b"\x00"
    assert decode_payload(b"", "application/json") is None


def test_enums_round_trip_and_unknown_values():
    for status in TaskStatus:
        n = c.from_enum(tasks_pb2.TaskStatus, status if status != TaskStatus.UNSPECIFIED else None)
        assert c.to_enum(TaskStatus, tasks_pb2.TaskStatus, n) == status
    assert c.from_enum(messaging_pb2.MessageStatus, "failed") == messaging_pb2.MESSAGE_STATUS_FAILED
    # A value from a newer broker that this client does not know reads as UNSPECIFIED.
    assert c.to_enum(MessageStatus, messaging_pb2.MessageStatus, 99) == MessageStatus.UNSPECIFIED
    with pytest.raises(ValueError, match="unknown value 'nope'"):
        c.from_enum(tasks_pb2.TaskStatus, "nope")


def test_times_and_durations():
    t = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    req = c.send_request(OutgoingMessage("a", "b", deliver_after=t, ttl=timedelta(seconds=1.5)))
    assert c.to_datetime(req, "deliver_after") == t
    assert c.to_seconds(req, "ttl") == 1.5
    with pytest.raises(ValueError, match="timezone-aware"):
        c.send_request(OutgoingMessage("a", "b", deliver_after=datetime(2030, 1, 1)))
    with pytest.raises(ValueError, match="ttl or expires_at"):
        c.send_request(OutgoingMessage("a", "b", ttl=1, expires_at=t))


def test_targets():
    assert c.target("x").agent_id == "x"
    assert c.target(Target.direct("y")).agent_id == "y"
    b = c.target(Target.broadcast("gpu", include_sender=True))
    assert (
        b.WhichOneof("kind") == "broadcast" and b.broadcast.capability == "gpu" and b.broadcast.include_sender
    )
    a = c.target(Target.anycast("py"))
    assert a.WhichOneof("kind") == "anycast" and a.anycast.capability == "py"


def test_send_request_optional_fields_stay_unset():
    req = c.send_request(OutgoingMessage("a", "b", {"k": 1}))
    assert not req.HasField("priority") and not req.HasField("max_attempts")
    assert req.content_type == "application/json"
    req = c.send_request(OutgoingMessage("a", "b", priority=0, max_attempts=1, headers={"h": "v"}))
    assert req.HasField("priority") and req.priority == 0 and req.max_attempts == 1
    assert dict(req.headers) == {"h": "v"}


def test_task_spec_round_trip():
    spec = TaskSpec(
        title="t",
        task_type="kind",
        payload={"x": 1},
        required_capabilities=["a", "b"],
        priority=0,
        deadline=datetime(2031, 1, 1, tzinfo=UTC),
        depends_on=["p1", c.m.Dependency("p2", DependencyType.SOFT)],
        retry=RetryPolicy(max_retries=0, initial_backoff=0.5, multiplier=3, max_backoff=10),
        lease_timeout=2,
        session_id="s",
        tags=["x"],
        metadata={"m": True},
        idempotency_key="k",
        submitted_by="me",
    )
    pb = c.task_spec(spec)
    assert pb.HasField("priority") and pb.priority == 0
    assert pb.retry.HasField("max_retries") and pb.retry.max_retries == 0
    back = c.spec_from_pb(pb)
    assert back.title == "t" and back.payload == b'{"x":1}' and back.content_type == "application/json"
    assert back.data == {"x": 1}
    assert [(d.task_id, d.type) for d in back.depends_on] == [("p1", "hard"), ("p2", "soft")]
    assert back.retry == RetryPolicy(max_retries=0, initial_backoff=0.5, multiplier=3, max_backoff=10)
    assert back.lease_timeout == 2 and back.metadata == {"m": True} and back.tags == ("x",)
    assert back.deadline == spec.deadline


def test_graph_nodes():
    n = c.graph_node(
        GraphNode("b", TaskSpec("B"), depends_on_keys=["a", GraphDependency("c", "soft")], parent_key="root")
    )
    assert n.key == "b" and n.parent_key == "root"
    assert [(d.key, d.type) for d in n.depends_on_keys] == [
        ("a", tasks_pb2.DEPENDENCY_TYPE_HARD),
        ("c", tasks_pb2.DEPENDENCY_TYPE_SOFT),
    ]


def test_graph_from_json():
    nodes = graph_from_json(
        {
            "nodes": [
                {"key": "a", "title": "A", "payload": {"n": 1}, "required_capabilities": ["x"]},
                {
                    "key": "b",
                    "title": "B",
                    "depends_on": ["a", {"key": "a", "type": "soft"}],
                    "max_retries": 1,
                },
            ]
        }
    )
    assert nodes[0].spec.required_capabilities == ["x"] and nodes[0].spec.submitted_by == "cli"
    assert nodes[1].depends_on_keys[1] == GraphDependency("a", DependencyType.SOFT)
    assert nodes[1].spec.retry == RetryPolicy(max_retries=1)
    with pytest.raises(Exception, match="unknown field"):
        graph_from_json([{"key": "a", "title": "A", "bogus": 1}])
    with pytest.raises(Exception, match="non-empty"):
        graph_from_json([])


def test_cli_payload_and_json_rendering(tmp_path):
    assert read_payload('{"a":1}', "") == (b'{"a":1}', "application/json")
    assert read_payload("hello", "") == (b"hello", "text/plain; charset=utf-8")
    assert read_payload("hello", "text/x") == (b"hello", "text/x")
    f = tmp_path / "bin"
    f.write_bytes(b"\xff\xfe")
    assert read_payload(f"@{f}", "") == (b"\xff\xfe", "application/octet-stream")
    msg = c.m.Message(
        "m1",
        payload=b'{"k":"v"}',
        content_type="application/json",
        status=MessageStatus.PENDING,
        created_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    out = jsonable(msg)
    assert out["payload"] == {"k": "v"} and out["status"] == "pending"
    assert out["created_at"] == "2030-01-01T00:00:00Z"
    assert jsonable(c.m.Message("m2", payload=b"\xff"))["payload"] == {"base64": "/w=="}
