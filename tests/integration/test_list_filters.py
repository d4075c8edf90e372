"""Task lists by type, tree, depth and submission time, and message lists by type, through the API
(every filter must match; pages in submission order)."""

from __future__ import annotations

import grpc

from broker.clock import now_us
from broker.pb import messaging_pb2 as mpb
from broker.pb import tasks_pb2 as pb

from . import tasks_helpers as th
from .messaging_support import register, send


async def ids(stubs, **flt) -> list[str]:
    return [t.task_id for t in await th.all_tasks(stubs, **flt)]


async def test_tasks_are_listed_by_type_tree_depth_and_time(stubs):
    root = await th.submit(stubs, "root", task_type="plan")
    child = await th.submit(stubs, "child", task_type="fetch", parent_id=root.task_id)
    grandchild = await th.submit(stubs, "grandchild", task_type="fetch", parent_id=child.task_id)
    middle = now_us()
    other = await th.submit(stubs, "other", task_type="fetch")
    assert await ids(stubs, task_type="fetch") == [child.task_id, grandchild.task_id, other.task_id]
    assert await ids(stubs, root_id=root.task_id) == [root.task_id, child.task_id, grandchild.task_id]
    assert await ids(stubs, level=0) == [root.task_id, other.task_id]
    assert await ids(stubs, level=2) == [grandchild.task_id]
    assert await ids(stubs, task_type="fetch", root_id=root.task_id, level=1) == [child.task_id]
    assert await ids(stubs, created_after=th.timestamp(middle)) == [other.task_id]
    assert await ids(stubs, created_before=th.timestamp(middle)) == [
        root.task_id,
        child.task_id,
        grandchild.task_id,
    ]
    page = await stubs.tasks.List(pb.ListTasksRequest(task_type="fetch", page_size=2))
    rest = await stubs.tasks.List(pb.ListTasksRequest(task_type="fetch", page_token=page.next_page_token))
    assert [t.task_id for t in (*page.tasks, *rest.tasks)] == [
        child.task_id,
        grandchild.task_id,
        other.task_id,
    ]
    await th.refused(stubs.tasks.List(pb.ListTasksRequest(level=-1)), grpc.StatusCode.INVALID_ARGUMENT)


async def test_tasks_are_listed_by_label(stubs):
    a = await th.submit(stubs, "a", labels={"team": "search", "env": "prod"})
    await th.submit(stubs, "b", labels={"team": "ranking"})
    c = await th.submit(stubs, "c", labels={"team": "search"}, required_capabilities=["gpu"])
    assert dict(a.spec.labels) == {"team": "search", "env": "prod"}
    assert await ids(stubs, label="team=search") == [a.task_id, c.task_id]
    assert await ids(stubs, label="team=search", capability="gpu") == [c.task_id]
    assert await ids(stubs, label="env=prod", tag="") == [a.task_id]
    assert await ids(stubs, label="team=nobody") == []
    got = await th.get(stubs, a.task_id)
    assert dict(got.spec.labels) == {"team": "search", "env": "prod"}
    msg = await th.refused(
        stubs.tasks.Submit(pb.SubmitRequest(task=th.spec("bad", labels={"a=b": "c"}))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "labels" in msg and "'='" in msg


async def test_messages_are_listed_by_type(stubs):
    await register(stubs, "a")
    invoice = await send(stubs, "a", "a", b"1", message_type="invoice")
    await send(stubs, "a", "a", b"2", message_type="note")
    later = await send(stubs, "a", "a", b"3", message_type="invoice")
    r = await stubs.messaging.ListMessages(mpb.ListMessagesRequest(message_type="invoice"))
    assert [m.message_id for m in r.messages] == [invoice, later]
    r = await stubs.messaging.ListMessages(
        mpb.ListMessagesRequest(message_type="invoice", sender_id="a", page_size=1)
    )
    assert [m.message_id for m in r.messages] == [invoice] and r.next_page_token
