"""#22.13: revoking a token (or its expiry) ends every stream opened with it within a second,
UNAUTHENTICATED, releasing what it held: its deliveries go back to pending, the leases it was
handed back to the queue. (Before, a revoked token's Subscribe went on receiving deliveries and
its Listen was handed every new task.)

On PostgreSQL the broker hears of a revocation from the revocation's own transaction (#23.1;
before, only when it read the token again, every ``auth_cache_s``): the bound is a second there
too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as mpb
from broker.pb import tasks_pb2 as tpb
from broker.server import Broker
from tests.conftest import Stubs, eventually, next_within

from .security_support import authed_stubs, issue, revoke

CACHE_S = 0.5


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth": "token", "auth_cache_s": CACHE_S}


@pytest.fixture
async def admin(broker: Broker) -> AsyncIterator[Stubs]:
    stubs = authed_stubs(broker.address, issue(broker.settings.db, "root", "admin"))
    await stubs.agents.Register(apb.RegisterRequest(agent_id="root", max_concurrent_tasks=1))
    try:
        yield stubs
    finally:
        await stubs.channel.close()


def _bound(broker: Broker) -> float:
    """How soon a revocation must end the streams: within a second, on either backend."""
    return 1.0


async def _register(admin: Stubs, agent_id: str) -> None:
    await admin.agents.Register(
        apb.RegisterRequest(agent_id=agent_id, capabilities=[agent_id], max_concurrent_tasks=20)
    )


async def _ended_within(call: Any, seconds: float) -> grpc.aio.AioRpcError:
    """Read the stream until it ends (with an error), failing if it is still open after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the stream was still open {seconds}s after the revocation")
        try:
            await asyncio.wait_for(call.read(), left)
        except grpc.aio.AioRpcError as err:
            return err
        except TimeoutError:
            continue


async def test_revoking_ends_a_subscribe_and_its_deliveries_go_back(broker: Broker, admin: Stubs) -> None:
    await _register(admin, "a1")
    token = issue(broker.settings.db, "a1")
    agent = authed_stubs(broker.address, token)
    try:
        send = mpb.SendRequest(sender_id="root", target=mpb.Target(agent_id="a1"), payload=b"x")
        held = (await admin.messaging.Send(send)).message_ids[0]
        sub = agent.messaging.Subscribe(mpb.SubscribeRequest(agent_id="a1", max_in_flight=1))
        got = await next_within(sub)
        assert [m.message_id for m in got.messages] == [held]  # delivered, not acked
        revoke(broker.settings.db, token)
        err = await _ended_within(sub, _bound(broker))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "revoked" in (err.details() or "")

        async def back() -> bool:
            m = await admin.messaging.GetMessage(mpb.GetMessageRequest(message_id=held))
            return m.status == mpb.MESSAGE_STATUS_PENDING

        await eventually(back, timeout=2, what="the held delivery back to pending")
        # And the token opens nothing new.
        again = agent.messaging.Subscribe(mpb.SubscribeRequest(agent_id="a1"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await next_within(again)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await agent.channel.close()


async def test_revoking_ends_a_listen_and_its_leases_go_back_to_the_queue(
    broker: Broker, admin: Stubs
) -> None:
    await _register(admin, "w1")
    token = issue(broker.settings.db, "w1")
    worker = authed_stubs(broker.address, token)
    try:
        listen = worker.tasks.Listen(tpb.ListenRequest(agent_id="w1"))
        await asyncio.wait_for(listen.initial_metadata(), 5)
        spec = tpb.TaskSpec(title="t", required_capabilities=["w1"])
        first = (await admin.tasks.Submit(tpb.SubmitRequest(task=spec))).task.task_id
        got = await next_within(listen)
        assert [a.task.task_id for a in got.assignments] == [first]
        revoke(broker.settings.db, token)
        err = await _ended_within(listen, _bound(broker))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED

        async def ready(task_id: str) -> bool:
            t = await admin.tasks.Get(tpb.GetTaskRequest(task_id=task_id))
            return t.status == tpb.TASK_STATUS_READY

        await eventually(lambda: ready(first), timeout=2, what="the lease handed back")
        history = await admin.tasks.GetHistory(tpb.GetHistoryRequest(task_id=first))
        assert "revoked" in history.transitions[-1].reason
        # New tasks are not handed to the revoked worker: they wait for someone else.
        later = [(await admin.tasks.Submit(tpb.SubmitRequest(task=spec))).task.task_id for _ in range(12)]
        for task_id in later:
            assert await ready(task_id)
    finally:
        await worker.channel.close()


def _work(stubs: Stubs, agent: str) -> Any:
    async def requests() -> AsyncIterator[tpb.WorkRequest]:
        yield tpb.WorkRequest(listen=tpb.ListenRequest(agent_id=agent))
        await asyncio.Event().wait()  # the client writes nothing more

    return stubs.tasks.Work(requests())


def _consume(stubs: Stubs, agent: str) -> Any:
    async def requests() -> AsyncIterator[mpb.ConsumeRequest]:
        yield mpb.ConsumeRequest(subscribe=mpb.SubscribeRequest(agent_id=agent))
        await asyncio.Event().wait()

    return stubs.messaging.Consume(requests())


def _publish(stubs: Stubs, agent: str) -> Any:
    async def requests() -> AsyncIterator[mpb.PublishRequest]:
        await asyncio.Event().wait()
        yield mpb.PublishRequest()  # never

    return stubs.messaging.Publish(requests())


def _watch_agents(stubs: Stubs, agent: str) -> Any:
    return stubs.agents.WatchAgents(apb.WatchAgentsRequest())


STREAMS: dict[str, Callable[[Stubs, str], Any]] = {
    "Work": _work,
    "Consume": _consume,
    "Publish": _publish,
    "WatchAgents": _watch_agents,
}


@pytest.mark.parametrize("kind", sorted(STREAMS))
async def test_revoking_ends_every_kind_of_stream(broker: Broker, admin: Stubs, kind: str) -> None:
    await _register(admin, "a1")
    token = issue(broker.settings.db, "a1")
    agent = authed_stubs(broker.address, token)
    try:
        call = STREAMS[kind](agent, "a1")
        await asyncio.wait_for(call.initial_metadata(), 5)
        await asyncio.sleep(0)  # (the handler is past its first step)
        revoke(broker.settings.db, token)
        err = await _ended_within(call, _bound(broker))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
    finally:
        await agent.channel.close()


async def test_a_token_expiring_ends_its_streams_at_its_expiry(broker: Broker, admin: Stubs) -> None:
    await _register(admin, "a1")
    token = issue(broker.settings.db, "a1", expires_in_s=1.5)
    expires = time.monotonic() + 1.5
    agent = authed_stubs(broker.address, token)
    try:
        sub = agent.messaging.Subscribe(mpb.SubscribeRequest(agent_id="a1"))
        await asyncio.wait_for(sub.initial_metadata(), 5)
        err = await _ended_within(sub, expires - time.monotonic() + 1.0)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "expired" in (err.details() or "")
        assert time.monotonic() >= expires - 0.2  # not before its time
    finally:
        await agent.channel.close()


async def test_other_tokens_streams_stay_open(broker: Broker, admin: Stubs) -> None:
    await _register(admin, "a1")
    await _register(admin, "a2")
    gone, kept = issue(broker.settings.db, "a1"), issue(broker.settings.db, "a2")
    one, two = authed_stubs(broker.address, gone), authed_stubs(broker.address, kept)
    try:
        s1 = one.messaging.Subscribe(mpb.SubscribeRequest(agent_id="a1"))
        s2 = two.messaging.Subscribe(mpb.SubscribeRequest(agent_id="a2"))
        for s in (s1, s2):
            await asyncio.wait_for(s.initial_metadata(), 5)
        revoke(broker.settings.db, gone)
        assert (await _ended_within(s1, _bound(broker))).code() == grpc.StatusCode.UNAUTHENTICATED
        send = mpb.SendRequest(sender_id="root", target=mpb.Target(agent_id="a2"), payload=b"still here")
        await admin.messaging.Send(send)
        assert (await next_within(s2)).messages[0].payload == b"still here"
        s2.cancel()
    finally:
        await one.channel.close()
        await two.channel.close()
