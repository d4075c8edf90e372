"""`a2a-broker send|subscribe|messages ...` in a subprocess against a real broker."""

from __future__ import annotations

import json

import pytest
from a2a_broker_client import BrokerClient, MessageStatus

from tests.e2e.test_cli_agents import cli


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address) as c:
        await c.register("alice", max_concurrent_tasks=1)
        await c.register("bob", max_concurrent_tasks=1, capabilities=["chat"])
        await c.register("carol", max_concurrent_tasks=1, capabilities=["chat"])
        yield c


async def test_send_table_json_and_targets(broker, client):
    r = await cli(
        broker.address,
        "send",
        "--from",
        "alice",
        "--to",
        "bob",
        '{"a": 1}',
        "--priority",
        "8",
        "--type",
        "greet",
        "--header",
        "k=v",
        "--conversation-id",
        "conv",
    )
    assert r.rc == 0, r.err
    mid = r.out.strip()
    m = await client.get_message(mid)
    assert (m.recipient_id, m.priority, m.message_type, m.headers) == ("bob", 8, "greet", {"k": "v"})
    assert m.content_type == "application/json" and m.data == {"a": 1} and m.conversation_id == "conv"

    r = await cli(broker.address, "send", "--from", "alice", "--broadcast", "chat", "hello all", "--json")
    assert r.rc == 0, r.err
    doc = json.loads(r.out)
    assert len(doc["message_ids"]) == 2 and doc["duplicate"] is False
    assert (await client.get_message(doc["message_ids"][0])).data == "hello all"

    r = await cli(broker.address, "send", "--from", "alice", "--anycast", "chat", "-", stdin=b"from stdin")
    assert r.rc == 0, r.err
    assert (await client.get_message(r.out.strip())).text == "from stdin"

    args = ["send", "--from", "alice", "--to", "bob", "x", "--idempotency-key", "k1"]
    first = await cli(broker.address, *args)
    again = await cli(broker.address, *args)
    assert again.out.splitlines() == [first.out.strip(), "(duplicate: nothing new stored)"]

    r = await cli(broker.address, "send", "--from", "alice", "--to", "nobody", "x", "--require-recipient")
    assert r.rc == 1 and "NOT_FOUND" in r.err and r.out == ""
    r = await cli(broker.address, "send", "--from", "alice", "--to", "nobody", "x")  # waits for it
    assert r.rc == 0 and (await client.get_message(r.out.strip())).awaiting_recipient
    r = await cli(broker.address, "send", "--from", "alice", "--to", "bob", "x", "--priority", "11")
    assert r.rc == 1 and "INVALID_ARGUMENT" in r.err and "priority" in r.err
    r = await cli(broker.address, "send", "--from", "alice", "x")  # no target
    assert r.rc == 2


async def test_subscribe_prints_json_lines_and_acks(broker, client):
    ids = [(await client.send("alice", "bob", {"n": i}, priority=i)).message_id for i in range(3)]
    r = await cli(broker.address, "subscribe", "bob", "--count", "3", "--timeout", "20")
    assert r.rc == 0, r.err
    lines = [json.loads(x) for x in r.out.splitlines()]
    assert [x["payload"] for x in lines] == [{"n": 2}, {"n": 1}, {"n": 0}]  # priority order
    assert {x["message_id"] for x in lines} == set(ids) and lines[0]["status"] == "delivered"
    for i in ids:
        assert (await client.get_message(i)).status == MessageStatus.PROCESSED

    mid = (await client.send("alice", "carol", "keep")).message_id
    r = await cli(broker.address, "subscribe", "carol", "--count", "1", "--no-ack")
    assert r.rc == 0 and json.loads(r.out)["message_id"] == mid
    assert (await client.get_message(mid)).status != MessageStatus.PROCESSED

    r = await cli(broker.address, "subscribe", "bob", "--timeout", "0.3")  # nothing waiting
    assert (r.rc, r.out) == (0, "")
    r = await cli(broker.address, "subscribe", "nobody", "--timeout", "5")
    assert r.rc == 1 and "NOT_FOUND" in r.err


async def test_messages_list_get_dead_letters_requeue(broker, client):
    mid = (await client.send("alice", "bob", "poison pill", message_type="job")).message_id
    other = (await client.send("alice", "carol", {"ok": True})).message_id
    r = await cli(broker.address, "messages", "list", "--recipient", "bob")
    assert r.rc == 0, r.err
    head, row = r.out.splitlines()
    assert head.split()[:8] == ["MESSAGE", "STATUS", "FROM", "TO", "TYPE", "PRI", "ATTEMPT", "CREATED"]
    assert row.split()[:7] == [mid, "pending", "alice", "bob", "job", "5", "0/5"]
    assert row.endswith("poison pill")
    r = await cli(broker.address, "messages", "list", "--json", "--sender", "alice")
    assert [m["message_id"] for m in json.loads(r.out)] == [mid, other]
    r = await cli(broker.address, "messages", "list", "--status", "processed")
    assert (r.rc, r.out.strip()) == (0, "(no messages)")

    r = await cli(broker.address, "messages", "get", mid)
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in r.out.splitlines())}
    assert fields["status"] == "pending" and fields["payload"] == "poison pill" and fields["to"] == "bob"
    r = await cli(broker.address, "messages", "get", other, "--json")
    assert json.loads(r.out)["payload"] == {"ok": True}
    r = await cli(broker.address, "messages", "get", "nope")
    assert r.rc == 1 and "NOT_FOUND" in r.err

    r = await cli(broker.address, "messages", "dead-letters")
    assert (r.rc, r.out.strip()) == (0, "(no dead letters)")
    async with client.subscribe("bob") as stream:
        m = await stream.__anext__()
        await client.nack("bob", m.message_id, reject=True, reason="cannot parse")
    r = await cli(broker.address, "messages", "dead-letters")
    assert r.rc == 0
    assert r.out.splitlines()[1].split()[:4] == [mid, "alice", "bob", "job"] and "cannot parse" in r.out
    r = await cli(broker.address, "messages", "dead-letters", "--json")
    assert [m["message_id"] for m in json.loads(r.out)] == [mid]

    r = await cli(broker.address, "messages", "requeue", mid)
    assert (r.rc, r.out.strip()) == (0, "requeued 1 message")
    assert (await client.get_message(mid)).status == MessageStatus.PENDING
    r = await cli(broker.address, "messages", "requeue", mid, "--json")
    assert r.rc == 1 and "FAILED_PRECONDITION" in r.err
    async with client.subscribe("bob") as stream:
        m = await stream.__anext__()
        await client.nack("bob", m.message_id, reject=True, reason="still broken")
    r = await cli(broker.address, "messages", "requeue", mid, "--json")
    assert (r.rc, json.loads(r.out)) == (0, {"requeued": 1})


async def test_messages_purge_deletes_dead_letters_older_than_an_age(broker, client):
    mid = (await client.send("alice", "bob", "doomed")).message_id
    async with client.consume("bob") as stream:
        await stream.__anext__()
        await stream.nack(mid, reject=True)
    r = await cli(broker.address, "messages", "purge", "--older-than", "1h")
    assert (r.rc, r.out.strip()) == (0, "purged 0 messages"), r.err  # it is younger than that
    r = await cli(broker.address, "--json", "messages", "purge")
    assert r.rc == 0 and json.loads(r.out) == {"purged": 1}, r.err
    r = await cli(broker.address, "messages", "purge", "--older-than", "soon")
    assert r.rc == 2 and "--older-than" in r.err


async def test_thread_and_conversations(broker):
    async with BrokerClient(broker.address) as c:
        await c.register("p")
        await c.register("q")
        first = (await c.send("p", "q", "hello", conversation_id="conv-cli")).message_ids[0]
        await c.send("q", "p", "hi back", in_reply_to=first)
    r = await cli(broker.address, "messages", "thread", "conv-cli")
    assert r.rc == 0, r.err
    lines = r.out.splitlines()[1:]
    assert len(lines) == 2 and first in lines[1] and "hi back" in lines[1]
    r = await cli(broker.address, "messages", "conversations", "--participant", "q", "--json")
    assert [(x["conversation_id"], x["message_count"]) for x in json.loads(r.out)] == [("conv-cli", 2)]
