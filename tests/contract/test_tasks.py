"""Contract: submit (single, graphs, limits, idempotency), leases in order within capacity,
extend, completion, failure with retries and backoff, cancel cascades, sweeps, retention, reads
and history."""

from __future__ import annotations

import pytest

from broker.errors import AlreadyExists, FailedPrecondition, NotFound, ResourceExhausted
from broker.models.tasks import (
    CancelInput,
    CompleteInput,
    DependencyInput,
    DepType,
    ExtendInput,
    FailInput,
    PlannedNode,
    TaskFilter,
    TaskStatus,
)

from .helpers import T0, S, node, register, spec, status, submit

HARD, SOFT = DepType.HARD, DepType.SOFT


@pytest.fixture
def contract_settings():
    return {"max_depth": 3, "default_lease_timeout_s": 60.0}


async def lease(store, agent_id, n=10, now=T0):
    return (await store.lease_tasks(agent_id, n, now)).assignments


def done(a, agent_id="w", result=b""):
    return CompleteInput(task_id=a.task.task_id, agent_id=agent_id, attempt=a.attempt, result=result)


def failed(a, agent_id="w", error="boom", non_retryable=False):
    return FailInput(
        task_id=a.task.task_id, agent_id=agent_id, attempt=a.attempt, error=error, non_retryable=non_retryable
    )


async def test_a_submitted_task_is_ready_and_its_history_starts(store):
    (t,) = await submit(store, spec("t", tags=["b", "a"], metadata={"k": 1}))
    got = await store.get_task(t.task_id)
    assert got.status is TaskStatus.READY and got.tags == ("a", "b") and got.metadata == {"k": 1}
    assert got.lease_timeout_us == 60 * S and got.attempt == 0
    trail = await store.task_history(t.task_id)
    assert [(tr.from_status, tr.to_status) for tr in trail][-1][1] is TaskStatus.READY
    with pytest.raises(NotFound):
        await store.get_task("t-nope")


async def test_leases_go_best_first_to_agents_covering_the_capabilities_within_capacity(store):
    await register(store, "w", ["gpu"], slots=2)
    await register(store, "plain", [], slots=5)
    low, high, gpu, mid = await submit(
        store,
        spec("low", priority=1),
        spec("high", priority=9),
        spec("gpu", required_capabilities=["gpu"]),
        spec("mid"),
    )
    assert [a.task.task_id for a in await lease(store, "plain")] == [high.task_id, mid.task_id, low.task_id]
    (a,) = await lease(store, "w")
    assert a.task.task_id == gpu.task_id and a.attempt == 1 and a.lease_expires_at == T0 + 60 * S
    t = await store.get_task(gpu.task_id)
    assert (t.status, t.assigned_agent_id, t.attempt) == (TaskStatus.RUNNING, "w", 1)
    assert (await store.get_agent("w")).current_task_count == 1
    assert (await store.get_agent("plain")).current_task_count == 3


async def test_an_agent_gets_no_more_than_its_free_capacity(store):
    await register(store, "w", slots=2)
    await submit(store, *(spec(f"t{i}") for i in range(5)))
    assert len(await lease(store, "w", 10)) == 2
    assert await lease(store, "w", 10) == []


async def test_maintenance_and_reported_capacity_limit_leases(store):
    from broker.models.agents import AgentStatus

    await register(store, "w", slots=4)
    await submit(store, *(spec(f"t{i}") for i in range(4)))
    await store.heartbeat("w", AgentStatus.MAINTENANCE, None, T0)
    assert await lease(store, "w") == []
    await store.heartbeat("w", AgentStatus.AVAILABLE, 1, T0)
    assert len(await lease(store, "w")) == 1


async def test_returned_leases_are_ready_again_without_counting_the_attempt(store):
    await register(store, "w")
    await submit(store, spec("t"))
    (a,) = await lease(store, "w")
    await store.return_leases("w", [(a.task.task_id, a.attempt)], T0)
    t = await store.get_task(a.task.task_id)
    assert (t.status, t.attempt, t.assigned_agent_id) == (TaskStatus.READY, 0, None)
    assert (await store.get_agent("w")).current_task_count == 0


async def test_extend_moves_the_lease_and_refuses_a_stale_reference(store):
    await register(store, "w")
    await submit(store, spec("t"))
    (a,) = await lease(store, "w")
    ref = dict(task_id=a.task.task_id, agent_id="w")
    until, _ = await store.extend_lease(
        ExtendInput(**ref, attempt=1, progress=40, extension_us=120 * S), T0 + S
    )
    assert until == T0 + 121 * S
    t = await store.get_task(a.task.task_id)
    assert t.lease_expires_at == until and t.progress == 40
    with pytest.raises(FailedPrecondition):
        await store.extend_lease(ExtendInput(**ref, attempt=2), T0 + S)
    with pytest.raises(FailedPrecondition):
        await store.extend_lease(ExtendInput(task_id=a.task.task_id, agent_id="other", attempt=1), T0 + S)


async def test_completion_stores_the_result_frees_capacity_and_readies_dependents(store):
    await register(store, "w")
    res = await store.submit_tasks([node("a"), node("b", deps=[("a", HARD)])], T0)
    a_id, b_id = res.keys["a"], res.keys["b"]
    assert await status(store, b_id) == "blocked"
    (a,) = await lease(store, "w")
    task, _ = await store.complete_task(done(a, result=b"42"), T0 + S)
    assert task.status is TaskStatus.COMPLETED and task.result == b"42" and task.finished_at == T0 + S
    assert await status(store, b_id) == "ready"
    assert (await store.get_agent("w")).current_task_count == 0
    with pytest.raises(FailedPrecondition):
        await store.complete_task(done(a), T0 + 2 * S)  # already finished
    assert a_id == a.task.task_id


async def test_complete_tasks_judges_each_on_its_own(store):
    await register(store, "w")
    await submit(store, spec("x"), spec("y"))
    a, b = await lease(store, "w")
    stale = CompleteInput(task_id=b.task.task_id, agent_id="w", attempt=7)
    results, _ = await store.complete_tasks([done(a), stale], T0 + S)
    assert results[0].status is TaskStatus.COMPLETED and isinstance(results[1], FailedPrecondition)
    assert await status(store, b.task.task_id) == "running"


async def test_a_failed_attempt_retries_after_backoff_then_fails_for_good(store):
    await register(store, "w")
    (t,) = await submit(store, spec("t", max_retries=1, backoff_initial_us=10 * S))
    (a,) = await lease(store, "w")
    task, _ = await store.fail_task(failed(a), T0 + S)
    assert task.status is TaskStatus.READY and task.last_error == "boom"
    due = task.next_attempt_at
    assert due is not None and T0 + 11 * S <= due < T0 + 21 * S  # a 10 s backoff, jittered
    assert await lease(store, "w", now=due - 1) == []  # still backing off
    await store.release_backoffs(due)
    (a2,) = await lease(store, "w", now=due)
    assert a2.attempt == 2
    task, _ = await store.fail_task(failed(a2), T0 + 12 * S)
    assert task.status is TaskStatus.FAILED


async def test_a_repeated_fail_is_recognised_by_what_its_attempt_stored(store):
    """The same Fail again (holder, attempt, error, retryability) answers the task as it is, without
    spending a retry; any other Fail of that attempt is refused and changes nothing."""
    await register(store, "w")
    (t,) = await submit(store, spec("t", max_retries=3, backoff_initial_us=0))
    (a,) = await lease(store, "w")
    first, _ = await store.fail_task(failed(a), T0 + S)
    again, _ = await store.fail_task(failed(a), T0 + 2 * S)
    assert first.status is again.status is TaskStatus.READY and again.attempt == first.attempt == 1
    next_attempt = FailInput(task_id=t.task_id, agent_id="w", attempt=2, error="boom")
    others = (failed(a, error="other"), failed(a, non_retryable=True), failed(a, agent_id="v"), next_attempt)
    for other in others:
        with pytest.raises(FailedPrecondition):
            await store.fail_task(other, T0 + 3 * S)
    history = await store.task_history(t.task_id)
    assert [tr.to_status for tr in history].count(TaskStatus.READY) == 2  # submitted, one retry


async def test_a_non_retryable_failure_fails_at_once_and_settles_dependents_by_kind(store):
    await register(store, "w")
    res = await store.submit_tasks(
        [node("p"), node("hard", deps=[("p", HARD)]), node("soft", deps=[("p", SOFT)])], T0
    )
    (a,) = await lease(store, "w")
    task, _ = await store.fail_task(failed(a, non_retryable=True), T0 + S)
    assert task.status is TaskStatus.FAILED
    assert await status(store, res.keys["hard"]) == "cancelled"
    assert await status(store, res.keys["soft"]) == "ready"


async def test_submit_checks_references_limits_and_failed_prerequisites(store):
    with pytest.raises(NotFound):
        await submit(store, spec("orphan", parent_id="t-missing"))
    with pytest.raises(NotFound):
        await submit(store, spec("x", depends_on=[DependencyInput(task_id="t-missing")]))
    (root,) = await submit(store, spec("root"))
    parent = root
    for level in range(3):
        (parent,) = await submit(store, spec(f"l{level}", parent_id=parent.task_id))
    assert parent.level == 3
    with pytest.raises(ResourceExhausted):
        await submit(store, spec("too deep", parent_id=parent.task_id))
    await register(store, "w")
    (p,) = await submit(store, spec("p", max_retries=0, priority=10))
    (a,) = await lease(store, "w", 1)
    assert a.task.task_id == p.task_id
    await store.fail_task(failed(a), T0)
    with pytest.raises(FailedPrecondition):
        await submit(store, spec("after failure", depends_on=[DependencyInput(task_id=p.task_id)]))


async def test_a_graph_is_stored_all_or_nothing(store):
    before, _ = await store.list_tasks(TaskFilter())
    with pytest.raises(NotFound):
        await store.submit_tasks(
            [node("ok"), node("bad", depends_on=[DependencyInput(task_id="t-nope")])], T0
        )
    assert (await store.list_tasks(TaskFilter()))[0] == before


async def test_an_idempotency_key_returns_the_first_task_or_refuses_another_spec(store):
    (first,) = await submit(store, spec("t", idempotency_key="k"))
    res = await store.submit_tasks([PlannedNode(where="task", spec=spec("t", idempotency_key="k"))], T0 + S)
    assert res.duplicate == [True] and res.tasks[0].task_id == first.task_id
    with pytest.raises(AlreadyExists):
        await submit(store, spec("other", idempotency_key="k"))


async def test_cancel_with_cascade_takes_descendants_and_hard_dependents_and_tells_the_holder(store):
    await register(store, "w")
    res = await store.submit_tasks(
        [
            node("root"),
            node("child", parent="root"),
            node("grandchild", parent="child"),
            node("dep", deps=[("root", HARD)]),
        ],
        T0,
    )
    k = res.keys
    running = {a.task.task_id for a in await lease(store, "w")}
    assert running == {k["root"], k["child"], k["grandchild"]}  # "dep" waits for root
    ids, changes = await store.cancel_task(
        CancelInput(task_id=k["root"], cascade=True, reason="stop"), T0 + S
    )
    assert set(ids) == {k["root"], k["child"], k["grandchild"], k["dep"]}
    for key in k:
        assert await status(store, k[key]) == "cancelled"
    # Whoever held a lease on a cancelled task is told, and its capacity is free again.
    assert {(agent, c.task_id) for agent, c in changes.cancellations} == {("w", t) for t in running}
    assert (await store.get_agent("w")).current_task_count == 0


async def test_cancel_without_cascade_leaves_children(store):
    res = await store.submit_tasks([node("root"), node("child", parent="root")], T0)
    ids, _ = await store.cancel_task(CancelInput(task_id=res.keys["root"]), T0 + S)
    assert ids == [res.keys["root"]]
    assert await status(store, res.keys["child"]) == "ready"


async def test_sweep_ends_lapsed_leases_as_failed_attempts(store):
    await register(store, "w")
    (t,) = await submit(store, spec("t", lease_timeout_us=5 * S, backoff_initial_us=0))
    (a,) = await lease(store, "w")
    await store.sweep_tasks(T0 + 4 * S)
    assert await status(store, t.task_id) == "running"
    await store.sweep_tasks(T0 + 6 * S)
    after = await store.get_task(t.task_id)
    assert after.status is TaskStatus.READY and after.assigned_agent_id is None and after.attempt == 1
    assert (await store.get_agent("w")).current_task_count == 0
    (again,) = await lease(store, "w", now=T0 + 7 * S)
    assert again.attempt == 2


async def test_purge_deletes_finished_tasks_past_retention_only(store):
    await register(store, "w")
    (old,) = await submit(store, spec("old"))
    (a,) = await lease(store, "w")
    await store.complete_task(done(a), T0 + S)
    (live,) = await submit(store, spec("live"))
    assert await store.purge_tasks(T0 + S) == 0
    assert await store.purge_tasks(T0 + 2 * S) == 1
    with pytest.raises(NotFound):
        await store.get_task(old.task_id)
    assert await status(store, live.task_id) == "ready"


async def test_list_tasks_filters_and_pages_in_submission_order(store):
    ts = await submit(
        store,
        *(
            spec(f"t{i}", session_id="s1" if i % 2 else None, tags=["even"] if i % 2 == 0 else [])
            for i in range(5)
        ),
    )
    ids = [t.task_id for t in ts]
    page, last = await store.list_tasks(TaskFilter(page_size=2))
    assert [t.task_id for t in page] == ids[:2] and last is not None
    rest, _ = await store.list_tasks(TaskFilter(after=last))
    assert [t.task_id for t in rest] == ids[2:]
    assert [t.task_id for t in (await store.list_tasks(TaskFilter(session_id="s1")))[0]] == [ids[1], ids[3]]
    assert [t.task_id for t in (await store.list_tasks(TaskFilter(tag="even")))[0]] == ids[0::2]
    assert [t.task_id for t in (await store.list_tasks(TaskFilter(status=TaskStatus.READY)))[0]] == ids


async def test_history_records_every_transition_in_order(store):
    await register(store, "w")
    (t,) = await submit(store, spec("t", max_retries=1, backoff_initial_us=0))
    (a,) = await lease(store, "w")
    await store.fail_task(failed(a), T0 + S)
    await store.release_backoffs(T0 + S)
    (a2,) = await lease(store, "w", now=T0 + 2 * S)
    await store.complete_task(done(a2), T0 + 3 * S)
    trail = await store.task_history(t.task_id)
    steps = [(tr.to_status.value, tr.attempt) for tr in trail]
    assert steps[-4:] == [("running", 1), ("ready", 1), ("running", 2), ("completed", 2)]
    assert [tr.at for tr in trail] == sorted(tr.at for tr in trail)
