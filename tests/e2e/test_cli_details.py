"""Smaller command-line details seen from outside: --version, serve --help, --json placement,
--limit, addresses without a port."""

from __future__ import annotations

import asyncio
import json
import re
import sys

import pytest
from a2a_broker_client import BrokerClient

import broker
from tests.conftest import ROOT
from tests.e2e.test_cli_agents import Run, cli, cli_env
from tests.e2e.test_cli_errors import assert_one_line


async def test_version_prints_the_version():
    r = await cli(None, "--version")
    assert r.rc == 0, r.err
    assert r.out.strip() == f"a2a-broker {broker.__version__}"


async def test_serve_help_shows_each_default_once():
    r = await cli(None, "serve", "--help")
    assert r.rc == 0, r.err
    text = " ".join(r.out.split())  # argparse wraps lines
    assert "(default: None)" not in text
    assert "default None" not in text
    assert text.count("default 127.0.0.1:50051") == 1
    assert text.count("default ./data/broker.db") == 1
    assert re.search(r"--address ADDRESS .*\[env A2A_BROKER_ADDRESS; default 127\.0\.0\.1:50051\]", text)


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address) as c:
        await c.register("alice", max_concurrent_tasks=1)
        yield c


async def test_json_is_accepted_before_the_subcommand(broker, client):
    before = await cli(broker.address, "--json", "agents", "list")
    after = await cli(broker.address, "agents", "list", "--json")
    assert before.rc == 0 and after.rc == 0, before.err + after.err
    assert json.loads(before.out) == json.loads(after.out)
    assert [a["agent_id"] for a in json.loads(before.out)] == ["alice"]


LIMITS = [("agents", "list"), ("messages", "list"), ("tasks", "list")]


@pytest.mark.parametrize("command", LIMITS, ids=[c[0] for c in LIMITS])
@pytest.mark.parametrize("value", ["0", "-1"])
async def test_a_limit_below_one_is_refused(command, value):
    r = await cli("127.0.0.1:1", *command, "--limit", value)
    assert r.rc == 2, r.err
    assert_one_line(r.err, "--limit", "at least 1")


async def test_a_client_address_without_a_port_is_refused():
    r = await cli(None, "agents", "list", "--address", "localhost")
    assert r.rc == 2, r.err
    assert_one_line(r.err, "localhost", "port")
    r = await cli("localhost", "agents", "list")  # from A2A_BROKER_ADDRESS
    assert r.rc == 2, r.err
    assert_one_line(r.err, "localhost", "port")


async def test_a_server_address_without_a_port_is_refused(tmp_path):
    r = await cli(None, "serve", "--address", "0.0.0.0", "--db", str(tmp_path / "b.db"))
    assert r.rc == 2, r.err
    assert_one_line(r.err, "--address", "port")


async def _client_cli(address: str | None, *args: str):
    """``a2a-broker-client ARGS`` (the client package's own command, ``python -m a2a_broker_client``)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "a2a_broker_client",
        *args,
        env=cli_env(address),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return Run(proc.returncode, out.decode(), err.decode())


async def test_the_client_command_takes_the_same_global_options(broker, client):
    """a2a-broker-client: --version, --json before the subcommand, one-line usage errors that
    name the command, and messages under its own name."""
    r = await _client_cli(None, "--version")
    assert r.rc == 0 and re.fullmatch(r"a2a-broker-client \S+\n", r.out), (r.rc, r.out, r.err)
    r = await _client_cli(broker.address, "--json", "agents", "list")
    assert r.rc == 0, r.err
    assert [a["agent_id"] for a in json.loads(r.out)] == ["alice"]
    r = await _client_cli(broker.address, "agents", "list", "--limit", "0")
    assert r.rc == 2
    assert_one_line(r.err)
    assert r.err.startswith("a2a-broker-client agents list: argument --limit")
    r = await _client_cli(broker.address, "agents", "get", "nobody")
    assert r.rc == 1
    assert r.err.startswith("a2a-broker-client: the broker refused: NOT_FOUND"), r.err
