"""Authorization: every RPC x each role x own/other resource, against a real broker with
``--auth token``. Allowed calls succeed; refused ones get the right status and change nothing
(the whole state is read back through an admin token and compared)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from broker.pb import admin_pb2 as adpb
from broker.pb import admin_pb2_grpc
from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as mpb
from broker.pb import tasks_pb2 as tpb
from broker.security.policy import ANY, POLICY
from broker.server import Broker, start_server
from tests.conftest import Stubs, make_settings, next_within

from .security_support import authed_stubs, issue

OK, PD, NF = "OK", "PERMISSION_DENIED", "NOT_FOUND"

# RPC -> (agent acting as itself, agent naming another, orchestrator itself, orchestrator other).
# Admins may do everything.
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    "Admin/CreateToken": (PD, PD, PD, PD),
    "Admin/ListTokens": (PD, PD, PD, PD),
    "Admin/RevokeToken": (PD, PD, PD, PD),
    "AgentRegistry/Register": (OK, PD, OK, PD),
    "AgentRegistry/Heartbeat": (OK, PD, OK, PD),
    "AgentRegistry/Deregister": (OK, PD, OK, PD),
    "AgentRegistry/GetAgent": (OK, OK, OK, OK),
    "AgentRegistry/ListAgents": (OK, OK, OK, OK),
    "AgentRegistry/WatchAgents": (OK, OK, OK, OK),
    "Messaging/Send": (OK, PD, OK, PD),
    "Messaging/SendBatch": (OK, PD, OK, PD),
    "Messaging/Publish": (OK, PD, OK, PD),  # each entry's confirm carries its status
    "Messaging/Subscribe": (OK, PD, OK, PD),
    "Messaging/Consume": (OK, PD, OK, PD),
    "Messaging/Ack": (OK, PD, OK, PD),
    "Messaging/Nack": (OK, PD, OK, PD),
    "Messaging/GetMessage": (OK, NF, OK, NF),
    "Messaging/ListMessages": (OK, PD, OK, PD),
    "Messaging/ListConversations": (OK, PD, OK, PD),
    "Messaging/Requeue": (PD, PD, PD, PD),
    "Messaging/Purge": (PD, PD, PD, PD),
    # Subscriptions: anyone makes and reads them; deleting or moving one is for its creator.
    "Messaging/CreateSubscription": (OK, OK, OK, OK),
    "Messaging/GetSubscription": (OK, OK, OK, OK),
    "Messaging/ListSubscriptions": (OK, OK, OK, OK),
    "Messaging/DeleteSubscription": (OK, NF, OK, NF),
    "Messaging/Seek": (OK, NF, OK, NF),
    "TaskQueue/Submit": (PD, PD, OK, OK),
    "TaskQueue/SubmitGraph": (PD, PD, OK, OK),
    "TaskQueue/Cancel": (PD, PD, OK, OK),
    "TaskQueue/Replay": (PD, PD, OK, OK),
    "TaskQueue/Get": (PD, PD, OK, OK),
    "TaskQueue/List": (PD, PD, OK, OK),
    "TaskQueue/GetTree": (PD, PD, OK, OK),
    "TaskQueue/GetHistory": (PD, PD, OK, OK),
    "TaskQueue/GetDependencies": (PD, PD, OK, OK),
    "TaskQueue/AddDependency": (PD, PD, OK, OK),
    "TaskQueue/RemoveDependency": (PD, PD, OK, OK),
    "TaskQueue/Watch": (PD, PD, OK, OK),
    "TaskQueue/Claim": (OK, PD, OK, PD),
    "TaskQueue/Listen": (OK, PD, OK, PD),
    "TaskQueue/Work": (OK, PD, OK, PD),
    "TaskQueue/ExtendLease": (OK, PD, OK, PD),
    "TaskQueue/Complete": (OK, PD, OK, PD),
    "TaskQueue/CompleteBatch": (OK, PD, OK, PD),
    "TaskQueue/Fail": (OK, PD, OK, PD),
    "TaskQueue/CreateSession": (PD, PD, OK, OK),
    "TaskQueue/GetSession": (PD, PD, OK, OK),
    "TaskQueue/ListSessions": (PD, PD, OK, OK),
    "TaskQueue/CloseSession": (PD, PD, OK, OK),
    "TaskQueue/CancelSession": (PD, PD, OK, OK),
    "TaskQueue/CreateSchedule": (PD, PD, OK, OK),
    "TaskQueue/GetSchedule": (PD, PD, OK, OK),
    "TaskQueue/ListSchedules": (PD, PD, OK, OK),
    "TaskQueue/PauseSchedule": (PD, PD, OK, OK),
    "TaskQueue/ResumeSchedule": (PD, PD, OK, OK),
    "TaskQueue/DeleteSchedule": (PD, PD, OK, OK),
    "TaskQueue/TriggerSchedule": (PD, PD, OK, OK),
    # Limits are the operator's to set; orchestrators may read them and how the keys stand.
    "TaskQueue/SetConcurrencyLimit": (PD, PD, PD, PD),
    "TaskQueue/DeleteConcurrencyLimit": (PD, PD, PD, PD),
    "TaskQueue/ListConcurrencyLimits": (PD, PD, OK, OK),
    "TaskQueue/ListConcurrencyKeys": (PD, PD, OK, OK),
}


def test_every_rpc_of_every_service_is_in_the_policy_table_and_in_this_test() -> None:
    served = {
        f"/{svc.full_name}/{m.name}"
        for mod in (adpb, apb, mpb, tpb)
        for svc in mod.DESCRIPTOR.services_by_name.values()
        for m in svc.methods
    }
    assert {f"/a2a.broker.v1.{k}" for k in EXPECTED} == served
    # The A2A gateway's service: open to every role; each caller's scope (the tasks it sent) is
    # the gateway's, tested in test_a2a_gateway.py.
    # A2A v0.3's gRPC service too (the same handler through a2a-sdk's compatibility layer).
    from a2a.compat.v0_3 import a2a_v0_3_pb2
    from a2a.types import a2a_pb2

    a2a_served = {
        f"/{svc.full_name}/{m.name}"
        for mod in (a2a_pb2, a2a_v0_3_pb2)
        for svc in mod.DESCRIPTOR.services_by_name.values()
        for m in svc.methods
    }
    assert set(POLICY) == served | a2a_served
    # every A2A row the same (the HTTP bindings check one of them: policy.A2A_POLICY_KEY)
    assert all(POLICY[m].roles == ANY and not POLICY[m].own for m in a2a_served)


@dataclass
class World:
    """Agents ``me`` (the caller's subject), ``other`` and ``peer``, and an admin's stubs."""

    admin: Stubs
    me: str
    other: str
    peer: str
    streams: list[Any] = field(default_factory=list)
    as_agent: Callable[[str], Stubs] | None = None  # stubs acting as an agent (its own token)

    def cap(self, agent: str) -> str:
        return f"cap-{agent}"

    async def message_to(self, target: str, deliver: bool = False) -> str:
        res = await self.admin.messaging.Send(
            mpb.SendRequest(sender_id=self.peer, target=mpb.Target(agent_id=target), payload=b"secret")
        )
        mid = res.message_ids[0]
        if deliver:  # delivered to target on a stream kept open until the case ends
            sub = self.admin.messaging.Subscribe(mpb.SubscribeRequest(agent_id=target))
            self.streams.append(sub)
            got = await next_within(sub)
            assert [m.message_id for m in got.messages] == [mid]
        return mid

    async def dead_letter(self, target: str) -> str:
        mid = await self.message_to(target, deliver=True)
        await self.admin.messaging.Nack(mpb.NackRequest(agent_id=target, message_ids=[mid], reject=True))
        return mid

    async def subscription_of(self, agent: str) -> str:
        """A subscription the agent created (its creator: the agent)."""
        assert self.as_agent is not None
        stubs = self.as_agent(agent)
        try:
            name = f"sub-{agent}"
            await stubs.messaging.CreateSubscription(mpb.CreateSubscriptionRequest(name=name, filter="a.>"))
            return name
        finally:
            await stubs.channel.close()

    async def task(self) -> str:
        spec = tpb.TaskSpec(title="t", required_capabilities=[self.cap(self.peer)])
        return (await self.admin.tasks.Submit(tpb.SubmitRequest(task=spec))).task.task_id

    async def pair(self) -> tuple[str, str]:
        return await self.task(), await self.task()

    async def dependent(self) -> tuple[str, str]:
        """A task (not started) waiting on another: (dependent, prerequisite)."""
        pre = await self.task()
        spec = tpb.TaskSpec(
            title="d", required_capabilities=[self.cap(self.peer)], depends_on=[tpb.Dependency(task_id=pre)]
        )
        return (await self.admin.tasks.Submit(tpb.SubmitRequest(task=spec))).task.task_id, pre

    async def token_of(self, subject: str) -> str:
        """The id of a new token for ``subject``."""
        stub = admin_pb2_grpc.AdminStub(self.admin.channel)
        made = await stub.CreateToken(adpb.CreateTokenRequest(subject=subject))
        return made.info.token_id

    async def session(self) -> str:
        return (await self.admin.tasks.CreateSession(tpb.CreateSessionRequest(name="s"))).session_id

    def schedule_spec(self) -> tpb.ScheduleSpec:
        task = tpb.TaskSpec(title="s", required_capabilities=[self.cap(self.peer)])
        return tpb.ScheduleSpec(interval=duration_pb2.Duration(seconds=3600), task=task)

    async def schedule(self) -> str:
        req = tpb.CreateScheduleRequest(spec=self.schedule_spec())
        return (await self.admin.tasks.CreateSchedule(req)).schedule_id

    async def limit(self) -> str:
        limit = tpb.ConcurrencyLimit(name=f"l-{uuid.uuid4().hex[:8]}", key="tenant-*", max_running=2)
        await self.admin.tasks.SetConcurrencyLimit(tpb.SetConcurrencyLimitRequest(limit=limit))
        return limit.name

    async def cancelled_task(self) -> str:
        tid = await self.task()
        await self.admin.tasks.Cancel(tpb.CancelRequest(task_id=tid))
        return tid

    async def leased_to(self, target: str) -> tuple[str, int]:
        spec = tpb.TaskSpec(title="t", required_capabilities=[self.cap(target)])
        tid = (await self.admin.tasks.Submit(tpb.SubmitRequest(task=spec))).task.task_id
        got = await self.admin.tasks.Claim(tpb.ClaimRequest(agent_id=target, max_tasks=1))
        a = got.assignments[0]
        assert a.task.task_id == tid
        return tid, a.attempt


Build = Callable[[World, str], Awaitable[Any]]  # (world, agent id the request names) -> request


async def _complete(w: World, t: str) -> tpb.CompleteRequest:
    tid, attempt = await w.leased_to(t)
    return tpb.CompleteRequest(task_id=tid, agent_id=t, attempt=attempt, result=b"done")


BUILD: dict[str, Build] = {
    "Admin/CreateToken": lambda w, t: _now(
        adpb.CreateTokenRequest(subject=t, role=adpb.TOKEN_ROLE_ADMIN, note="escalation")
    ),
    "Admin/ListTokens": lambda w, t: _now(adpb.ListTokensRequest()),
    "Admin/RevokeToken": lambda w, t: _then(w.token_of(t), lambda i: adpb.RevokeTokenRequest(token_id=i)),
    "AgentRegistry/Register": lambda w, t: _now(
        apb.RegisterRequest(
            agent_id=t, endpoint="http://taken-over", capabilities=[w.cap(t)], max_concurrent_tasks=5
        )
    ),
    "AgentRegistry/Heartbeat": lambda w, t: _now(
        apb.HeartbeatRequest(agent_id=t, status=apb.AGENT_STATUS_MAINTENANCE)
    ),
    "AgentRegistry/Deregister": lambda w, t: _now(apb.DeregisterRequest(agent_id=t)),
    "AgentRegistry/GetAgent": lambda w, t: _now(apb.GetAgentRequest(agent_id=t)),
    "AgentRegistry/ListAgents": lambda w, t: _now(apb.ListAgentsRequest()),
    "AgentRegistry/WatchAgents": lambda w, t: _now(
        apb.WatchAgentsRequest(agent_ids=[t], include_snapshot=True)
    ),
    "Messaging/Send": lambda w, t: _now(
        mpb.SendRequest(sender_id=t, target=mpb.Target(agent_id=w.peer), payload=b"spoofed")
    ),
    "Messaging/SendBatch": lambda w, t: _now(
        mpb.SendBatchRequest(
            messages=[mpb.SendRequest(sender_id=t, target=mpb.Target(agent_id=w.peer), payload=b"x")]
        )
    ),
    "Messaging/Publish": lambda w, t: _now(
        mpb.PublishRequest(
            sequence=1,
            message=mpb.SendRequest(sender_id=t, target=mpb.Target(agent_id=w.peer), payload=b"spoofed"),
        )
    ),
    "Messaging/Subscribe": lambda w, t: _now(mpb.SubscribeRequest(agent_id=t)),
    "Messaging/Consume": lambda w, t: _now(mpb.ConsumeRequest(subscribe=mpb.SubscribeRequest(agent_id=t))),
    "Messaging/Ack": lambda w, t: _then(
        w.message_to(t, True), lambda m: mpb.AckRequest(agent_id=t, message_ids=[m])
    ),
    "Messaging/Nack": lambda w, t: _then(
        w.message_to(t, True), lambda m: mpb.NackRequest(agent_id=t, message_ids=[m], reject=True)
    ),
    "Messaging/GetMessage": lambda w, t: _then(
        w.message_to(t), lambda m: mpb.GetMessageRequest(message_id=m)
    ),
    "Messaging/ListMessages": lambda w, t: _now(mpb.ListMessagesRequest(recipient_id=t)),
    "Messaging/ListConversations": lambda w, t: _now(mpb.ListConversationsRequest(participant=t)),
    "Messaging/Requeue": lambda w, t: _then(w.dead_letter(t), lambda m: mpb.RequeueRequest(message_ids=[m])),
    "Messaging/Purge": lambda w, t: _then(w.dead_letter(t), lambda m: mpb.PurgeRequest()),
    "Messaging/CreateSubscription": lambda w, t: _now(
        mpb.CreateSubscriptionRequest(name=f"s-{t}", filter="a.*")
    ),
    "Messaging/GetSubscription": lambda w, t: _then(
        w.subscription_of(t), lambda n: mpb.GetSubscriptionRequest(name=n)
    ),
    "Messaging/ListSubscriptions": lambda w, t: _now(mpb.ListSubscriptionsRequest()),
    "Messaging/DeleteSubscription": lambda w, t: _then(
        w.subscription_of(t), lambda n: mpb.DeleteSubscriptionRequest(name=n)
    ),
    "Messaging/Seek": lambda w, t: _then(w.subscription_of(t), lambda n: mpb.SeekRequest(name=n, sequence=1)),
    "TaskQueue/Submit": lambda w, t: _now(
        tpb.SubmitRequest(task=tpb.TaskSpec(title="x", required_capabilities=["z"]))
    ),
    "TaskQueue/SubmitGraph": lambda w, t: _now(
        tpb.SubmitGraphRequest(
            nodes=[tpb.GraphNode(key="a", task=tpb.TaskSpec(title="x", required_capabilities=["z"]))]
        )
    ),
    "TaskQueue/Cancel": lambda w, t: _then(w.task(), lambda i: tpb.CancelRequest(task_id=i)),
    "TaskQueue/Replay": lambda w, t: _then(w.cancelled_task(), lambda i: tpb.ReplayRequest(task_id=i)),
    "TaskQueue/Get": lambda w, t: _then(w.task(), lambda i: tpb.GetTaskRequest(task_id=i)),
    "TaskQueue/List": lambda w, t: _now(tpb.ListTasksRequest()),
    "TaskQueue/GetTree": lambda w, t: _then(w.task(), lambda i: tpb.GetTreeRequest(task_id=i)),
    "TaskQueue/GetHistory": lambda w, t: _then(w.task(), lambda i: tpb.GetHistoryRequest(task_id=i)),
    "TaskQueue/GetDependencies": lambda w, t: _then(
        w.task(), lambda i: tpb.GetDependenciesRequest(task_id=i)
    ),
    "TaskQueue/AddDependency": lambda w, t: _then(
        w.pair(), lambda p: tpb.AddDependencyRequest(task_id=p[0], dependency=tpb.Dependency(task_id=p[1]))
    ),
    "TaskQueue/RemoveDependency": lambda w, t: _then(
        w.dependent(), lambda d: tpb.RemoveDependencyRequest(task_id=d[0], prerequisite_id=d[1])
    ),
    "TaskQueue/Watch": lambda w, t: _then(
        w.task(), lambda i: tpb.WatchTasksRequest(task_id=i, include_snapshot=True)
    ),
    "TaskQueue/Claim": lambda w, t: _then(w.task(), lambda i: tpb.ClaimRequest(agent_id=t, max_tasks=1)),
    "TaskQueue/Listen": lambda w, t: _now(tpb.ListenRequest(agent_id=t)),
    "TaskQueue/Work": lambda w, t: _now(tpb.WorkRequest(listen=tpb.ListenRequest(agent_id=t))),
    "TaskQueue/ExtendLease": lambda w, t: _then(
        w.leased_to(t), lambda ta: tpb.ExtendLeaseRequest(task_id=ta[0], agent_id=t, attempt=ta[1])
    ),
    "TaskQueue/Complete": _complete,
    "TaskQueue/CreateSession": lambda w, t: _now(tpb.CreateSessionRequest(name="plan", initiated_by=t)),
    "TaskQueue/GetSession": lambda w, t: _then(w.session(), lambda s: tpb.GetSessionRequest(session_id=s)),
    "TaskQueue/ListSessions": lambda w, t: _now(tpb.ListSessionsRequest()),
    "TaskQueue/CloseSession": lambda w, t: _then(
        w.session(), lambda s: tpb.CloseSessionRequest(session_id=s)
    ),
    "TaskQueue/CancelSession": lambda w, t: _then(
        w.session(), lambda s: tpb.CancelSessionRequest(session_id=s)
    ),
    "TaskQueue/CreateSchedule": lambda w, t: _now(tpb.CreateScheduleRequest(spec=w.schedule_spec())),
    "TaskQueue/GetSchedule": lambda w, t: _then(
        w.schedule(), lambda s: tpb.GetScheduleRequest(schedule_id=s)
    ),
    "TaskQueue/ListSchedules": lambda w, t: _now(tpb.ListSchedulesRequest()),
    "TaskQueue/PauseSchedule": lambda w, t: _then(
        w.schedule(), lambda s: tpb.PauseScheduleRequest(schedule_id=s)
    ),
    "TaskQueue/ResumeSchedule": lambda w, t: _then(
        w.schedule(), lambda s: tpb.ResumeScheduleRequest(schedule_id=s)
    ),
    "TaskQueue/DeleteSchedule": lambda w, t: _then(
        w.schedule(), lambda s: tpb.DeleteScheduleRequest(schedule_id=s)
    ),
    "TaskQueue/TriggerSchedule": lambda w, t: _then(
        w.schedule(), lambda s: tpb.TriggerScheduleRequest(schedule_id=s)
    ),
    "TaskQueue/SetConcurrencyLimit": lambda w, t: _now(
        tpb.SetConcurrencyLimitRequest(limit=tpb.ConcurrencyLimit(name="mine", key="k", max_running=1))
    ),
    "TaskQueue/DeleteConcurrencyLimit": lambda w, t: _then(
        w.limit(), lambda n: tpb.DeleteConcurrencyLimitRequest(name=n)
    ),
    "TaskQueue/ListConcurrencyLimits": lambda w, t: _now(tpb.ListConcurrencyLimitsRequest()),
    "TaskQueue/ListConcurrencyKeys": lambda w, t: _now(tpb.ListConcurrencyKeysRequest()),
    "TaskQueue/CompleteBatch": lambda w, t: _then(
        _complete(w, t), lambda r: tpb.CompleteBatchRequest(items=[r])
    ),
    "TaskQueue/Fail": lambda w, t: _then(
        w.leased_to(t), lambda ta: tpb.FailRequest(task_id=ta[0], agent_id=t, attempt=ta[1], error="no")
    ),
}


async def _now(value: Any) -> Any:
    return value


async def _then(first: Awaitable[Any], make: Callable[[Any], Any]) -> Any:
    return make(await first)


def _stub_method(stubs: Stubs, rpc: str) -> Any:
    service, method = rpc.split("/")
    stub = {
        "Admin": admin_pb2_grpc.AdminStub(stubs.channel),
        "AgentRegistry": stubs.agents,
        "Messaging": stubs.messaging,
        "TaskQueue": stubs.tasks,
    }[service]
    return getattr(stub, method)


async def call(stubs: Stubs, rpc: str, request: Any) -> str:
    """The status the call ends with: OK, or the error code's name. A stream is OK once its
    first response (or its initial metadata) arrives."""
    fn = _stub_method(stubs, rpc)
    try:
        if rpc in ("Messaging/Consume", "TaskQueue/Work"):  # opened, then the request side closed
            stream = fn(iter([request]), timeout=5)
            async for _ in stream:
                pass
            return (await stream.code()).name
        if rpc == "Messaging/Publish":  # one entry on the stream: its confirm says how it went
            confirm = await fn(iter([request]), timeout=5).read()
            codes = {c.value[0]: c for c in grpc.StatusCode}
            return codes[confirm.code].name
        result = fn(request, timeout=5)
        if isinstance(result, grpc.aio.UnaryStreamCall):
            try:
                await asyncio.wait_for(result.initial_metadata(), 5)
                await asyncio.sleep(0)
                if result.done():
                    code = await result.code()
                    return code.name
            finally:
                result.cancel()
            return OK
        resp = await result
        if rpc == "TaskQueue/CompleteBatch":  # the call succeeds; each item has its own status
            assert [r.code for r in resp.results] == [0], resp
        return OK
    except grpc.aio.AioRpcError as exc:
        return exc.code().name


async def snapshot(admin: Stubs) -> Any:
    """Everything a refused call might have changed, read back through the admin."""
    agents = await admin.agents.ListAgents(apb.ListAgentsRequest(page_size=1000))
    msgs = await admin.messaging.ListMessages(mpb.ListMessagesRequest(page_size=1000))
    tasks = await admin.tasks.List(tpb.ListTasksRequest(page_size=1000))
    tokens = await admin_pb2_grpc.AdminStub(admin.channel).ListTokens(adpb.ListTokensRequest())
    schedules = await admin.tasks.ListSchedules(tpb.ListSchedulesRequest(page_size=1000))
    subs = await admin.messaging.ListSubscriptions(mpb.ListSubscriptionsRequest(page_size=1000))
    limits = await admin.tasks.ListConcurrencyLimits(tpb.ListConcurrencyLimitsRequest())
    return (
        sorted((x.name, x.key, x.capability, x.max_running, x.rate) for x in limits.limits),
        sorted((s.name, s.filter, s.backlog, s.in_flight) for s in subs.subscriptions),
        sorted((t.token_id, t.role, t.revoked_at.seconds) for t in tokens.tokens),
        sorted((a.agent_id, a.status, a.endpoint, tuple(a.capabilities)) for a in agents.agents),
        sorted((m.message_id, m.sender_id, m.status, m.attempt) for m in msgs.messages),
        sorted((t.task_id, t.status, t.attempt, t.assigned_agent_id) for t in tasks.tasks),
        sorted((s.schedule_id, s.status, s.fired_count) for s in schedules.schedules),
    )


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[Broker, Path]]:
    db = tmp_path / "broker.db"
    b = await start_server(make_settings(tmp_path, auth="token", quota_calls_per_s=0))
    try:
        yield b, db
    finally:
        await b.stop(0.2)


_ids = itertools.count()


@pytest.mark.parametrize("rpc", sorted(EXPECTED))
async def test_each_rpc_is_allowed_or_refused_by_role_and_ownership(
    secured: tuple[Broker, Path], rpc: str
) -> None:
    broker, db = secured
    admin = authed_stubs(broker.address, issue(db, "root", "admin"))
    agent_row, orch_row = EXPECTED[rpc][:2], EXPECTED[rpc][2:]
    try:
        for role, expected in (("agent", agent_row), ("orchestrator", orch_row), ("admin", (OK, OK))):
            for whose, want in zip(("own", "other"), expected, strict=True):
                n = next(_ids)
                w = World(
                    admin,
                    f"me-{n}",
                    f"other-{n}",
                    f"peer-{n}",
                    as_agent=lambda a: authed_stubs(broker.address, issue(db, a, "agent")),
                )
                for agent in (w.me, w.other, w.peer):
                    await admin.agents.Register(
                        apb.RegisterRequest(
                            agent_id=agent,
                            endpoint="http://original",
                            capabilities=[w.cap(agent)],
                            max_concurrent_tasks=5,
                        )
                    )
                caller = authed_stubs(broker.address, issue(db, w.me, role))
                try:
                    request = await BUILD[rpc](w, w.me if whose == "own" else w.other)
                    before = await snapshot(admin)
                    got = await call(caller, rpc, request)
                    assert got == want, f"{rpc} by {role} on its {whose}: {got}, expected {want}"
                    if want != OK:
                        assert await snapshot(admin) == before, f"{rpc} by {role} on {whose} changed state"
                finally:
                    for s in w.streams:
                        s.cancel()
                    await caller.channel.close()
    finally:
        await admin.channel.close()
