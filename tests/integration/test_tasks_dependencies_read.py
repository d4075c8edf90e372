"""GetDependencies: a task's prerequisites with their status, which still block it and when each
edge was resolved, and its dependents."""

from __future__ import annotations

import grpc

from broker.pb import tasks_pb2 as pb

from . import tasks_helpers as th


async def deps(stubs, task_id: str) -> pb.GetDependenciesResponse:
    return await stubs.tasks.GetDependencies(pb.GetDependenciesRequest(task_id=task_id))


def view(edges) -> list[tuple[str, str, str, bool, bool]]:
    return [
        (e.task_id, pb.DependencyType.Name(e.type), th.name(e.status), e.blocking, e.HasField("resolved_at"))
        for e in edges
    ]


async def test_prerequisites_say_which_still_block_and_when_each_was_resolved(stubs):
    await th.register(stubs, "w", ["x"], capacity=3)
    done = await th.submit(stubs, "done first", required_capabilities=["x"])
    (a,) = await th.claim(stubs, "w")
    await th.complete(stubs, a, "w")
    p1 = await th.submit(stubs, "p1", required_capabilities=["x"])
    p2 = await th.submit(stubs, "p2", required_capabilities=["nobody"])
    d = await th.submit(stubs, "d", deps=[done.task_id, p1.task_id, (p2.task_id, "soft")])
    got = await deps(stubs, d.task_id)
    assert view(got.prerequisites) == [
        (
            done.task_id,
            "DEPENDENCY_TYPE_HARD",
            "completed",
            False,
            True,
        ),  # finished before: resolved at submit
        (p1.task_id, "DEPENDENCY_TYPE_HARD", "ready", True, False),
        (p2.task_id, "DEPENDENCY_TYPE_SOFT", "ready", True, False),
    ]
    assert list(got.dependents) == []
    (b,) = await th.claim(stubs, "w")
    await th.complete(stubs, b, "w")
    got = await deps(stubs, d.task_id)
    p1_edge = got.prerequisites[1]
    assert (p1_edge.blocking, th.name(p1_edge.status)) == (False, "completed")
    assert th.us(p1_edge.resolved_at) >= th.us(b.task.created_at)
    assert [e.blocking for e in got.prerequisites] == [False, False, True]  # p2 still blocks
    upstream = await deps(stubs, p1.task_id)
    assert view(upstream.dependents) == [(d.task_id, "DEPENDENCY_TYPE_HARD", "blocked", False, True)]
    assert upstream.dependents[0].title == "d"


async def test_an_unknown_task_is_not_found(stubs):
    msg = await th.refused(
        stubs.tasks.GetDependencies(pb.GetDependenciesRequest(task_id="t-nope")), grpc.StatusCode.NOT_FOUND
    )
    assert "t-nope" in msg
    await th.refused(
        stubs.tasks.GetDependencies(pb.GetDependenciesRequest()), grpc.StatusCode.INVALID_ARGUMENT
    )
