"""Topics with several brokers on one PostgreSQL database: a subscription made or deleted through
one broker is matched at once by sends through another (each broker's subject index follows the
stored version), and consumers of one subscription on different brokers compete for its messages,
woken across brokers by notification."""

from __future__ import annotations

from broker.pb import messaging_pb2 as pb

from .messaging_support import register
from .topics_support import consume, create, figures, publish, settle


async def test_subscriptions_changed_on_one_broker_are_matched_by_another(cluster) -> None:
    _, a = await cluster()
    broker_b, b = await cluster()
    await register(a, "pub")
    await create(a, "first", "x.>")
    await publish(b, "pub", "x.1")  # b builds its index now, with "first" in it
    assert (await figures(a, "first")).backlog == 1
    rebuilds = broker_b.storage.subject_index.rebuilds  # type: ignore[attr-defined]

    await create(a, "second", "x.*")  # made through a: b's index is behind
    await publish(b, "pub", "x.2")
    assert [(await figures(a, n)).backlog for n in ("first", "second")] == [2, 1]
    await publish(b, "pub", "x.3")  # b rebuilt once, then matches from memory again
    assert broker_b.storage.subject_index.rebuilds == rebuilds + 1  # type: ignore[attr-defined]

    await a.messaging.DeleteSubscription(pb.DeleteSubscriptionRequest(name="first"))
    await publish(b, "pub", "x.4")
    assert (await figures(b, "second")).backlog == 3
    listed = await b.messaging.ListSubscriptions(pb.ListSubscriptionsRequest())
    assert [s.name for s in listed.subscriptions] == ["second"]


async def test_consumers_on_two_brokers_compete_for_one_subscription(cluster) -> None:
    _, a = await cluster()
    _, b = await cluster()
    for agent, stubs in (("pub", a), ("ca", a), ("cb", b)):
        await register(stubs, agent)
    await create(a, "jobs", "jobs.>")
    sa = await consume(a, "ca", "jobs", max_in_flight=1)
    sb = await consume(b, "cb", "jobs", max_in_flight=1)
    await publish(a, "pub", "jobs.1", b"one")
    await publish(a, "pub", "jobs.2", b"two")  # the second goes to the consumer with room: on b
    got_a, got_b = await sa.one(), await sb.one()
    assert sorted([got_a.payload, got_b.payload]) == [b"one", b"two"]
    await settle(a, "ca", [got_a])
    await settle(b, "cb", [got_b])
    sb.cancel()
    await publish(b, "pub", "jobs.3", b"three")  # sent through b: a's consumer is woken by notification
    assert (await sa.one()).payload == b"three"
    sa.cancel()
