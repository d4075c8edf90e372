"""Quotas on request streams and the pending cap's fairness: each entry of a Publish, Consume or
Work stream is charged as its unary twin is (#22.15), and one sender flooding a recipient does not
lock the others out of it (#22.18)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as mpb
from broker.pb import tasks_pb2 as tpb
from broker.server import Broker
from tests.conftest import Stubs, next_within

from .security_support import authed_stubs, issue

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


TIGHT = {"auth": "token", "quota_calls_per_s": 20}
CAP_ONLY = {"auth": "token", "quota_calls_per_s": 0, "quota_pending_messages": 30}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return getattr(request, "param", TIGHT)


@pytest.fixture
async def admin(broker: Broker) -> AsyncIterator[Stubs]:
    stubs = authed_stubs(broker.address, issue(broker.settings.db, "root", "admin"))
    try:
        yield stubs
    finally:
        await stubs.channel.close()


async def _agent(broker: Broker, admin: Stubs, agent_id: str) -> Stubs:
    await admin.agents.Register(
        apb.RegisterRequest(agent_id=agent_id, capabilities=[agent_id], max_concurrent_tasks=100)
    )
    return authed_stubs(broker.address, issue(broker.settings.db, agent_id))


def _entry(seq: int, sender: str, to: str) -> mpb.PublishRequest:
    return mpb.PublishRequest(
        sequence=seq,
        message=mpb.SendRequest(sender_id=sender, target=mpb.Target(agent_id=to), payload=b"x"),
    )


async def _publish(stubs: Stubs, entries: list[mpb.PublishRequest]) -> list[mpb.PublishResponse]:
    call = stubs.messaging.Publish(iter(entries), timeout=30)
    return [r async for r in call]


async def _pending(admin: Stubs, recipient: str) -> Counter[str]:
    got = await admin.messaging.ListMessages(
        mpb.ListMessagesRequest(recipient_id=recipient, status=mpb.MESSAGE_STATUS_PENDING, page_size=1000)
    )
    return Counter(m.sender_id for m in got.messages)


async def test_publish_entries_are_charged_as_sends(broker: Broker, admin: Stubs) -> None:
    """A Publish stream of 200 entries under a 20 calls/s quota (burst 40): most are refused
    per entry, each in its confirmation, and the stream goes on (all 200 went through before)."""
    flood = await _agent(broker, admin, "flood")
    await _agent(broker, admin, "inbox")
    try:
        confirms = await _publish(flood, [_entry(i, "flood", "inbox") for i in range(200)])
        assert [c.sequence for c in confirms] == list(range(200))  # each answered, in order
        codes = Counter(c.code for c in confirms)
        assert set(codes) <= {0, EXHAUSTED}, codes
        assert 0 < codes[0] <= 40 + 20 * 5, codes  # the burst, and the rate over a few seconds
        refused = next(c for c in confirms if c.code == EXHAUSTED)
        assert "quota: 'flood'" in refused.error and "retry in" in refused.error
        assert sum((await _pending(admin, "inbox")).values()) == codes[0]
    finally:
        await flood.channel.close()


@pytest.mark.parametrize("settings_overrides", [CAP_ONLY], indirect=True)
async def test_publish_entries_count_against_the_pending_cap(broker: Broker, admin: Stubs) -> None:
    """With no call quota in the way, the pending cap of 30 holds on a Publish stream: of 60
    entries, 30 are stored and 30 refused (it let 77,874 past a cap of 1,000 before)."""
    flood = await _agent(broker, admin, "flood")
    await _agent(broker, admin, "inbox")
    try:
        confirms = await _publish(flood, [_entry(i, "flood", "inbox") for i in range(60)])
        codes = Counter(c.code for c in confirms)
        assert codes == {0: 30, EXHAUSTED: 30}, codes
        assert "pending messages for 'inbox'" in next(c.error for c in confirms if c.code)
        assert sum((await _pending(admin, "inbox")).values()) == 30
    finally:
        await flood.channel.close()


async def _working_on_a_task(
    w: Stubs, admin: Stubs
) -> tuple[Any, asyncio.Queue[tpb.WorkRequest | None], str, int]:
    """Agent w1's Work stream, open and holding a task submitted for it: (the call, the queue its
    requests are written from, None ending them; the task's id, its attempt)."""
    spec = tpb.TaskSpec(title="t", required_capabilities=["w1"])
    task = await admin.tasks.Submit(tpb.SubmitRequest(task=spec))
    requests: asyncio.Queue[tpb.WorkRequest | None] = asyncio.Queue()
    requests.put_nowait(tpb.WorkRequest(listen=tpb.ListenRequest(agent_id="w1")))

    async def gen() -> AsyncIterator[tpb.WorkRequest]:
        while (r := await requests.get()) is not None:
            yield r

    call = w.tasks.Work(gen(), timeout=30)
    while not (resp := await next_within(call)).assignments:
        pass
    assert resp.assignments[0].task.task_id == task.task.task_id
    return call, requests, task.task.task_id, resp.assignments[0].attempt


async def test_work_requests_are_charged_as_their_unary_twins(broker: Broker, admin: Stubs) -> None:
    """100 lease extensions on a Work stream under a 20 calls/s quota: most are answered
    RESOURCE_EXHAUSTED in their confirmation (none were before), the stream going on."""
    w = await _agent(broker, admin, "w1")
    try:
        call, requests, task_id, attempt = await _working_on_a_task(w, admin)
        for i in range(100):
            ext = tpb.ExtendLeaseRequest(task_id=task_id, attempt=attempt)
            requests.put_nowait(tpb.WorkRequest(sequence=i, extend=ext))
        codes: Counter[int] = Counter()
        while sum(codes.values()) < 100:
            resp = await next_within(call)
            if resp.HasField("confirm"):
                codes[resp.confirm.code] += 1
        requests.put_nowait(None)
        assert codes[EXHAUSTED] >= 50 and codes[0] >= 1, codes
    finally:
        await w.channel.close()


async def test_consume_requests_are_charged_as_acks(broker: Broker, admin: Stubs) -> None:
    """100 acks on a Consume stream under a 20 calls/s quota: most are answered
    RESOURCE_EXHAUSTED in their confirmation (none were before)."""
    w = await _agent(broker, admin, "w1")
    try:
        acks: asyncio.Queue[mpb.ConsumeRequest | None] = asyncio.Queue()
        acks.put_nowait(mpb.ConsumeRequest(subscribe=mpb.SubscribeRequest(agent_id="w1")))
        for i in range(100):
            acks.put_nowait(mpb.ConsumeRequest(sequence=i, ack_ids=["0" * 32]))
        acks.put_nowait(None)

        async def ack_gen() -> AsyncIterator[mpb.ConsumeRequest]:
            while (r := await acks.get()) is not None:
                yield r

        consumed: Counter[int] = Counter()
        async for resp in w.messaging.Consume(ack_gen(), timeout=30):
            if resp.HasField("confirm"):
                consumed[resp.confirm.code] += 1
        assert consumed[EXHAUSTED] >= 50, consumed
    finally:
        await w.channel.close()


@pytest.mark.parametrize("settings_overrides", [CAP_ONLY], indirect=True)
async def test_a_flooding_sender_does_not_lock_others_out_of_a_recipient(
    broker: Broker, admin: Stubs
) -> None:
    """The flooder fills the recipient's cap (30) and is refused; another sender can still send
    its share (half of the cap, with two senders), and only then is refused too."""
    flood = await _agent(broker, admin, "flood")
    other = await _agent(broker, admin, "other")
    await _agent(broker, admin, "inbox")
    try:
        send = mpb.SendRequest(sender_id="flood", target=mpb.Target(agent_id="inbox"), payload=b"x")
        for _ in range(30):
            await flood.messaging.Send(send, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await flood.messaging.Send(send, timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "pending messages for 'inbox'" in (err.value.details() or "")
        mine = mpb.SendRequest(sender_id="other", target=mpb.Target(agent_id="inbox"), payload=b"y")
        accepted = 0
        for _ in range(20):
            try:
                await other.messaging.Send(mine, timeout=5)
                accepted += 1
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                break
        assert accepted == 15  # 406 of 406 were refused before
        assert await _pending(admin, "inbox") == {"flood": 30, "other": 15}
    finally:
        await flood.channel.close()
        await other.channel.close()


async def test_each_message_of_a_batched_publish_entry_is_charged_as_a_send(
    broker: Broker, admin: Stubs
) -> None:
    """One Publish entry carrying 200 messages under a 20 calls/s quota (burst 40): each message is
    charged as a Send, the refused ones answered RESOURCE_EXHAUSTED in their own result."""
    flood = await _agent(broker, admin, "flood")
    await _agent(broker, admin, "inbox")
    try:
        msgs = [_entry(i, "flood", "inbox").message for i in range(200)]
        (confirm,) = await _publish(flood, [mpb.PublishRequest(sequence=1, messages=msgs)])
        codes = Counter(r.code for r in confirm.results)
        assert len(confirm.results) == 200 and set(codes) == {0, EXHAUSTED}, codes
        assert codes[0] <= 40 + 20 * 5, codes
        assert sum((await _pending(admin, "inbox")).values()) == codes[0]
    finally:
        await flood.channel.close()


async def test_each_outcome_of_a_batched_work_request_is_charged_as_its_unary_twin(
    broker: Broker, admin: Stubs
) -> None:
    """100 lease extensions in one Work request under a 20 calls/s quota: most are answered
    RESOURCE_EXHAUSTED in their own result, in one confirmation."""
    w = await _agent(broker, admin, "w1")
    try:
        call, requests, task_id, attempt = await _working_on_a_task(w, admin)
        ext = tpb.ExtendLeaseRequest(task_id=task_id, attempt=attempt)
        requests.put_nowait(tpb.WorkRequest(sequence=1, outcomes=[tpb.WorkOutcome(extend=ext)] * 100))
        while not (resp := await next_within(call)).HasField("confirm"):
            pass
        requests.put_nowait(None)
        codes = Counter(r.code for r in resp.confirm.results)
        assert len(resp.confirm.results) == 100 and codes[EXHAUSTED] >= 50 and codes[0] >= 1, codes
    finally:
        await w.channel.close()
