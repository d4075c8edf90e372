"""Topics: messages sent to subjects, fanned out to the durable subscriptions whose filters match,
consumed by competing consumers (on both backends)."""

from __future__ import annotations

import grpc
import pytest

from broker.pb import messaging_pb2 as pb
from tests.conftest import eventually

from .messaging_support import Sub, register, send
from .topics_support import consume, create, figures, publish, settle


async def test_fan_out_to_two_subscriptions_and_competing_consumers_within_one(stubs, broker) -> None:
    for agent in ("pub", "a1", "a2", "b1"):
        await register(stubs, agent)
    await create(stubs, "billing", "orders.>")
    await create(stubs, "audit", "orders.*.created")
    a1 = await consume(stubs, "a1", "billing", max_in_flight=1)
    a2 = await consume(stubs, "a2", "billing", max_in_flight=1)
    b1 = await consume(stubs, "b1", "audit")
    sent = [await publish(stubs, "pub", "orders.eu.created", f"m{i}".encode()) for i in range(6)]

    audit = await b1.take(6)  # every message, in order, to the one consumer of "audit"
    assert [m.payload for m in audit] == [f"m{i}".encode() for i in range(6)]
    assert {m.subject for m in audit} == {"orders.eu.created"}
    assert {m.subscription for m in audit} == {"audit"}
    assert all(m.message_id.startswith(s) for m, s in zip(audit, sent, strict=True))
    assert await settle(stubs, "b1", audit) == 6

    # "billing": each message to one of its two consumers (one in flight each: both must work).
    got: dict[str, list[bytes]] = {"a1": [], "a2": []}
    while sum(map(len, got.values())) < 6:
        for agent, sub in (("a1", a1), ("a2", a2)):
            if sum(map(len, got.values())) < 6 and (agent == "a1" or got["a1"]):
                m = await sub.one()
                got[agent].append(m.payload)
                assert await settle(stubs, agent, [m]) == 1
    assert got["a1"] and got["a2"]
    assert sorted(got["a1"] + got["a2"]) == sorted(f"m{i}".encode() for i in range(6))
    for name in ("billing", "audit"):
        f = await figures(stubs, name)
        assert (f.backlog, f.in_flight, f.dead_letters) == (0, 0, 0)
        assert not f.HasField("oldest_unacked_at")
    for s in (a1, a2, b1):
        s.cancel()


@pytest.mark.parametrize(
    ("flt", "matched", "unmatched"),
    [
        (
            "orders.*.created",
            ["orders.eu.created", "orders.us.created"],
            ["orders.eu", "orders.eu.x.created"],
        ),
        ("orders.>", ["orders.eu", "orders.eu.created.late"], ["orders", "order.eu", "billing.orders.eu"]),
        ("orders.eu.created", ["orders.eu.created"], ["orders.eu.created.x", "orders.us.created"]),
        ("*.eu.>", ["orders.eu.created", "users.eu.x.y"], ["orders.us.created", "orders.eu"]),
    ],
)
async def test_wildcard_filters(stubs, broker, flt: str, matched: list[str], unmatched: list[str]) -> None:
    await register(stubs, "pub")
    await register(stubs, "c")
    await create(stubs, "s", flt)
    for subject in unmatched + matched:
        await publish(stubs, "pub", subject, subject.encode())
    sub = await consume(stubs, "c", "s", broker=broker)
    got = await sub.take(len(matched))
    assert [m.payload.decode() for m in got] == matched
    assert await settle(stubs, "c", got) == len(matched)
    await sub.nothing()
    assert (await figures(stubs, "s")).backlog == 0
    sub.cancel()


async def test_no_subscription_matches(stubs, broker) -> None:
    await register(stubs, "pub")
    await create(stubs, "s", "orders.>")
    mid = await publish(stubs, "pub", "billing.eu")  # accepted, kept for replays, delivered to none
    assert (await figures(stubs, "s")).backlog == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await publish(stubs, "pub", "billing.eu", require_recipient=True)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listed = await stubs.messaging.ListMessages(pb.ListMessagesRequest(subject="billing.eu"))
    assert [m.message_id for m in listed.messages] == [mid]


async def test_later_subscription_sees_only_later_messages_unless_from_history(stubs, broker) -> None:
    await register(stubs, "pub")
    await register(stubs, "c")
    first = await publish(stubs, "pub", "news.a", b"old1")
    await publish(stubs, "pub", "news.b", b"old2")
    old = await stubs.messaging.GetMessage(pb.GetMessageRequest(message_id=first))
    assert old.subject == "news.a" and old.sequence > 0

    await create(stubs, "late", "news.>")
    await create(stubs, "replay", "news.>", start_sequence=old.sequence)
    assert (await figures(stubs, "late")).backlog == 0
    assert (await figures(stubs, "replay")).backlog == 2
    await publish(stubs, "pub", "news.c", b"new")

    late = await consume(stubs, "c", "late", broker=broker)
    got = await late.take(1)
    assert [m.payload for m in got] == [b"new"]
    await settle(stubs, "c", got)
    await late.nothing()
    late.cancel()
    replay = await consume(stubs, "c", "replay")
    got = await replay.take(3)
    assert [m.payload for m in got] == [b"old1", b"old2", b"new"]
    await settle(stubs, "c", got)
    replay.cancel()

    by_time = await create(stubs, "by-time", "news.>", start_time=old.created_at)
    assert by_time.backlog == 3


async def test_seek_back_and_forward(stubs, broker) -> None:
    await register(stubs, "pub")
    await register(stubs, "c")
    await create(stubs, "s", "jobs.>")
    ids = [await publish(stubs, "pub", "jobs.x", f"j{i}".encode()) for i in range(4)]
    seqs = [(await stubs.messaging.GetMessage(pb.GetMessageRequest(message_id=i))).sequence for i in ids]
    sub = await consume(stubs, "c", "s")
    got = await sub.take(4)
    assert await settle(stubs, "c", got) == 4
    assert (await figures(stubs, "s")).backlog == 0

    back = await stubs.messaging.Seek(pb.SeekRequest(name="s", sequence=seqs[2]))
    assert (back.replayed, back.skipped) == (2, 0)
    again = await sub.take(2)
    assert [m.payload for m in again] == [b"j2", b"j3"]
    assert await settle(stubs, "c", again) == 2

    # Forward: what was not acknowledged before the point is skipped (acknowledged).
    await stubs.messaging.Seek(pb.SeekRequest(name="s", sequence=seqs[0]))
    forward = await stubs.messaging.Seek(pb.SeekRequest(name="s", sequence=seqs[3]))
    assert forward.skipped >= 1
    rest = await sub.take(1)
    while rest[-1].payload != b"j3":  # deliveries already out before the seek may come first
        rest += await sub.take(1)
    await settle(stubs, "c", rest)
    await eventually_empty(stubs, "s")
    sub.cancel()

    # By time: every message sent from then on, again.
    first = await stubs.messaging.GetMessage(pb.GetMessageRequest(message_id=ids[0]))
    by_time = await stubs.messaging.Seek(pb.SeekRequest(name="s", time=first.created_at))
    assert (by_time.replayed, by_time.subscription.backlog) == (4, 4)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.messaging.Seek(pb.SeekRequest(name="s"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.messaging.Seek(pb.SeekRequest(name="nope", sequence=1))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def eventually_empty(stubs, name: str) -> None:
    async def empty() -> bool:
        f = await figures(stubs, name)
        return f.backlog == 0 and f.in_flight == 0

    await eventually(empty, what=f"{name} drained")


async def test_per_key_ordering(stubs, broker) -> None:
    for agent in ("pub", "c1", "c2"):
        await register(stubs, agent)
    await create(stubs, "ordered", "acct.>", ordering=True)
    await publish(stubs, "pub", "acct.1", b"k1-a", ordering_key="k1")
    await publish(stubs, "pub", "acct.1", b"k1-b", ordering_key="k1")
    await publish(stubs, "pub", "acct.2", b"k2-a", ordering_key="k2")
    c1 = await consume(stubs, "c1", "ordered", broker=broker)
    first = await c1.take(2)  # k1-a and k2-a; k1-b waits for k1-a's ack
    assert sorted(m.payload for m in first) == [b"k1-a", b"k2-a"]
    c2 = await consume(stubs, "c2", "ordered", broker=broker)
    await c1.nothing()
    await c2.nothing()  # not to another consumer either
    c2.cancel()
    await settle(stubs, "c1", [m for m in first if m.payload == b"k1-a"])
    later = await c1.one()
    assert later.payload == b"k1-b" and later.ordering_key == "k1"
    c1.cancel()


async def test_dead_letters_per_subscription(stubs, broker) -> None:
    for agent in ("pub", "c", "d"):
        await register(stubs, agent)
    await create(stubs, "fragile", "work.>", max_attempts=2, dead_letter_subject="dead.work")
    await create(stubs, "sturdy", "work.>")
    await create(stubs, "dlq", "dead.>")
    await publish(stubs, "pub", "work.1", b"poison")
    sub = await consume(stubs, "c", "fragile")
    for _ in range(2):
        m = await sub.one()
        await stubs.messaging.Nack(pb.NackRequest(agent_id="c", message_ids=[m.message_id], reason="bad"))

    async def dead() -> bool:
        f = await figures(stubs, "fragile")
        return f.dead_letters == 1 and f.backlog == 0

    await eventually(dead, what="a dead letter in fragile")
    assert (await figures(stubs, "sturdy")).backlog == 1  # the other subscription still has it
    failed = await stubs.messaging.ListMessages(
        pb.ListMessagesRequest(subscription="fragile", status=pb.MESSAGE_STATUS_FAILED)
    )
    assert [m.payload for m in failed.messages] == [b"poison"]
    dlq = await consume(stubs, "d", "dlq")  # published to the dead-letter subject by the sweeper
    m = await dlq.one(10)
    assert m.payload == b"poison" and m.subject == "dead.work"
    sub.cancel()
    dlq.cancel()


async def test_subscriptions_resource(stubs, broker) -> None:
    await register(stubs, "c")
    made = await create(stubs, "s1", "a.>", max_attempts=3)
    assert made.name == "s1" and made.filter == "a.>" and made.max_attempts == 3
    assert (await create(stubs, "s1", "a.>", max_attempts=3)).name == "s1"  # a repeat
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(stubs, "s1", "b.>")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await create(stubs, "s2", "b.*")
    page = await stubs.messaging.ListSubscriptions(pb.ListSubscriptionsRequest(page_size=1))
    assert [s.name for s in page.subscriptions] == ["s1"] and page.next_page_token
    page = await stubs.messaging.ListSubscriptions(
        pb.ListSubscriptionsRequest(page_size=1, page_token=page.next_page_token)
    )
    assert [s.name for s in page.subscriptions] == ["s2"]

    sub = await consume(stubs, "c", "s2")
    await stubs.messaging.DeleteSubscription(pb.DeleteSubscriptionRequest(name="s2"))
    assert await sub.ended() == grpc.StatusCode.NOT_FOUND
    for call in (
        stubs.messaging.GetSubscription(pb.GetSubscriptionRequest(name="s2")),
        stubs.messaging.DeleteSubscription(pb.DeleteSubscriptionRequest(name="s2")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    gone = await Sub.open(stubs, "c", subscription="s2")
    assert await gone.ended() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_kw", "field"),
    [
        ({"name": "", "filter": "a"}, "name"),
        ({"name": "x", "filter": ""}, "filter"),
        ({"name": "x", "filter": "a..b"}, "filter"),
        ({"name": "x", "filter": "a.>.b"}, "filter"),
        ({"name": "x", "filter": "a.b*"}, "filter"),
        ({"name": "x", "filter": "a", "max_attempts": 101}, "max_attempts"),
        ({"name": "x", "filter": "a", "dead_letter_subject": "d.*"}, "dead_letter_subject"),
    ],
)
async def test_bad_subscription_is_refused(stubs, broker, request_kw, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.messaging.CreateSubscription(pb.CreateSubscriptionRequest(**request_kw))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")
    listed = await stubs.messaging.ListSubscriptions(pb.ListSubscriptionsRequest())
    assert not listed.subscriptions


@pytest.mark.parametrize(
    "subject", ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "x" * 257, ".".join("a" * 17)]
)
async def test_bad_subject_is_refused(stubs, broker, subject: str) -> None:
    await register(stubs, "pub")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await send(stubs, "pub", pb.Target(subject=subject))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "target.subject" in (err.value.details() or "")
