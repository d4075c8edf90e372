"""Contract: sends of each target kind, claims in order, acks, nacks, releases, sweeps, expiry,
retention, dead letters and reads."""

from __future__ import annotations

import pytest

from broker.errors import NotFound
from broker.models.messages import MessageFilter, MessageStatus

from .helpers import ACK, T0, S, anycast, broadcast, claim, direct, new_message, register, send


@pytest.fixture
def contract_settings():
    return {"message_retention_s": 60.0}


async def test_direct_send_is_claimed_by_its_recipient_only(store):
    a = await register(store, "a")
    b = await register(store, "b")
    (mid,) = await send(store, "b", direct("a"), payload=b"hi")
    assert await claim(store, b) == []
    (m,) = await claim(store, a)
    assert (m.message_id, m.payload, m.status, m.attempt) == (mid, b"hi", MessageStatus.DELIVERED, 1)
    assert m.ack_deadline == T0 + ACK
    assert await claim(store, a) == []  # delivered once, not again while outstanding


async def test_broadcast_makes_one_copy_per_agent_with_the_capability_sender_excluded(store):
    s = await register(store, "s", ["gpu"])
    await register(store, "a", ["gpu"])
    await register(store, "b", ["cpu"])
    await register(store, "c", ["gpu"])
    ids = await send(store, "s", broadcast("gpu"))
    assert len(ids) == 2
    copies = [await store.get_message(i) for i in ids]
    assert sorted(c.recipient_id for c in copies) == ["a", "c"]
    assert len({c.send_id for c in copies}) == 1
    assert await claim(store, s) == []
    ids = await send(store, "s", broadcast(include_sender=True))
    assert len(ids) == 4


async def test_anycast_goes_to_exactly_one_agent_with_the_capability(store):
    await register(store, "s")
    a = await register(store, "a", ["ocr"])
    b = await register(store, "b", ["ocr"])
    other = await register(store, "c", ["tts"])
    (mid,) = await send(store, "s", anycast("ocr"))
    assert await claim(store, other) == []
    got = await claim(store, a) + await claim(store, b)
    assert [m.message_id for m in got] == [mid]
    assert got[0].recipient_id in ("a", "b")


async def test_claims_come_highest_priority_first_then_in_send_order_up_to_the_limit(store):
    a = await register(store, "a")
    await register(store, "s")
    low1 = await send(store, "s", direct("a"), priority=2)
    high = await send(store, "s", direct("a"), priority=9)
    low2 = await send(store, "s", direct("a"), priority=2)
    mid = await send(store, "s", direct("a"))
    first = await store.claim_messages("a", a.capabilities, 2, T0, T0 + ACK)
    rest = await claim(store, a)
    assert [m.message_id for m in first + rest] == high + mid + low1 + low2


async def test_batch_sends_are_all_or_nothing_and_independent_sends_stand_alone(store):
    await register(store, "s")
    await register(store, "a")
    good = new_message("s", direct("a"))
    bad = new_message("s", direct("a"), idempotency_key="k")
    bad.sender_id = "nobody"
    with pytest.raises(NotFound):
        await store.send_messages([good, bad], T0, batch=True)
    assert (await store.list_messages(MessageFilter()))[0] == []
    out = await store.send_messages([new_message("s", direct("a")), bad], T0)
    assert not isinstance(out.results[0], Exception) and isinstance(out.results[1], NotFound)
    assert len((await store.list_messages(MessageFilter()))[0]) == 1


async def test_a_repeated_idempotency_key_returns_the_first_send(store):
    await register(store, "s")
    await register(store, "a")
    first = (await store.send_messages([new_message("s", direct("a"), idempotency_key="k1")], T0)).results[0]
    again = (
        await store.send_messages([new_message("s", direct("a"), idempotency_key="k1")], T0 + S)
    ).results[0]
    assert again.message_ids == first.message_ids and again.duplicate and not first.duplicate


async def test_ack_finishes_a_delivery_and_only_the_recipient_may_ack(store):
    a = await register(store, "a")
    await register(store, "s")
    (mid,) = await send(store, "s", direct("a"))
    await claim(store, a)
    with pytest.raises(NotFound):
        await store.ack_messages("a", ["m-unknown"], T0)
    assert (await store.ack_messages("a", [mid], T0 + S)).ids == [(mid, 1)]
    m = await store.get_message(mid)
    assert m.status is MessageStatus.PROCESSED and m.processed_at == T0 + S
    assert await claim(store, a, now=T0 + 2 * S) == []


async def test_nack_redelivers_after_the_delay_with_the_next_attempt(store):
    a = await register(store, "a")
    await register(store, "s")
    (mid,) = await send(store, "s", direct("a"))
    await claim(store, a)
    changed = await store.nack_messages("a", [mid], T0 + S, 10 * S, False, "busy")
    assert changed.requeued == 1 and changed.dead == 0
    assert await claim(store, a, now=T0 + 5 * S) == []
    (m,) = await claim(store, a, now=T0 + 11 * S)
    assert m.message_id == mid and m.attempt == 2


async def test_reject_and_exhausted_attempts_dead_letter_and_requeue_brings_them_back(store):
    a = await register(store, "a")
    await register(store, "s")
    (rejected,) = await send(store, "s", direct("a"))
    (tired,) = await send(store, "s", direct("a"), max_attempts=1)
    await claim(store, a)
    assert (await store.nack_messages("a", [rejected], T0, 0, True, "poison")).dead == 1
    assert (await store.nack_messages("a", [tired], T0, 0, False, "again")).dead == 1
    dead, _ = await store.list_messages(MessageFilter(status=MessageStatus.FAILED))
    assert sorted(m.message_id for m in dead) == sorted([rejected, tired])
    assert (await store.get_message(rejected)).last_error
    changed = await store.requeue_messages([rejected, tired], T0 + S)
    assert changed.requeued == 2
    assert sorted(m.message_id for m in await claim(store, a, now=T0 + 2 * S)) == sorted([rejected, tired])


async def test_released_deliveries_are_pending_again_and_refund_gives_the_attempt_back(store):
    a = await register(store, "a")
    await register(store, "s")
    (kept,) = await send(store, "s", direct("a"))
    (refunded,) = await send(store, "s", direct("a"))
    await claim(store, a)
    await store.release_deliveries([(kept, 1)], T0 + S, "stream ended", refund=False)
    await store.release_deliveries([(refunded, 1), (kept, 1)], T0 + S, "never sent", refund=True)
    again = {m.message_id: m.attempt for m in await claim(store, a, now=T0 + 2 * S)}
    assert again == {kept: 2, refunded: 1}


async def test_a_release_of_an_older_attempt_changes_nothing(store):
    a = await register(store, "a")
    await register(store, "s")
    (mid,) = await send(store, "s", direct("a"))
    await claim(store, a)
    await store.nack_messages("a", [mid], T0, 0, False, "")
    await claim(store, a, now=T0 + S)  # attempt 2 outstanding
    changed = await store.release_deliveries([(mid, 1)], T0 + 2 * S, "late", refund=False)
    assert changed.ids == []
    assert (await store.get_message(mid)).status is MessageStatus.DELIVERED


async def test_stale_deliveries_of_a_previous_process_are_released(store):
    a = await register(store, "a")
    await register(store, "s")
    (mid,) = await send(store, "s", direct("a"))
    await claim(store, a)
    changed = await store.release_stale_deliveries(T0 + S, T0 + S, "restart")
    assert changed.ids == [(mid, 1)]
    assert (await store.get_message(mid)).status is MessageStatus.PENDING


async def test_scheduled_messages_wait_for_their_time(store):
    a = await register(store, "a")
    await register(store, "s")
    (mid,) = await send(store, "s", direct("a"), deliver_after=T0 + 10 * S)
    assert await claim(store, a, now=T0 + 9 * S) == []
    assert [m.message_id for m in await claim(store, a, now=T0 + 10 * S)] == [mid]


async def test_sweep_releases_lapsed_deliveries_expires_and_purges_after_retention(store):
    a = await register(store, "a")
    await register(store, "s")
    (lapsed,) = await send(store, "s", direct("a"))
    await claim(store, a)  # ack deadline T0 + ACK
    (expiring,) = await send(store, "s", direct("a"), ttl_us=5 * S)
    out = await store.sweep_messages(T0 + ACK + S, purge_before=T0, limit=100)
    assert out.lapsed.ids == [(lapsed, 1)] and out.expired == [(expiring, 0)]
    assert (await store.get_message(lapsed)).status is MessageStatus.PENDING
    assert (await store.get_message(expiring)).status is MessageStatus.EXPIRED
    # Retention counts from when a copy became final.
    out = await store.sweep_messages(T0 + ACK + 2 * S, purge_before=T0 + ACK, limit=100)
    assert out.purged == 0
    out = await store.sweep_messages(T0 + ACK + 3 * S, purge_before=T0 + ACK + 2 * S, limit=100)
    assert out.purged == 1
    with pytest.raises(NotFound):
        await store.get_message(expiring)


async def test_list_messages_filters_and_pages_in_send_order(store):
    await register(store, "a")
    await register(store, "b")
    ids = []
    for i in range(5):
        ids += await send(store, "a", direct("b"), conversation_id="c1" if i % 2 else "c2", now=T0 + i)
    page, last = await store.list_messages(MessageFilter(page_size=2))
    assert [m.message_id for m in page] == ids[:2] and last is not None
    rest, _ = await store.list_messages(MessageFilter(page_size=10, after_seq=last))
    assert [m.message_id for m in rest] == ids[2:]
    c1, _ = await store.list_messages(MessageFilter(conversation_id="c1"))
    assert [m.message_id for m in c1] == [ids[1], ids[3]]
    window, _ = await store.list_messages(MessageFilter(created_after=T0 + 1, created_before=T0 + 3))
    assert [m.message_id for m in window] == ids[1:3]  # created_after inclusive, created_before not
