"""Each attack of issue 11, replayed by an agent holding a valid token for another subject
(mallory against alice): all refused, and alice's state read back unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as mpb
from broker.pb import tasks_pb2 as tpb
from broker.server import Broker, start_server
from tests.conftest import Stubs, make_settings, next_within

from .security_support import authed_stubs, issue


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[tuple[Broker, Stubs, Stubs, str, str, int]]:
    """alice holds a delivered message and a task lease; mallory is registered with a token."""
    b = await start_server(make_settings(tmp_path, auth="token"))
    admin = authed_stubs(b.address, issue(b.settings.db, "ops", "admin"))
    alice = authed_stubs(b.address, issue(b.settings.db, "alice"))
    mallory = authed_stubs(b.address, issue(b.settings.db, "mallory"))
    try:
        for who, stubs in (("ops", admin), ("alice", alice), ("mallory", mallory)):
            await stubs.agents.Register(
                apb.RegisterRequest(
                    agent_id=who, endpoint=f"http://{who}", capabilities=[who], max_concurrent_tasks=1
                )
            )
        sent = await admin.messaging.Send(
            mpb.SendRequest(sender_id="ops", target=mpb.Target(agent_id="alice"), payload=b"for alice only")
        )
        sub = alice.messaging.Subscribe(mpb.SubscribeRequest(agent_id="alice"))
        await next_within(sub)
        task = await admin.tasks.Submit(
            tpb.SubmitRequest(task=tpb.TaskSpec(title="t", required_capabilities=["alice"]))
        )
        lease = (await alice.tasks.Claim(tpb.ClaimRequest(agent_id="alice", max_tasks=1))).assignments[0]
        assert lease.task.task_id == task.task.task_id
        yield b, admin, mallory, sent.message_ids[0], lease.task.task_id, lease.attempt
        sub.cancel()
    finally:
        for s in (admin, alice, mallory):
            await s.channel.close()
        await b.stop(0.2)


async def _refused(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code()


PD = grpc.StatusCode.PERMISSION_DENIED


async def test_every_listed_attack_is_refused_and_changes_nothing(scene) -> None:  # type: ignore[no-untyped-def]
    _, admin, m, mid, tid, attempt = scene
    # Register as an existing agent id (take over its endpoint and capabilities).
    assert (
        await _refused(
            m.agents.Register(
                apb.RegisterRequest(agent_id="alice", endpoint="http://evil", max_concurrent_tasks=1)
            )
        )
        == PD
    )
    # Subscribe as another agent to read its payloads.
    sub = m.messaging.Subscribe(mpb.SubscribeRequest(agent_id="alice"))
    assert await _refused(sub.read()) == PD
    # Ack, nack or requeue another agent's messages by naming it (or by naming oneself).
    assert await _refused(m.messaging.Ack(mpb.AckRequest(agent_id="alice", message_ids=[mid]))) == PD
    assert (
        await _refused(m.messaging.Nack(mpb.NackRequest(agent_id="alice", message_ids=[mid], reject=True)))
        == PD
    )
    assert await _refused(m.messaging.Ack(mpb.AckRequest(agent_id="mallory", message_ids=[mid]))) == PD
    assert await _refused(m.messaging.Requeue(mpb.RequeueRequest(message_ids=[mid]))) == PD
    # Complete or fail another agent's task; its holder and attempt are not readable either.
    assert await _refused(m.tasks.Get(tpb.GetTaskRequest(task_id=tid))) == PD
    assert (
        await _refused(m.tasks.Complete(tpb.CompleteRequest(task_id=tid, agent_id="alice", attempt=attempt)))
        == PD
    )
    assert await _refused(m.tasks.Fail(tpb.FailRequest(task_id=tid, agent_id="alice", attempt=attempt))) == PD
    code = await _refused(
        m.tasks.Complete(tpb.CompleteRequest(task_id=tid, agent_id="mallory", attempt=attempt))
    )
    assert code != grpc.StatusCode.OK
    # Deregister any agent.
    assert await _refused(m.agents.Deregister(apb.DeregisterRequest(agent_id="alice"))) == PD
    # Read every payload with ListMessages, or one by id.
    assert await _refused(m.messaging.ListMessages(mpb.ListMessagesRequest())) == PD
    assert (
        await _refused(m.messaging.GetMessage(mpb.GetMessageRequest(message_id=mid)))
        == grpc.StatusCode.NOT_FOUND
    )
    # Spoof the sender.
    spoof = mpb.SendRequest(sender_id="alice", target=mpb.Target(agent_id="mallory"), payload=b"x")
    assert await _refused(m.messaging.Send(spoof)) == PD
    # Put an agent into maintenance.
    hb = apb.HeartbeatRequest(agent_id="alice", status=apb.AGENT_STATUS_MAINTENANCE)
    assert await _refused(m.agents.Heartbeat(hb)) == PD

    agent = await admin.agents.GetAgent(apb.GetAgentRequest(agent_id="alice"))
    assert (agent.endpoint, agent.status) == ("http://alice", apb.AGENT_STATUS_AVAILABLE)
    msg = await admin.messaging.GetMessage(mpb.GetMessageRequest(message_id=mid))
    assert (msg.status, msg.recipient_id) == (mpb.MESSAGE_STATUS_DELIVERED, "alice")
    task = await admin.tasks.Get(tpb.GetTaskRequest(task_id=tid))
    assert (task.status, task.assigned_agent_id, task.attempt) == (tpb.TASK_STATUS_RUNNING, "alice", attempt)
