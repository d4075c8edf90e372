"""The Python client's TaskQueue calls against a real broker: typed values in and out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from a2a_broker_client import (
    BrokerClient,
    Dependency,
    DependencyType,
    FailedPreconditionError,
    GraphDependency,
    GraphNode,
    InvalidArgumentError,
    NotFoundError,
    RetryPolicy,
    TaskSpec,
    TaskStatus,
)


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("w", max_concurrent_tasks=3, capabilities=["py"])
        yield c


async def test_submit_claim_extend_complete(client):
    deadline = datetime.now(UTC) + timedelta(hours=1)
    res = await client.submit(
        "summarize",
        task_type="nlp",
        payload={"doc": "text"},
        required_capabilities=["py"],
        priority=7,
        deadline=deadline,
        retry=RetryPolicy(max_retries=2, initial_backoff=0.5),
        lease_timeout=30,
        session_id="s1",
        tags=["a", "b"],
        metadata={"owner": "me"},
        submitted_by="tester",
    )
    t = res.task
    assert not res.duplicate and t.status == TaskStatus.READY and t.task_id
    s = t.spec
    assert (s.title, s.task_type, s.priority, s.session_id) == ("summarize", "nlp", 7, "s1")
    assert s.data == {"doc": "text"} and tuple(s.required_capabilities) == ("py",)
    assert s.retry is not None and s.retry.max_retries == 2 and s.lease_timeout == 30
    assert tuple(s.tags) == ("a", "b") and s.metadata == {"owner": "me"}
    assert s.deadline is not None and abs((s.deadline - deadline).total_seconds()) < 0.001
    assert t.root_id == t.task_id and t.level == 0 and t.calculated_priority >= 7

    (a,) = await client.claim("w", max_tasks=5, wait=1)
    assert a.task.task_id == t.task_id and a.attempt == 1 and a.lease_expires_at is not None
    until = await client.extend_lease(t.task_id, "w", 1, progress=40, status_note="reading")
    assert until is not None and until >= a.lease_expires_at
    running = await client.get_task(t.task_id)
    assert (running.status, running.assigned_agent_id, running.progress, running.status_note) == (
        TaskStatus.RUNNING,
        "w",
        40,
        "reading",
    )
    done = await client.complete(t.task_id, "w", 1, {"summary": "short"})
    assert done.status == TaskStatus.COMPLETED and done.result_data == {"summary": "short"}
    with pytest.raises(FailedPreconditionError):
        await client.complete(t.task_id, "w", 1, "again")
    hist = await client.get_history(t.task_id)
    assert [h.to_status for h in hist][-2:] == [TaskStatus.RUNNING, TaskStatus.COMPLETED]
    assert hist[-1].actor == "w" and hist[-1].attempt == 1
    assert [x.task_id async for x in client.iter_tasks(session_id="s1", status="completed")] == [t.task_id]
    assert (await client.submit("dup", idempotency_key="k")).task.task_id == (
        await client.submit(TaskSpec("dup", idempotency_key="k"))
    ).task.task_id


async def test_graph_tree_fail_cancel_and_watch(client):
    g = await client.submit_graph(
        [
            GraphNode("root", TaskSpec("root")),
            GraphNode("a", TaskSpec("a", required_capabilities=["py"]), parent_key="root"),
            GraphNode("b", TaskSpec("b"), parent_key="root", depends_on_keys=["a"]),
            GraphNode("c", TaskSpec("c"), parent_key="root", depends_on_keys=[GraphDependency("a", "soft")]),
        ]
    )
    ids = g.task_ids
    assert set(ids) == {"root", "a", "b", "c"}
    status = {t.task_id: t.status for t in g.tasks}
    assert status[ids["a"]] == TaskStatus.READY and status[ids["b"]] == TaskStatus.BLOCKED

    tree = await client.get_tree(ids["root"])
    assert tree.tasks[0].task_id == ids["root"] and len(tree.tasks) == 4
    assert tree.status_counts[TaskStatus.BLOCKED] == 2 and 0 <= tree.progress <= 100
    assert [t.level for t in tree.tasks] == [0, 1, 1, 1]
    b = await client.get_task(ids["b"])
    assert b.spec.depends_on == (Dependency(ids["a"], DependencyType.HARD),)

    async with client.watch_tasks(subtree_root_id=ids["root"], include_snapshot=True) as events:
        snap = [await asyncio.wait_for(events.__anext__(), 5) for _ in range(4)]
        assert all(e.snapshot for e in snap)
        (a,) = [x for x in await client.claim("w", max_tasks=3) if x.task.task_id == ids["a"]]
        failed = await client.fail(ids["a"], "w", a.attempt, "boom", non_retryable=True)
        assert failed.status == TaskStatus.FAILED and failed.last_error == "boom"
        seen: dict[str, TaskStatus] = {}
        while seen.get(ids["b"]) != TaskStatus.CANCELLED or seen.get(ids["c"]) != TaskStatus.READY:
            ev = await asyncio.wait_for(events.__anext__(), 5)
            assert not ev.snapshot
            seen[ev.transition.task_id] = ev.transition.to_status
    assert seen[ids["a"]] == TaskStatus.FAILED  # hard dependent b cancelled, soft dependent c runs

    cancelled = await client.cancel(ids["root"], cascade=True, reason="enough", actor="test")
    assert set(cancelled) == {ids["root"], ids["c"]}
    with pytest.raises(FailedPreconditionError):
        await client.cancel(ids["root"])
    assert (await client.wait_for_task(ids["root"], timeout=5)).status == TaskStatus.CANCELLED


async def test_listen_pushes_assignments_and_cancellations(client):
    async with client.listen("w") as stream:
        tid = (await client.submit("pushed", required_capabilities=["py"])).task.task_id
        ev = await asyncio.wait_for(stream.__anext__(), 5)
        assert [a.task.task_id for a in ev.assignments] == [tid]
        await client.cancel(tid, reason="stop it")
        while True:
            ev = await asyncio.wait_for(stream.__anext__(), 5)
            if ev.cancellations:
                break
        (c,) = ev.cancellations
        assert (c.task_id, c.attempt) == (tid, 1) and "stop it" in c.reason


async def test_errors_name_the_problem(client):
    with pytest.raises(InvalidArgumentError) as info:
        await client.submit("bad", priority=-1)
    assert "priority" in info.value.details
    with pytest.raises(NotFoundError):
        await client.submit("orphan", parent_id="t-nope")
    with pytest.raises(NotFoundError):
        await client.get_task("t-nope")
    with pytest.raises(NotFoundError):
        await client.claim("nobody")
    with pytest.raises(ValueError):
        client.watch_tasks()
    assert await client.claim("w", wait=0.05) == []


async def test_work_completes_fails_and_extends_on_the_stream(client):
    async with client.work("w") as stream:
        await stream.wait_live()
        ok = (await client.submit("ok", required_capabilities=["py"])).task.task_id
        ev = await asyncio.wait_for(stream.__anext__(), 5)
        (a,) = ev.assignments
        assert a.task.task_id == ok and stream.in_band
        assert await stream.extend_lease(ok, a.attempt, progress=50) is not None
        done = await stream.complete(ok, a.attempt, {"answer": 42})
        assert done.status == TaskStatus.COMPLETED and done.result_data == {"answer": 42}
        with pytest.raises(FailedPreconditionError):  # a stale attempt, refused alone
            await stream.fail(ok, a.attempt, "too late")
        bad = (await client.submit("bad", required_capabilities=["py"])).task.task_id
        (b,) = (await asyncio.wait_for(stream.__anext__(), 5)).assignments
        failed = await stream.fail(bad, b.attempt, "broken", non_retryable=True)
        assert b.task.task_id == bad and failed.status == TaskStatus.FAILED
    assert (await client.get_task(ok)).status == TaskStatus.COMPLETED


async def test_work_falls_back_to_listen_and_unary_calls_on_a_broker_without_it(tmp_path, monkeypatch):
    import grpc

    from broker.server import start_server
    from broker.servicers.tasks import TaskQueueServicer
    from tests.conftest import make_settings

    async def unimplemented(self, requests, context):  # a broker from before Work
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        yield

    monkeypatch.setattr(TaskQueueServicer, "Work", unimplemented)
    b = await start_server(make_settings(tmp_path))
    try:
        async with BrokerClient(b.address, timeout=10) as c:
            await c.register("old", max_concurrent_tasks=1)
            tid = (await c.submit("job")).task.task_id
            async with c.work("old") as stream:
                (a,) = (await asyncio.wait_for(stream.__anext__(), 5)).assignments
                assert not stream.in_band
                assert (await stream.complete(tid, a.attempt, "done")).status == TaskStatus.COMPLETED
    finally:
        await b.stop(0.2)


async def test_dependency_edits_labels_and_the_optional_kind(client):
    pre = (await client.submit("pre", required_capabilities=["nobody"])).task
    task = (await client.submit("task", labels={"team": "search"})).task
    assert task.spec.labels == {"team": "search"}
    edited = await client.add_dependency(task.task_id, pre.task_id, DependencyType.OPTIONAL, actor="me")
    assert edited.status == TaskStatus.BLOCKED
    assert edited.spec.depends_on == (Dependency(pre.task_id, DependencyType.OPTIONAL),)
    (edge,), _ = await client.get_dependencies(task.task_id)
    assert (edge.type, edge.blocking) == (DependencyType.OPTIONAL, True)
    with pytest.raises(FailedPreconditionError, match="cycle"):
        await client.add_dependency(pre.task_id, task.task_id)
    back = await client.remove_dependency(task.task_id, pre.task_id, actor="me")
    assert back.status == TaskStatus.READY and back.spec.depends_on == ()
    page = await client.list_tasks(label="team=search")
    assert [t.task_id for t in page.items] == [task.task_id]
