"""The delivery ledger (broker/core/ledger.py), with a fake storage: which stream holds which
delivery, the room an ack frees, the release when a stream ends, and the shutdown states."""

from __future__ import annotations

import asyncio
from typing import Any

from broker.clock import Clock
from broker.core.ledger import Ledger
from broker.core.subscriptions import Subscription
from broker.errors import FailedPrecondition, StorageUnavailable
from broker.models.messages import Message, MessageStatus, TargetKind, check_subscribe
from broker.models.stats import MessageStats
from broker.storage.message_store import MessageChanges


def message(mid: str, attempt: int = 1) -> Message:
    return Message(
        seq=0,
        message_id=mid,
        send_id=mid,
        sender_id="a",
        recipient_id="bob",
        target_kind=TargetKind.DIRECT,
        target_capability=None,
        message_type="",
        payload=b"",
        content_type="",
        priority=5,
        correlation_id=None,
        conversation_id=None,
        headers={},
        idempotency_key=None,
        status=MessageStatus.DELIVERED,
        attempt=attempt,
        max_attempts=5,
        created_at=0,
        deliver_after=None,
        expires_at=None,
        delivered_at=None,
        ack_deadline=None,
        processed_at=None,
        last_error=None,
    )


class Store:
    """What the ledger asks of storage: claims (answered from ``due``) and releases (recorded)."""

    def __init__(self) -> None:
        self.due: list[Message] = []
        self.released: list[tuple[list[tuple[str, int]], str, bool]] = []

    async def claim_messages(
        self, agent: str, caps: Any, limit: int, now: int, deadline: int
    ) -> list[Message]:
        out, self.due = self.due[:limit], self.due[limit:]
        return out

    async def release_deliveries(
        self, group: list[tuple[str, int]], now: int, reason: str, refund: bool
    ) -> MessageChanges:
        self.released.append((sorted(group), reason, refund))
        return MessageChanges(ids=list(group), requeued=len(group))


class Scene:
    def __init__(self) -> None:
        self.store = Store()
        self.changed: list[MessageChanges] = []
        self.closed: list[Subscription] = []
        self.ledger = Ledger(
            self.store,  # type: ignore[arg-type]
            Clock(),
            MessageStats(),
            self.changed.append,
            self.closed.append,
        )

    def stream(self, max_in_flight: int = 10) -> Subscription:
        sub = Subscription(self.ledger, check_subscribe("bob", max_in_flight, 30_000_000, 10), ())
        self.ledger.open(sub)
        return sub

    async def settled(self) -> None:
        await asyncio.wait_for(asyncio.gather(*self.ledger._releases), 5)


async def first_batch(sub: Subscription) -> tuple[Any, list[Message]]:
    it = sub.deliveries()
    return it, await asyncio.wait_for(anext(it), 5)


async def test_an_ack_frees_room_on_the_stream_that_holds_the_delivery_and_an_older_attempt_frees_none():
    s = Scene()
    s.store.due = [message("m1", 2), message("m2")]
    one, two = s.stream(max_in_flight=2), s.stream(max_in_flight=2)
    it, got = await first_batch(one)
    assert [m.message_id for m in got] == ["m1", "m2"]
    assert (s.ledger.holding(one), s.ledger.holding(two), one.room) == (2, 0, 0)
    s.ledger.forget([("m1", 1)])  # an older attempt than the one this stream holds
    assert s.ledger.holding(one) == 2
    s.ledger.forget([("m1", 2), ("m2", 1)])
    assert (s.ledger.holding(one), one.room) == (0, 2)
    await it.aclose()


async def test_an_ended_stream_releases_what_it_holds_and_its_untransmitted_response_gets_its_attempt_back():
    s = Scene()
    s.store.due = [message("m1"), message("m2"), message("m3")]
    sub = s.stream()
    it, got = await first_batch(sub)
    sub.transmitting(got[2:])  # m3's response was being written when the stream ended
    sub.end()
    await s.settled()
    assert s.closed == [sub]
    assert sorted(s.store.released) == [
        ([("m1", 1), ("m2", 1)], "subscription ended before the ack", False),
        ([("m3", 1)], "not transmitted before the subscription ended", True),
    ]
    assert s.changed and s.ledger.holding(sub) == 0
    s.ledger.forget([("m1", 1)])  # late: nothing held any more
    await it.aclose()


async def test_a_gone_agents_streams_hold_nothing_and_end():
    s = Scene()
    s.store.due = [message("m1")]
    sub = s.stream()
    it, _ = await first_batch(sub)
    s.ledger.agent_gone("bob", FailedPrecondition("gone"))
    assert s.ledger.holding(sub) == 0 and isinstance(sub.ended, FailedPrecondition)
    sub.end()
    await s.settled()
    assert s.store.released == []  # released in the registry's transaction already
    await it.aclose()


async def test_shutdown_keeps_deliveries_held_until_close_then_gives_the_attempt_back():
    s = Scene()
    s.store.due = [message("m1"), message("m2")]
    sub = s.stream()
    it, _ = await first_batch(sub)
    s.ledger.shutdown()
    assert isinstance(sub.ended, StorageUnavailable) and s.ledger.closing and not s.ledger.released
    sub.end()  # the stream ends during the grace: its deliveries stay held (an ack still counts)
    s.ledger.forget([("m2", 1)])  # acked in the grace
    assert s.store.released == []
    await s.ledger.close()
    assert s.ledger.released
    assert s.store.released == [([("m1", 1)], "broker shut down before the ack", True)]
    await it.aclose()


async def test_close_releases_streams_still_open():
    s = Scene()
    s.store.due = [message("m1")]
    sub = s.stream()
    it, _ = await first_batch(sub)
    await s.ledger.close()
    assert sub.closed
    assert s.store.released == [([("m1", 1)], "broker shut down before the ack", True)]
    await it.aclose()
