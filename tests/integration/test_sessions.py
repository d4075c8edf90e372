"""Orchestration sessions through the API: created, read and listed; their status following their
tasks through each path (all completed after close, a root's hard failure, a cancellation); children
inheriting the session; ended sessions and spent budgets refusing tasks; retention archiving then
deleting; bad input refused with nothing changed."""

from __future__ import annotations

import logging

import grpc
from google.protobuf import struct_pb2

from broker.pb import tasks_pb2 as pb
from tests.conftest import next_within

from . import tasks_helpers as th

SS = pb.SessionStatus
C = grpc.StatusCode


def sname(status: int) -> str:
    return SS.Name(status).removeprefix("SESSION_STATUS_").lower()


async def create(stubs, **kw) -> pb.Session:
    return await stubs.tasks.CreateSession(pb.CreateSessionRequest(**kw))


async def get(stubs, session_id: str) -> pb.Session:
    return await stubs.tasks.GetSession(pb.GetSessionRequest(session_id=session_id))


async def test_a_session_is_created_with_its_fields_and_read_back(stubs, caplog):
    caplog.set_level(logging.INFO, logger="broker")  # the lifecycle lines are made, and make it
    ctx = struct_pb2.Struct()
    ctx.update({"goal": "quarterly report", "sources": 3})
    s = await create(
        stubs,
        session_id="report-q3",
        name="Q3 report",
        initiated_by="planner",
        context=ctx,
        labels={"team": "finance"},
        max_tasks=10,
    )
    assert (s.session_id, s.name, s.initiated_by, sname(s.status)) == (
        "report-q3",
        "Q3 report",
        "planner",
        "active",
    )
    assert dict(s.labels) == {"team": "finance"} and s.max_tasks == 10
    assert s.context["goal"] == "quarterly report" and s.created_at.seconds > 0
    child = await create(stubs, name="charts", parent_session_id="report-q3")
    assert child.session_id.startswith("s-") and child.parent_session_id == "report-q3"
    again = await get(stubs, "report-q3")
    assert again.name == "Q3 report" and dict(again.task_counts) == {} and again.progress == 0
    created = [r for r in caplog.records if r.getMessage() == "session created"]
    assert [r.session_id for r in created] == ["report-q3", child.session_id]  # type: ignore[attr-defined]


async def test_all_tasks_finished_after_close_completes_the_session_and_children_inherit_it(stubs):
    await th.register(stubs, "w", ["sum"], capacity=5)
    s = await create(stubs, name="plan")
    watch = stubs.tasks.Watch(pb.WatchTasksRequest(session_id=s.session_id))
    root = await th.submit(stubs, "root", required_capabilities=["sum"], session_id=s.session_id)
    child = await th.submit(stubs, "child", required_capabilities=["sum"], parent_id=root.task_id)
    assert child.spec.session_id == s.session_id  # inherited from its parent
    leased = {a.task.task_id: a for a in await th.claim(stubs, "w", 2)}
    await th.complete(stubs, leased[root.task_id], "w")
    await th.complete(stubs, leased[child.task_id], "w")
    got = await get(stubs, s.session_id)
    assert sname(got.status) == "active"  # open: more tasks may come
    assert dict(got.task_counts) == {"completed": 2} and got.progress == 1.0
    closed = await stubs.tasks.CloseSession(pb.CloseSessionRequest(session_id=s.session_id, summary="done"))
    assert sname(closed.status) == "completed" and closed.summary == "done"
    assert closed.status_reason == "closed, and every task finished" and closed.finished_at.seconds > 0
    # Watch(session) carried its tasks' transitions, then the session's end
    seen = set()
    while True:
        ev = await next_within(watch)
        if ev.HasField("session"):
            break
        if th.name(ev.transition.to_status) == "completed":
            seen.add(ev.transition.task_id)
    watch.cancel()
    assert seen == {root.task_id, child.task_id}
    assert not ev.HasField("transition") and ev.session.session_id == s.session_id
    assert sname(ev.session.status) == "completed" and dict(ev.session.task_counts) == {"completed": 2}


async def test_a_closed_session_completes_when_its_last_task_finishes(stubs, caplog):
    caplog.set_level(logging.INFO, logger="broker")
    await th.register(stubs, "w", ["sum"])
    s = await create(stubs)
    t = await th.submit(stubs, "only", required_capabilities=["sum"], session_id=s.session_id)
    closed = await stubs.tasks.CloseSession(pb.CloseSessionRequest(session_id=s.session_id))
    assert sname(closed.status) == "active" and closed.closed_at.seconds > 0
    (a,) = await th.claim(stubs, "w")
    assert a.task.task_id == t.task_id
    await th.complete(stubs, a, "w")
    assert sname((await get(stubs, s.session_id)).status) == "completed"
    ended = [r for r in caplog.records if r.getMessage() == "session ended"]
    assert [(r.session_id, r.status) for r in ended] == [(s.session_id, "completed")]  # type: ignore[attr-defined]


async def test_a_root_task_failing_for_good_fails_the_open_session_and_it_takes_no_more_tasks(stubs):
    await th.register(stubs, "w", ["sum"])
    s = await create(stubs)
    t = await th.submit(stubs, "root", required_capabilities=["sum"], session_id=s.session_id, retries=0)
    (a,) = await th.claim(stubs, "w")
    await th.fail(stubs, a, "w", "no data")
    got = await get(stubs, s.session_id)
    assert (sname(got.status), got.status_reason) == ("failed", "a root task failed for good")
    assert dict(got.task_counts) == {"failed": 1}
    msg = await th.refused(
        stubs.tasks.Submit(pb.SubmitRequest(task=th.spec("late", session_id=s.session_id))),
        C.FAILED_PRECONDITION,
    )
    assert "task.session_id" in msg and "is failed" in msg
    assert [x.task_id for x in await th.all_tasks(stubs, session_id=s.session_id)] == [t.task_id]


async def test_a_child_failing_after_close_fails_the_session_but_a_retry_does_not(stubs):
    await th.register(stubs, "w", ["sum"], capacity=2)
    s = await create(stubs)
    root = await th.submit(stubs, "root", required_capabilities=["nobody"], session_id=s.session_id)
    child = await th.submit(
        stubs, "child", required_capabilities=["sum"], parent_id=root.task_id, retries=1, backoff=0
    )
    (a,) = await th.claim(stubs, "w")
    await th.fail(stubs, a, "w", "flaky")  # retried: not a failure for good
    assert sname((await get(stubs, s.session_id)).status) == "active"
    (b,) = await th.claim(stubs, "w", wait=5)
    await th.fail(stubs, b, "w", "broken")
    assert await th.status(stubs, child.task_id) == "failed"
    assert sname((await get(stubs, s.session_id)).status) == "active"  # a child, and still open
    await stubs.tasks.Cancel(pb.CancelRequest(task_id=root.task_id))
    closed = await stubs.tasks.CloseSession(pb.CloseSessionRequest(session_id=s.session_id))
    assert sname(closed.status) == "failed" and closed.status_reason == "closed, and every task finished"


async def test_cancelling_a_session_cancels_its_unfinished_tasks_and_tells_the_holder(stubs):
    await th.register(stubs, "w", ["sum"])
    s = await create(stubs)
    running = await th.submit(stubs, "running", required_capabilities=["sum"], session_id=s.session_id)
    waiting = await th.submit(stubs, "waiting", required_capabilities=["sum"], session_id=s.session_id)
    outside = await th.submit(stubs, "outside", required_capabilities=["nobody"])
    watch = stubs.tasks.Watch(pb.WatchTasksRequest(session_id=s.session_id))
    await watch.initial_metadata()
    listen = stubs.tasks.Listen(pb.ListenRequest(agent_id="w"))
    first = await next_within(listen)
    (a,) = first.assignments
    assert a.task.task_id == running.task_id
    resp = await stubs.tasks.CancelSession(
        pb.CancelSessionRequest(session_id=s.session_id, reason="plan abandoned", actor="planner")
    )
    assert sorted(resp.cancelled_task_ids) == sorted([running.task_id, waiting.task_id])
    assert sname(resp.session.status) == "cancelled" and resp.session.status_reason == "plan abandoned"
    told = await next_within(listen)
    assert [(c.task_id, c.reason) for c in told.cancellations] == [(running.task_id, "plan abandoned")]
    listen.cancel()
    events = [await next_within(watch) for _ in range(4)]  # running, leased; two cancelled; the session
    watch.cancel()
    assert sname(events[-1].session.status) == "cancelled"
    assert sorted(e.transition.task_id for e in events[1:3]) == sorted([running.task_id, waiting.task_id])
    assert await th.status(stubs, outside.task_id) == "ready"
    again = await stubs.tasks.CancelSession(pb.CancelSessionRequest(session_id=s.session_id))
    assert list(again.cancelled_task_ids) == []  # a repeat changes nothing
    refused = await th.refused(
        stubs.tasks.CancelSession(pb.CancelSessionRequest(session_id="nope")), C.NOT_FOUND
    )
    assert "nope" in refused


async def test_unknown_session_ids_are_created_on_submit_and_a_budget_is_kept(stubs):
    t = await th.submit(stubs, "implicit", session_id="made-on-submit")
    s = await get(stubs, "made-on-submit")
    assert sname(s.status) == "active" and dict(s.task_counts) == {"ready": 1}
    assert t.spec.session_id == "made-on-submit"
    budget = await create(stubs, max_tasks=2)
    graph = pb.SubmitGraphRequest(
        nodes=[pb.GraphNode(key=k, task=th.spec(k, session_id=budget.session_id)) for k in ("a", "b", "c")]
    )
    msg = await th.refused(stubs.tasks.SubmitGraph(graph), C.FAILED_PRECONDITION)
    assert "budget of 2 tasks" in msg and "nodes[2].task.session_id" in msg
    assert dict((await get(stubs, budget.session_id)).task_counts) == {}  # all or nothing
    for k in ("a", "b"):
        await th.submit(stubs, k, session_id=budget.session_id)
    await th.refused(
        stubs.tasks.Submit(pb.SubmitRequest(task=th.spec("c", session_id=budget.session_id))),
        C.FAILED_PRECONDITION,
    )


async def test_sessions_are_listed_by_filter_one_page_at_a_time(stubs):
    await create(stubs, session_id="p", initiated_by="planner")
    kids = [(await create(stubs, parent_session_id="p", initiated_by="planner")).session_id for _ in range(5)]
    await create(stubs, initiated_by="someone-else")
    await stubs.tasks.CancelSession(pb.CancelSessionRequest(session_id=kids[0]))
    seen, token = [], ""
    while True:
        page = await stubs.tasks.ListSessions(
            pb.ListSessionsRequest(parent_session_id="p", page_size=2, page_token=token)
        )
        assert len(page.sessions) <= 2
        seen += [s.session_id for s in page.sessions]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(kids)
    mine = await stubs.tasks.ListSessions(pb.ListSessionsRequest(initiated_by="planner"))
    assert len(mine.sessions) == 6
    cancelled = await stubs.tasks.ListSessions(pb.ListSessionsRequest(status=SS.SESSION_STATUS_CANCELLED))
    assert [s.session_id for s in cancelled.sessions] == [kids[0]]


async def test_bad_input_is_refused_naming_the_field_and_stores_nothing(stubs):
    await create(stubs, session_id="taken")
    cases = [
        (pb.CreateSessionRequest(session_id="bad id!"), C.INVALID_ARGUMENT, "session_id"),
        (pb.CreateSessionRequest(max_tasks=-1), C.INVALID_ARGUMENT, "max_tasks"),
        (pb.CreateSessionRequest(name="x" * 300), C.INVALID_ARGUMENT, "name"),
        (pb.CreateSessionRequest(parent_session_id="missing"), C.NOT_FOUND, "missing"),
        (pb.CreateSessionRequest(session_id="taken"), C.ALREADY_EXISTS, "taken"),
    ]
    for req, code, word in cases:
        msg = await th.refused(stubs.tasks.CreateSession(req), code)
        assert word in msg, (req, msg)
    await th.refused(stubs.tasks.GetSession(pb.GetSessionRequest(session_id="")), C.INVALID_ARGUMENT)
    await th.refused(
        stubs.tasks.ListSessions(pb.ListSessionsRequest(page_token="garbage")), C.INVALID_ARGUMENT
    )
    await th.refused(stubs.tasks.ListSessions(pb.ListSessionsRequest(status=99)), C.INVALID_ARGUMENT)
    listed = await stubs.tasks.ListSessions(pb.ListSessionsRequest())
    assert [s.session_id for s in listed.sessions] == ["taken"]


async def test_retention_archives_ended_sessions_then_deletes_them_with_their_tasks(broker, stubs):
    await th.register(stubs, "w", ["sum"])
    s = await create(stubs)
    await th.submit(stubs, "one", required_capabilities=["sum"], session_id=s.session_id)
    (a,) = await th.claim(stubs, "w")
    await th.complete(stubs, a, "w")
    await stubs.tasks.CloseSession(pb.CloseSessionRequest(session_id=s.session_id))
    live = await create(stubs)
    later = broker.tasks.clock.now_us() + 1_000_000
    sessions = broker.tasks.sessions
    assert await sessions.archive(later) == 1  # archived; its task is still there
    assert sname((await get(stubs, s.session_id)).status) == "archived"
    assert await broker.storage.purge_tasks(later) == 1
    await sessions.archive(later)
    await th.refused(stubs.tasks.GetSession(pb.GetSessionRequest(session_id=s.session_id)), C.NOT_FOUND)
    assert sname((await get(stubs, live.session_id)).status) == "active"  # untouched
