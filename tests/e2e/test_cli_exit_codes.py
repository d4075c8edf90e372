"""Issue 22.4: no tracebacks and the documented exit codes: output into a closed pipe, an A2A task
that failed, a bad --expires, an address with a URL scheme, a negative age, and the connection
options before the subcommand."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from a2a_broker_client import BrokerClient

from tests.e2e.test_cli_agents import Run, cli
from tests.e2e.test_cli_errors import assert_one_line
from tests.integration.security_support import issue

EXIT_USAGE = 2
EXIT_TASK_FAILED = 4


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"http_address": "127.0.0.1:0", "metrics_census_s": 0}


async def cli_into_closed_pipe(address: str, *args: str) -> Run:
    """Run ``a2a-broker ARGS`` with stdout a pipe whose reader is gone (``| head`` after it ended)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return await cli(address, *args, stdout=write_end)
    finally:
        os.close(write_end)


async def test_stats_into_a_closed_pipe_ends_quietly(broker):
    async with BrokerClient(broker.address) as c:
        await c.register("alice", max_concurrent_tasks=1)
    r = await cli_into_closed_pipe(broker.address, "stats", "--http", broker.http_address)
    assert (r.rc, r.err) == (0, "")


async def test_tokens_list_into_a_closed_pipe_ends_quietly(tmp_path):
    db = tmp_path / "b.db"
    for i in range(3):
        issue(db, f"agent-{i}")
    r = await cli_into_closed_pipe("127.0.0.1:1", "tokens", "--db", str(db), "list")
    assert (r.rc, r.err) == (0, "")


async def _fail_one(client: BrokerClient, error: str) -> None:
    (a,) = await client.claim("summarizer", wait=20)
    await client.fail(a.task.task_id, "summarizer", a.attempt, error, non_retryable=True)


async def test_a2a_send_of_a_task_that_failed_exits_4(broker):
    async with BrokerClient(broker.address, timeout=20) as c:
        await c.register("summarizer", capabilities=["summarize"], exposure="a2a")
        worker = asyncio.ensure_future(_fail_one(c, "the document is empty"))
        r = await cli(broker.address, "a2a", "send", "", "--skill", "summarize")
        await worker
    assert r.out.split()[1] == "failed", r.out
    assert r.rc == EXIT_TASK_FAILED, (r.rc, r.out, r.err)
    assert "failed" in r.err and "Traceback" not in r.err


async def test_tokens_expires_in_an_unknown_unit_is_a_usage_error(tmp_path):
    r = await cli(
        None, "tokens", "--db", str(tmp_path / "b.db"), "create", "--role", "admin", "--expires", "1y"
    )
    assert r.rc == EXIT_USAGE, r
    assert_one_line(r.err, "--expires", "'1y'", "7d")
    assert not (tmp_path / "b.db").exists()  # refused before anything was made


@pytest.mark.parametrize("address", ["http://127.0.0.1:50051", "grpc://127.0.0.1:50051"])
async def test_an_address_with_a_url_scheme_is_a_usage_error(address):
    r = await cli(None, "agents", "list", "--address", address)
    assert r.rc == EXIT_USAGE, r
    assert_one_line(r.err, "--address", address, "HOST:PORT", "127.0.0.1:50051")
    assert "Is it running" not in r.err
    r = await cli(address, "agents", "list")  # from A2A_BROKER_ADDRESS
    assert r.rc == EXIT_USAGE, r
    assert_one_line(r.err, "A2A_BROKER_ADDRESS", "HOST:PORT")


async def test_a_negative_age_is_refused_as_negative():
    r = await cli("127.0.0.1:1", "messages", "purge", "--older-than", "-3d")
    assert r.rc == EXIT_USAGE, r
    assert_one_line(r.err, "--older-than", "'-3d'", "negative")
    assert "expected one argument" not in r.err


async def test_connection_options_are_accepted_before_the_subcommand(broker):
    async with BrokerClient(broker.address) as c:
        await c.register("alice", max_concurrent_tasks=1)
    before = await cli(None, "--address", broker.address, "--json", "agents", "list")
    assert before.rc == 0, before.err
    assert [a["agent_id"] for a in json.loads(before.out)] == ["alice"]
    # After the subcommand as before; and the one after the subcommand wins.
    after = await cli(
        None, "--address", "127.0.0.1:1", "agents", "list", "--json", "--address", broker.address
    )
    assert after.rc == 0, after.err
    assert json.loads(after.out) == json.loads(before.out)
    # A token before the subcommand is sent (this broker has no auth: it is ignored, not refused).
    r = await cli(broker.address, "--token", "a2a.x.y", "agents", "list")
    assert r.rc == 0, r.err
