"""What a caller with a valid token cannot forge or read with auth on: the audit fields name its
authenticated identity (#22.16), and a conversation shows it only the messages it sent or
received, however it joined it (#22.17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as mpb
from broker.pb import tasks_pb2 as tpb
from broker.server import Broker, start_server
from tests.conftest import Stubs, make_settings

from .security_support import authed_stubs, issue


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The ``broker`` fixture's broker (on the backend --backend names) checks tokens."""
    return {"auth": "token"}


async def _history_actors(stubs: Stubs, task_id: str) -> list[str]:
    got = await stubs.tasks.GetHistory(tpb.GetHistoryRequest(task_id=task_id))
    return [t.actor for t in got.transitions]


async def test_audit_fields_record_the_callers_identity_not_what_it_claims(tmp_path: Path) -> None:
    b = await start_server(make_settings(tmp_path, auth="token"))
    planner = authed_stubs(b.address, issue(b.settings.db, "planner", "orchestrator"))
    fleet = authed_stubs(b.address, issue(b.settings.db, "planners-*", "orchestrator"))
    try:
        forged = await planner.tasks.Submit(
            tpb.SubmitRequest(task=tpb.TaskSpec(title="t", submitted_by="admin"))
        )
        tid = forged.task.task_id
        assert forged.task.spec.submitted_by == "planner (note: admin)"
        unnamed = await planner.tasks.Submit(tpb.SubmitRequest(task=tpb.TaskSpec(title="u")))
        assert unnamed.task.spec.submitted_by == "planner"
        await planner.tasks.Cancel(tpb.CancelRequest(task_id=tid, actor="admin", reason="r"))
        actors = await _history_actors(planner, tid)
        assert actors[0] == "planner (note: admin)"  # submitted
        assert actors[-1] == "planner (note: admin)"  # cancelled
        assert "admin" not in set(actors)
        await planner.tasks.Cancel(tpb.CancelRequest(task_id=unnamed.task.task_id))
        assert (await _history_actors(planner, unnamed.task.task_id))[-1] == "planner"

        graph = await planner.tasks.SubmitGraph(
            tpb.SubmitGraphRequest(
                nodes=[tpb.GraphNode(key="a", task=tpb.TaskSpec(title="a", submitted_by="root"))]
            )
        )
        assert graph.tasks[0].spec.submitted_by == "planner (note: root)"
        replayed = await planner.tasks.Replay(tpb.ReplayRequest(task_id=tid, actor="admin"))
        assert replayed.task.spec.submitted_by == "planner (note: admin)"
        session = await planner.tasks.CreateSession(tpb.CreateSessionRequest(initiated_by="admin"))
        assert session.initiated_by == "planner (note: admin)"
        ended = await planner.tasks.CancelSession(
            tpb.CancelSessionRequest(session_id=session.session_id, actor="admin")
        )
        assert ended.session.session_id == session.session_id
        # A fleet token may name one of its members; anything else is its note.
        member = await fleet.tasks.Submit(
            tpb.SubmitRequest(task=tpb.TaskSpec(title="f", submitted_by="planners-7"))
        )
        assert member.task.spec.submitted_by == "planners-7"
        outside = await fleet.tasks.Submit(
            tpb.SubmitRequest(task=tpb.TaskSpec(title="f", submitted_by="admin"))
        )
        assert outside.task.spec.submitted_by == "planners-* (note: admin)"
    finally:
        await planner.channel.close()
        await fleet.channel.close()
        await b.stop(0.2)


async def test_an_overlong_claim_is_refused_naming_the_field(tmp_path: Path) -> None:
    b = await start_server(make_settings(tmp_path, auth="token"))
    planner = authed_stubs(b.address, issue(b.settings.db, "planner", "orchestrator"))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await planner.tasks.Submit(
                tpb.SubmitRequest(task=tpb.TaskSpec(title="t", submitted_by="x" * 129))
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "submitted_by" in (err.value.details() or "")
    finally:
        await planner.channel.close()
        await b.stop(0.2)


async def test_without_auth_the_audit_fields_are_kept_as_given(tmp_path: Path) -> None:
    b = await start_server(make_settings(tmp_path))
    stubs = authed_stubs(b.address, None)
    try:
        t = await stubs.tasks.Submit(tpb.SubmitRequest(task=tpb.TaskSpec(title="t", submitted_by="ci-job-7")))
        assert t.task.spec.submitted_by == "ci-job-7"
        await stubs.tasks.Cancel(tpb.CancelRequest(task_id=t.task.task_id, actor="alice"))
        assert (await _history_actors(stubs, t.task.task_id))[-1] == "alice"
    finally:
        await stubs.channel.close()
        await b.stop(0.2)


async def _register(admin: Stubs, *agents: str) -> None:
    for a in agents:
        await admin.agents.Register(apb.RegisterRequest(agent_id=a, max_concurrent_tasks=1))


async def test_a_conversation_shows_each_caller_only_what_it_sent_or_received(broker: Broker) -> None:
    """#22.17: the planner sends the first message under plan-1; two workers then talk in it.
    The planner does not read their messages (it read 6 of 6 before), by listing the
    conversation or by id; each worker sees its own; an admin sees all."""
    db, address = broker.settings.db, broker.address
    admin = authed_stubs(address, issue(db, "root", "admin"))
    planner = authed_stubs(address, issue(db, "planner", "orchestrator"))
    w1 = authed_stubs(address, issue(db, "w1"))
    fleet = authed_stubs(address, issue(db, "w*"))
    try:
        await _register(admin, "planner", "w1", "w2", "x9")

        async def send(stubs: Stubs, sender: str, to: str) -> str:
            req = mpb.SendRequest(
                sender_id=sender, target=mpb.Target(agent_id=to), payload=b"x", conversation_id="plan-1"
            )
            return (await stubs.messaging.Send(req)).message_ids[0]

        first = await send(planner, "planner", "w1")  # the planner squats plan-1
        between = [await send(w1, "w1", "w2"), await send(admin, "w2", "w1"), await send(admin, "w2", "x9")]

        async def listed(stubs: Stubs) -> list[str]:
            got = await stubs.messaging.ListMessages(mpb.ListMessagesRequest(conversation_id="plan-1"))
            return [m.message_id for m in got.messages]

        assert await listed(planner) == [first]
        for mid in between:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await planner.messaging.GetMessage(mpb.GetMessageRequest(message_id=mid))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert await listed(w1) == [first, between[0], between[1]]
        assert await listed(fleet) == [first, *between]  # w1 and w2 are both in the fleet w*
        assert await listed(admin) == [first, *between]
        # Naming another agent as sender or recipient is still refused outright.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await planner.messaging.ListMessages(mpb.ListMessagesRequest(sender_id="w1"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # And naming oneself with a conversation lists one's own part of it.
        mine = await w1.messaging.ListMessages(
            mpb.ListMessagesRequest(conversation_id="plan-1", recipient_id="w1")
        )
        assert [m.message_id for m in mine.messages] == [first, between[1]]
    finally:
        for s in (admin, planner, w1, fleet):
            await s.channel.close()
