"""Issue 22.5: units and input. Every duration option takes the same forms; a payload meant as JSON
that is not is refused; a listing cut short by --limit says so and how to go on; `tokens --db`
refuses a database that does not exist unless asked to create it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from a2a_broker_client import BrokerClient

from tests.e2e.test_cli_agents import cli
from tests.e2e.test_cli_errors import assert_one_line

EXIT_USAGE = 2


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address) as c:
        await c.register("alice", max_concurrent_tasks=1)
        await c.register("bob", max_concurrent_tasks=1)
        yield c


async def test_ttl_and_lease_timeout_take_units_like_older_than(broker, client):
    r = await cli(broker.address, "send", "--from", "alice", "--to", "bob", "hi", "--ttl", "5m")
    assert r.rc == 0, r.err
    m = await client.get_message(r.out.strip())
    assert m.expires_at is not None
    assert abs(m.expires_at - m.created_at - timedelta(minutes=5)) < timedelta(seconds=1)

    r = await cli(broker.address, "tasks", "submit", "t", "--lease-timeout", "1.5m", "--json")
    assert r.rc == 0, r.err
    task = await client.get_task(json.loads(r.out)["task"]["task_id"])
    assert task.spec.lease_timeout == 90

    r = await cli(broker.address, "messages", "purge", "--older-than", "2w")
    assert r.rc == 0, r.err


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("send", "--from", "a", "--to", "b", "x", "--ttl", "5 minutes"), "--ttl"),
        (("tasks", "submit", "t", "--lease-timeout", "0"), "--lease-timeout"),
        (("subscribe", "a", "--timeout", "1y"), "--timeout"),
    ],
    ids=["ttl", "lease-timeout", "timeout"],
)
async def test_a_bad_duration_is_a_usage_error_naming_the_forms(args, flag):
    r = await cli("127.0.0.1:1", *args)
    assert r.rc == EXIT_USAGE, r
    assert_one_line(r.err, flag, "90s, 15m, 2h, 7d")


def test_the_tokens_command_takes_the_same_durations_as_the_client_commands():
    from a2a_broker_client.cli._common import positive_duration

    from broker.commands.tokens import parse_duration

    for text in ["90", "1.5", "90s", "15m", "2h", "7d", "2w", " 3 d ", "1.5H"]:
        assert parse_duration(text) == positive_duration(text), text
    for text in ["", "1y", "-3d", "0", "0s", "5 minutes", "d", "1e3"]:
        for parse in (parse_duration, positive_duration):
            with pytest.raises(Exception, match="duration|more than 0"):
                parse(text)


@pytest.mark.parametrize(
    "args",
    [
        ("send", "--from", "alice", "--to", "bob", "{bad json"),
        ("tasks", "submit", "t", "--payload", "[1, 2"),
    ],
    ids=["send", "tasks-submit"],
)
async def test_a_payload_meant_as_json_that_is_not_is_refused(broker, client, args):
    r = await cli(broker.address, *args)
    assert r.rc == EXIT_USAGE, r
    assert_one_line(r.err, "JSON", "--content-type text/plain")
    assert (await client.list_messages()).items == [] and (await client.list_tasks()).items == []
    # Said to be text, it goes as text.
    r = await cli(broker.address, *args, "--content-type", "text/plain")
    assert r.rc == 0, r.err


async def test_a_listing_cut_short_says_so_and_pages_on(broker, client):
    sent = [(await client.send("alice", "bob", f"m{i}")).message_ids[0] for i in range(5)]
    r = await cli(broker.address, "messages", "list", "--limit", "2", "--json")
    assert r.rc == 0, r.err
    shown = [m["message_id"] for m in json.loads(r.out)]  # stdout is still one JSON document
    assert shown == sent[:2]
    assert_one_line(r.err, "first 2 shown", "more match", "--page-token")
    token = r.err.split("--page-token ")[1].split()[0]

    r = await cli(broker.address, "messages", "list", "--limit", "2", "--page-token", token)
    assert r.rc == 0, r.err
    assert [line.split()[0] for line in r.out.splitlines()[1:]] == sent[2:4]
    token = r.err.split("--page-token ")[1].split()[0]

    r = await cli(broker.address, "messages", "list", "--limit", "2", "--page-token", token)
    assert r.rc == 0 and r.err == "", r.err  # the last one: nothing more to say
    assert [line.split()[0] for line in r.out.splitlines()[1:]] == sent[4:]

    r = await cli(broker.address, "tasks", "list", "--limit", "5")
    assert r.rc == 0 and r.err == "", r.err  # everything shown: no notice
    for i in range(3):
        await client.submit(f"t{i}")
    r = await cli(broker.address, "tasks", "list", "--limit", "2")
    assert r.rc == 0 and "more match" in r.err, r.err


async def test_tokens_refuse_a_database_that_does_not_exist(tmp_path):
    typo = tmp_path / "tyop" / "broker.db"
    for args in (("list",), ("revoke", "t1"), ("create", "--role", "admin")):
        r = await cli(None, "tokens", "--db", str(typo), *args)
        assert r.rc == EXIT_USAGE, r
        assert_one_line(r.err, "no database", str(typo), "--db")
        assert not typo.parent.exists()  # nothing made, not even the folder
    assert "--create-db" in r.err  # `create` says how to make one

    r = await cli(None, "tokens", "--db", str(typo), "create", "--role", "admin", "--create-db")
    assert r.rc == 0, r.err
    assert typo.exists()
    r = await cli(None, "--json", "tokens", "--db", str(typo), "list")
    assert r.rc == 0 and [t["subject"] for t in json.loads(r.out)] == ["admin"], r
