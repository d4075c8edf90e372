"""AddDependency and RemoveDependency on a task that has not started, and the optional kind."""

from __future__ import annotations

import grpc

from broker.pb import tasks_pb2 as pb

from . import tasks_helpers as th

Code = grpc.StatusCode


def add(stubs, task_id: str, prereq: str, kind: str = "hard", actor: str = "planner"):
    dep = pb.Dependency(task_id=prereq, type=pb.DependencyType.Value(f"DEPENDENCY_TYPE_{kind.upper()}"))
    return stubs.tasks.AddDependency(pb.AddDependencyRequest(task_id=task_id, dependency=dep, actor=actor))


def remove(stubs, task_id: str, prereq: str, actor: str = "planner"):
    return stubs.tasks.RemoveDependency(
        pb.RemoveDependencyRequest(task_id=task_id, prerequisite_id=prereq, actor=actor)
    )


async def prereqs(stubs, task_id: str) -> list[tuple[str, str, bool]]:
    got = await stubs.tasks.GetDependencies(pb.GetDependenciesRequest(task_id=task_id))
    return [(e.task_id, pb.DependencyType.Name(e.type), e.blocking) for e in got.prerequisites]


async def test_a_ready_task_given_an_unfinished_prerequisite_waits_for_it(stubs):
    await th.register(stubs, "w", ["x"], capacity=2)
    pre = await th.submit(stubs, "pre", required_capabilities=["x"])
    task = await th.submit(stubs, "task", required_capabilities=["y"])
    assert th.name(task.status) == "ready"

    edited = await add(stubs, task.task_id, pre.task_id)
    assert th.name(edited.status) == "blocked"
    assert [d.task_id for d in edited.spec.depends_on] == [pre.task_id]
    assert (await th.history(stubs, task.task_id))[-1] == (
        "ready",
        "blocked",
        f"prerequisite {pre.task_id} added",
        "planner",
        0,
    )
    assert await prereqs(stubs, task.task_id) == [(pre.task_id, "DEPENDENCY_TYPE_HARD", True)]
    up = await stubs.tasks.GetDependencies(pb.GetDependenciesRequest(task_id=pre.task_id))
    assert [e.task_id for e in up.dependents] == [task.task_id]

    (a,) = await th.claim(stubs, "w")
    assert a.task.task_id == pre.task_id
    await th.complete(stubs, a, "w")
    assert await th.status(stubs, task.task_id) == "ready"


async def test_removing_the_last_unfinished_prerequisite_makes_the_task_ready(stubs):
    await th.register(stubs, "w", ["y"], capacity=2)
    p1 = await th.submit(stubs, "p1", required_capabilities=["nobody"])
    p2 = await th.submit(stubs, "p2", required_capabilities=["nobody"])
    task = await th.submit(
        stubs, "task", required_capabilities=["y"], deps=[p1.task_id, (p2.task_id, "soft")]
    )
    assert th.name(task.status) == "blocked"

    once = await remove(stubs, task.task_id, p1.task_id)
    assert th.name(once.status) == "blocked"  # p2 is still unfinished
    assert [d.task_id for d in once.spec.depends_on] == [p2.task_id]
    twice = await remove(stubs, task.task_id, p2.task_id)
    assert th.name(twice.status) == "ready"
    assert list(twice.spec.depends_on) == []
    assert (await th.history(stubs, task.task_id))[-1] == (
        "blocked",
        "ready",
        f"prerequisite {p2.task_id} removed",
        "planner",
        0,
    )
    assert await prereqs(stubs, task.task_id) == []
    (a,) = await th.claim(stubs, "w")
    assert a.task.task_id == task.task_id

    msg = await th.refused(remove(stubs, p1.task_id, p2.task_id), Code.NOT_FOUND)
    assert "does not depend on" in msg


async def test_an_edge_that_would_close_a_cycle_is_refused_and_changes_nothing(stubs):
    a = await th.submit(stubs, "a", required_capabilities=["nobody"])
    b = await th.submit(stubs, "b", deps=[a.task_id])
    c = await th.submit(stubs, "c", deps=[(b.task_id, "soft")])
    msg = await th.refused(add(stubs, a.task_id, c.task_id), Code.FAILED_PRECONDITION)
    assert "cycle" in msg and c.task_id in msg
    assert "cycle" in await th.refused(add(stubs, a.task_id, a.task_id), Code.FAILED_PRECONDITION)
    assert await th.status(stubs, a.task_id) == "ready"
    assert await prereqs(stubs, a.task_id) == []
    # The other way round is no cycle.
    assert th.name((await add(stubs, c.task_id, a.task_id, "optional")).status) == "blocked"


async def test_a_task_that_started_or_finished_is_not_edited(stubs):
    await th.register(stubs, "w", ["x"], capacity=2)
    other = await th.submit(stubs, "other", required_capabilities=["nobody"])
    t = await th.submit(stubs, "t", required_capabilities=["x"])
    (a,) = await th.claim(stubs, "w")
    msg = await th.refused(add(stubs, t.task_id, other.task_id), Code.FAILED_PRECONDITION)
    assert "running" in msg and "has not started" in msg
    await th.fail(stubs, a, "w")  # back to ready, for a retry: it has started all the same
    assert await th.status(stubs, t.task_id) == "ready"
    msg = await th.refused(add(stubs, t.task_id, other.task_id), Code.FAILED_PRECONDITION)
    assert "has started (attempt 1)" in msg
    await th.refused(remove(stubs, t.task_id, other.task_id), Code.FAILED_PRECONDITION)
    assert await prereqs(stubs, t.task_id) == []


async def test_prerequisite_rules_as_at_submission(stubs):
    await th.register(stubs, "w", ["x"], capacity=3)
    failed = await th.submit(stubs, "failed", required_capabilities=["x"], retries=0)
    (a,) = await th.claim(stubs, "w")
    await th.fail(stubs, a, "w", final=True)
    task = await th.submit(stubs, "task", required_capabilities=["nobody"])

    msg = await th.refused(add(stubs, task.task_id, failed.task_id), Code.FAILED_PRECONDITION)
    assert "can never complete" in msg
    # A soft edge to a finished prerequisite is resolved at once: the task stays ready.
    edited = await add(stubs, task.task_id, failed.task_id, "soft")
    assert th.name(edited.status) == "ready"
    assert await prereqs(stubs, task.task_id) == [(failed.task_id, "DEPENDENCY_TYPE_SOFT", False)]
    # The same edge again changes nothing; another kind is a conflict.
    again = await add(stubs, task.task_id, failed.task_id, "soft")
    assert again.updated_at == edited.updated_at
    assert "already depends" in await th.refused(
        add(stubs, task.task_id, failed.task_id, "optional"), Code.ALREADY_EXISTS
    )
    await th.refused(add(stubs, task.task_id, "t-missing"), Code.NOT_FOUND)
    await th.refused(add(stubs, "t-missing", failed.task_id), Code.NOT_FOUND)
    await th.refused(add(stubs, task.task_id, ""), Code.INVALID_ARGUMENT)


async def test_chain_depth_counts_the_dependents_downstream(stubs):
    chain = [await th.submit(stubs, "c0", required_capabilities=["nobody"])]
    for i in range(1, 10):  # c9 ends a chain 9 deep
        chain.append(await th.submit(stubs, f"c{i}", deps=[chain[-1].task_id]))
    head = await th.submit(stubs, "head", required_capabilities=["nobody"])
    tail = await th.submit(stubs, "tail", deps=[head.task_id])
    # head would be 10 deep (allowed), tail 11 (the limit is 10): refused, nothing stored.
    msg = await th.refused(add(stubs, head.task_id, chain[-1].task_id), Code.RESOURCE_EXHAUSTED)
    assert "11 deep" in msg
    assert await prereqs(stubs, head.task_id) == []
    await th.refused(add(stubs, head.task_id, chain[-1].task_id), Code.RESOURCE_EXHAUSTED)
    assert th.name((await add(stubs, head.task_id, chain[-2].task_id)).status) == "blocked"
    assert await th.status(stubs, tail.task_id) == "blocked"


async def test_an_optional_prerequisite_that_fails_never_cancels_its_dependent(stubs):
    await th.register(stubs, "w", ["x"], capacity=2)
    pre = await th.submit(stubs, "pre", required_capabilities=["x"], retries=0)
    hard = await th.submit(stubs, "hard", required_capabilities=["y"], deps=[pre.task_id])
    opt = await th.submit(stubs, "opt", required_capabilities=["y"], deps=[(pre.task_id, "optional")])
    assert [d.type for d in opt.spec.depends_on] == [pb.DEPENDENCY_TYPE_OPTIONAL]
    assert th.name(opt.status) == "blocked"
    (a,) = await th.claim(stubs, "w")
    await th.fail(stubs, a, "w", final=True)
    assert await th.status(stubs, hard.task_id) == "cancelled"
    assert await th.status(stubs, opt.task_id) == "ready"
    assert await prereqs(stubs, opt.task_id) == [(pre.task_id, "DEPENDENCY_TYPE_OPTIONAL", False)]
