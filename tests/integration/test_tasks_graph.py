"""Task graphs: dependency order, graph validation (nothing stored when refused), propagation, reads."""

from __future__ import annotations

import grpc

from broker.pb import tasks_pb2 as pb

from .tasks_helpers import (
    all_tasks,
    claim,
    complete,
    fail,
    get,
    history,
    name,
    refused,
    register,
    spec,
    status,
    submit,
)

Code = grpc.StatusCode


def node(key: str, deps: list[str] = (), parent: str = "", **kw) -> pb.GraphNode:  # type: ignore[assignment]
    return pb.GraphNode(
        key=key,
        task=spec(key, **kw),
        depends_on_keys=[pb.GraphDependency(key=d) for d in deps],
        parent_key=parent,
    )


async def graph(stubs, *nodes: pb.GraphNode) -> pb.SubmitGraphResponse:
    return await stubs.tasks.SubmitGraph(pb.SubmitGraphRequest(nodes=list(nodes)))


async def test_diamond_dag_runs_in_dependency_order(stubs):
    await register(stubs, "w", capacity=4)
    g = await graph(stubs, node("D", ["B", "C"]), node("B", ["A"]), node("C", ["A"]), node("A"))
    ids = dict(g.task_ids)
    assert [t.spec.title for t in g.tasks] == ["D", "B", "C", "A"]  # request order
    assert [name(t.status) for t in g.tasks] == ["blocked", "blocked", "blocked", "ready"]

    (a,) = await claim(stubs, "w", n=4)
    assert a.task.task_id == ids["A"]
    await complete(stubs, a, "w")
    bc = await claim(stubs, "w", n=4)
    assert sorted(x.task.task_id for x in bc) == sorted([ids["B"], ids["C"]])
    assert await status(stubs, ids["D"]) == "blocked"
    await complete(stubs, bc[0], "w")
    assert await status(stubs, ids["D"]) == "blocked"
    assert await claim(stubs, "w", n=4) == []
    await complete(stubs, bc[1], "w")
    (d,) = await claim(stubs, "w", n=4)
    assert d.task.task_id == ids["D"]
    assert [h[:2] for h in await history(stubs, ids["D"])] == [
        ("", "pending"),
        ("pending", "blocked"),
        ("blocked", "ready"),
        ("ready", "running"),
    ]


async def test_cycle_is_refused_and_nothing_stored(stubs):
    msg = await refused(
        graph(stubs, node("x", ["z"]), node("y", ["x"]), node("z", ["y"]), node("ok")),
        Code.FAILED_PRECONDITION,
    )
    assert "cycle" in msg and "'x'" in msg
    msg = await refused(graph(stubs, node("p", parent="q"), node("q", parent="p")), Code.FAILED_PRECONDITION)
    assert "cycle" in msg
    msg = await refused(graph(stubs, node("self", ["self"])), Code.FAILED_PRECONDITION)
    assert await all_tasks(stubs) == []


async def test_missing_prerequisite_or_parent_is_refused_and_nothing_stored(stubs):
    msg = await refused(stubs.tasks.Submit(pb.SubmitRequest(task=spec("t", deps=["t-nope"]))), Code.NOT_FOUND)
    assert "t-nope" in msg and "depends_on" in msg
    msg = await refused(
        stubs.tasks.Submit(pb.SubmitRequest(task=spec("t", parent_id="t-gone"))), Code.NOT_FOUND
    )
    assert "parent_id" in msg
    msg = await refused(graph(stubs, node("a"), node("b", ["zz"])), Code.INVALID_ARGUMENT)
    assert "nodes[1].depends_on_keys" in msg
    assert await all_tasks(stubs) == []


async def test_fifty_one_prerequisites_are_refused_fifty_accepted(stubs):
    g = await graph(stubs, *(node(f"p{i}") for i in range(51)))
    prereqs = [g.task_ids[f"p{i}"] for i in range(51)]
    msg = await refused(
        stubs.tasks.Submit(pb.SubmitRequest(task=spec("many", deps=prereqs))), Code.RESOURCE_EXHAUSTED
    )
    assert "51 prerequisites" in msg and "at most 50" in msg
    assert len(await all_tasks(stubs)) == 51
    ok = await submit(stubs, "fifty", deps=prereqs[:50])
    assert name(ok.status) == "blocked" and len(ok.spec.depends_on) == 50


async def test_depth_eleven_is_refused_in_the_tree_and_in_the_dependency_chain(stubs):
    # Tree: levels 0..10 are fine, level 11 is not.
    chain = [node("l0")] + [node(f"l{i}", parent=f"l{i - 1}") for i in range(1, 11)]
    g = await graph(stubs, *chain)
    deepest = await get(stubs, g.task_ids["l10"])
    assert deepest.level == 10 and deepest.root_id == g.task_ids["l0"]
    assert deepest.path.count("/") == 12
    msg = await refused(
        stubs.tasks.Submit(pb.SubmitRequest(task=spec("l11", parent_id=deepest.task_id))),
        Code.RESOURCE_EXHAUSTED,
    )
    assert "depth 11" in msg
    # Prerequisite chains: 10 links fine, 11 refused, also inside one graph.
    d = [node("d0")] + [node(f"d{i}", [f"d{i - 1}"]) for i in range(1, 11)]
    g2 = await graph(stubs, *d)
    msg = await refused(
        stubs.tasks.Submit(pb.SubmitRequest(task=spec("d11", deps=[g2.task_ids["d10"]]))),
        Code.RESOURCE_EXHAUSTED,
    )
    assert "11 deep" in msg
    before = len(await all_tasks(stubs))
    await refused(
        graph(stubs, *(node(f"e{i}", [f"e{i - 1}"] if i else []) for i in range(12))), Code.RESOURCE_EXHAUSTED
    )
    assert len(await all_tasks(stubs)) == before == 22


async def test_submit_graph_with_one_bad_task_stores_none(stubs):
    bad_priority = node("bad", ["a"], priority=11)
    msg = await refused(graph(stubs, node("a"), node("b", ["a"]), bad_priority), Code.INVALID_ARGUMENT)
    assert "nodes[2].task.priority: must be at most 10" in msg
    missing = pb.GraphNode(key="m", task=spec("m", deps=["t-missing"]))
    await refused(graph(stubs, node("a"), node("b", ["a"]), missing), Code.NOT_FOUND)
    await refused(graph(stubs, node("a"), node("a")), Code.INVALID_ARGUMENT)
    assert await all_tasks(stubs) == []


async def test_hard_failure_cancels_dependents_recursively_soft_ones_proceed(stubs):
    await register(stubs, "w", capacity=5)
    p = await submit(stubs, "p", retries=0)
    hard = await submit(stubs, "hard", deps=[p.task_id])
    deeper = await submit(stubs, "deeper", deps=[hard.task_id])
    soft = await submit(stubs, "soft", deps=[(p.task_id, "soft")])
    (a,) = await claim(stubs, "w", n=5)
    await fail(stubs, a, "w", error="disk full")

    assert await status(stubs, p.task_id) == "failed"
    h = await get(stubs, hard.task_id)
    assert name(h.status) == "cancelled"
    assert p.task_id in h.last_error and "disk full" in h.last_error
    assert await status(stubs, deeper.task_id) == "cancelled"
    assert hard.task_id in (await get(stubs, deeper.task_id)).last_error
    assert await status(stubs, soft.task_id) == "ready"
    (s,) = await claim(stubs, "w", n=5)
    assert s.task.task_id == soft.task_id
    last = (await history(stubs, hard.task_id))[-1]
    assert last[:2] == ("blocked", "cancelled") and "failed" in last[2] and last[3] == "broker"


async def test_cancelled_prerequisite_cancels_hard_dependents_and_frees_soft_ones(stubs):
    p = await submit(stubs, "p")
    hard = await submit(stubs, "hard", deps=[p.task_id])
    soft = await submit(stubs, "soft", deps=[(p.task_id, "soft")])
    resp = await stubs.tasks.Cancel(pb.CancelRequest(task_id=p.task_id, reason="not needed", actor="orch"))
    assert sorted(resp.cancelled_task_ids) == sorted([p.task_id, hard.task_id])
    assert "not needed" in (await get(stubs, hard.task_id)).last_error
    assert await status(stubs, soft.task_id) == "ready"
    # A new task cannot hard-depend on a cancelled one.
    msg = await refused(
        stubs.tasks.Submit(pb.SubmitRequest(task=spec("late", deps=[p.task_id]))), Code.FAILED_PRECONDITION
    )
    assert "cancelled" in msg


async def test_idempotency_key_returns_the_first_task(stubs):
    first = await stubs.tasks.Submit(pb.SubmitRequest(task=spec("t", idempotency_key="k1")))
    again = await stubs.tasks.Submit(pb.SubmitRequest(task=spec("t", idempotency_key="k1")))
    assert (again.task.task_id, again.duplicate, first.duplicate) == (first.task.task_id, True, False)
    await refused(
        stubs.tasks.Submit(pb.SubmitRequest(task=spec("other", idempotency_key="k1"))), Code.ALREADY_EXISTS
    )
    assert len(await all_tasks(stubs)) == 1


async def test_graph_idempotency_compares_the_parent_and_prerequisites_of_a_matched_node(stubs):
    """A retried graph matches its first submission; a node whose key was used for a task with
    another parent or other prerequisites is ALREADY_EXISTS, and nothing of that graph is stored."""
    first = await graph(
        stubs,
        node("a", idempotency_key="ka"),
        node("b", ["a"], idempotency_key="kb"),
        node("c", parent="a", idempotency_key="kc"),
    )
    again = await graph(
        stubs,
        node("a", idempotency_key="ka"),
        node("b", ["a"], idempotency_key="kb"),
        node("c", parent="a", idempotency_key="kc"),
    )
    assert dict(again.task_ids) == dict(first.task_ids)
    before = len(await all_tasks(stubs))
    other_deps = graph(stubs, node("a", idempotency_key="ka"), node("b", idempotency_key="kb"))
    assert "different parent or different prerequisites" in await refused(other_deps, Code.ALREADY_EXISTS)
    other_parent = graph(
        stubs, node("x"), node("a", idempotency_key="ka"), node("c", parent="x", idempotency_key="kc")
    )
    assert "nodes[2]" in await refused(other_parent, Code.ALREADY_EXISTS)
    assert len(await all_tasks(stubs)) == before


async def test_get_tree_counts_statuses_and_progress(stubs):
    await register(stubs, "w", capacity=5)
    g = await graph(
        stubs,
        node("root", retries=0),
        node("c1", parent="root"),
        node("c2", parent="root"),
        node("g1", parent="c1"),
    )
    # Lease everything ready, finish c1, report progress 50 on c2.
    leased = {a.task.spec.title: a for a in await claim(stubs, "w", n=5)}
    assert set(leased) == {"root", "c1", "c2", "g1"}
    await complete(stubs, leased["c1"], "w")
    c2 = leased["c2"]
    await stubs.tasks.ExtendLease(
        pb.ExtendLeaseRequest(task_id=c2.task.task_id, agent_id="w", attempt=c2.attempt, progress=50)
    )
    await fail(stubs, leased["g1"], "w", final=True)
    tree = await stubs.tasks.GetTree(pb.GetTreeRequest(task_id=g.task_ids["root"]))
    assert [t.spec.title for t in tree.tasks][0] == "root"
    assert {t.spec.title for t in tree.tasks} == {"root", "c1", "c2", "g1"}
    assert dict(tree.status_counts) == {
        "TASK_STATUS_RUNNING": 2,
        "TASK_STATUS_COMPLETED": 1,
        "TASK_STATUS_FAILED": 1,
    }
    assert tree.progress == (0 + 100 + 50 + 100) / 4
    sub = await stubs.tasks.GetTree(pb.GetTreeRequest(task_id=g.task_ids["c1"]))
    assert [t.spec.title for t in sub.tasks] == ["c1", "g1"]


async def test_list_filters_and_pages(stubs):
    await register(stubs, "w", ["gpu"], capacity=5)
    root = await submit(stubs, "root", session_id="s1")
    for i in range(5):
        await submit(
            stubs,
            f"c{i}",
            parent_id=root.task_id,
            session_id="s1" if i % 2 else "s2",
            tags=["even"] if i % 2 == 0 else ["odd"],
            required_capabilities=["gpu"] if i < 2 else [],
        )
    (leased,) = await claim(stubs, "w")
    titles = lambda ts: sorted(t.spec.title for t in ts)  # noqa: E731
    assert titles(await all_tasks(stubs, session_id="s1")) == ["c1", "c3", "root"]
    assert titles(await all_tasks(stubs, tag="even")) == ["c0", "c2", "c4"]
    assert titles(await all_tasks(stubs, capability="gpu")) == ["c0", "c1"]
    assert titles(await all_tasks(stubs, parent_id=root.task_id)) == ["c0", "c1", "c2", "c3", "c4"]
    assert [t.task_id for t in await all_tasks(stubs, agent_id="w")] == [leased.task.task_id]
    assert len(await all_tasks(stubs, status=pb.TASK_STATUS_READY)) == 5
    assert titles(await all_tasks(stubs, status=pb.TASK_STATUS_READY, tag="odd", session_id="s1")) == [
        "c1",
        "c3",
    ]

    seen, token = [], ""
    for _ in range(3):
        page = await stubs.tasks.List(pb.ListTasksRequest(page_size=2, page_token=token))
        seen += [t.spec.title for t in page.tasks]
        token = page.next_page_token
    assert seen == ["root", "c0", "c1", "c2", "c3", "c4"] and token == ""
    await refused(stubs.tasks.List(pb.ListTasksRequest(page_token="garbage!")), Code.INVALID_ARGUMENT)
