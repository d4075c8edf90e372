"""`a2a-broker subscriptions create|list|get|delete|seek`, `send --subject` and `subscribe
--subscription` in a subprocess against a real broker."""

from __future__ import annotations

import json

import pytest
from a2a_broker_client import BrokerClient

from tests.e2e.test_cli_agents import cli


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address) as c:
        await c.register("pub", max_concurrent_tasks=1)
        await c.register("reader", max_concurrent_tasks=1)
        yield c


async def test_subscriptions_from_the_command_line(broker, client) -> None:
    a = broker.address
    r = await cli(a, "subscriptions", "create", "eu", "orders.eu.*", "--max-attempts", "3", "--ordering")
    assert (r.rc, r.out.strip()) == (0, "eu orders.eu.* (backlog 0)"), r.err
    r = await cli(
        a, "send", "--from", "pub", "--subject", "orders.eu.created", '{"n": 1}', "--ordering-key", "k"
    )
    assert r.rc == 0, r.err
    sent = await client.get_message(r.out.strip())
    assert (sent.subject, sent.ordering_key) == ("orders.eu.created", "k")

    r = await cli(a, "subscriptions", "list")
    assert r.rc == 0, r.err
    header, row = r.out.splitlines()
    assert header.split()[:3] == ["NAME", "FILTER", "BACKLOG"] and row.split()[:3] == [
        "eu",
        "orders.eu.*",
        "1",
    ]
    r = await cli(a, "subscriptions", "get", "eu", "--json")
    doc = json.loads(r.out)
    assert (doc["name"], doc["max_attempts"], doc["ordering"], doc["backlog"]) == ("eu", 3, True, 1)

    r = await cli(a, "subscribe", "reader", "--subscription", "eu", "--count", "1")
    assert r.rc == 0, r.err
    got = json.loads(r.out)
    assert (got["subject"], got["subscription"], got["sequence"]) == (
        "orders.eu.created",
        "eu",
        sent.sequence,
    )
    assert (await client.get_subscription("eu")).backlog == 0  # acked

    r = await cli(a, "subscriptions", "seek", "eu", "--sequence", str(sent.sequence))
    assert (r.rc, r.out.strip()) == (0, "eu: 1 replayed, 0 skipped (backlog 1)"), r.err
    r = await cli(a, "subscriptions", "create", "bad", "orders..x")
    assert r.rc == 1 and "filter" in r.err
    r = await cli(a, "subscriptions", "delete", "eu")
    assert (r.rc, r.out.strip()) == (0, "eu deleted"), r.err
    r = await cli(a, "subscriptions", "get", "eu")
    assert r.rc == 1 and "NOT_FOUND" in r.err
