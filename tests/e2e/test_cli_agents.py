"""`a2a-broker agents ...` in a subprocess against a real broker; exit codes and the
unreachable-broker message."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass

import pytest
from a2a_broker_client import BrokerClient

from tests.conftest import ROOT, free_port


@dataclass
class Run:
    rc: int
    out: str
    err: str


def cli_env(address: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "A2A_BROKER_ADDRESS"}
    if address:
        env["A2A_BROKER_ADDRESS"] = address
    return env


async def cli(
    address: str | None,
    *args: str,
    timeout: float = 30.0,
    stdin: bytes | None = None,
    stdout: int | None = None,
) -> Run:
    """Run ``a2a-broker ARGS`` (the same entry point as the console script) with the address in the env
    (``stdout``: a file descriptor to write to instead of capturing; ``Run.out`` is then empty)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker",
        *args,
        env=cli_env(address),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if stdout is None else stdout,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"a2a-broker {' '.join(args)} did not finish within {timeout}s") from None
    assert proc.returncode is not None
    return Run(proc.returncode, (out or b"").decode(), err.decode())


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address) as c:
        yield c


async def test_agents_list_table_and_json(broker, client):
    r = await cli(broker.address, "agents", "list")
    assert (r.rc, r.out.strip(), r.err) == (0, "(no agents)", "")
    await client.register("alpha", max_concurrent_tasks=2, capabilities=["gpu", "py"])
    await client.register("beta", max_concurrent_tasks=1, agent_type="orchestrator")

    r = await cli(broker.address, "agents", "list")
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == [
        "AGENT",
        "TYPE",
        "STATUS",
        "TASKS",
        "CAPABILITIES",
        "LAST",
        "HEARTBEAT",
        "(UTC)",
    ]
    assert lines[1].split()[:5] == ["alpha", "worker", "available", "0/2", "gpu,py"]
    assert lines[2].split()[:4] == ["beta", "orchestrator", "available", "0/1"]

    r = await cli(None, "agents", "list", "--json", "--capability", "gpu", "--address", broker.address)
    assert r.rc == 0, r.err
    doc = json.loads(r.out)
    assert [a["agent_id"] for a in doc] == ["alpha"]
    assert doc[0]["capabilities"] == ["gpu", "py"] and doc[0]["status"] == "available"
    assert doc[0]["registered_at"].endswith("Z")


async def test_agents_get(broker, client):
    await client.register("alpha", max_concurrent_tasks=2, capabilities=["py"], labels={"zone": "eu"})
    r = await cli(broker.address, "agents", "get", "alpha")
    assert r.rc == 0, r.err
    fields = dict(line.split(":", 1) for line in r.out.splitlines())
    assert fields["agent_id"].strip() == "alpha"
    assert fields["status"].strip() == "available"
    assert fields["tasks"].strip() == "0/2"
    assert fields["labels"].strip() == '{"zone": "eu"}'

    r = await cli(broker.address, "agents", "get", "alpha", "--json")
    assert r.rc == 0 and json.loads(r.out)["max_concurrent_tasks"] == 2

    r = await cli(broker.address, "agents", "get", "nobody")
    assert r.rc == 1
    assert r.out == ""
    assert r.err.startswith("a2a-broker: the broker refused: NOT_FOUND: ")
    assert "Traceback" not in r.err


async def test_agents_register_and_deregister(broker, client):
    r = await cli(broker.address, "agents", "register", "cli-agent", "--capability", "x", "--capacity", "3")
    assert r.rc == 0, r.err
    assert r.out.startswith("registered cli-agent")
    assert (await client.get_agent("cli-agent")).max_concurrent_tasks == 3
    r = await cli(broker.address, "agents", "deregister", "cli-agent", "--json")
    assert r.rc == 0 and json.loads(r.out) == {"requeued_tasks": 0, "released_messages": 0}
    r = await cli(broker.address, "agents", "register", "bad id!", "--capacity", "1")
    assert r.rc == 1 and "INVALID_ARGUMENT" in r.err and "agent_id" in r.err


async def test_agents_watch(broker, client):
    await client.register("before", max_concurrent_tasks=1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker",
        "agents",
        "watch",
        "--snapshot",
        "--json",
        "--count",
        "3",
        "--timeout",
        "30",
        env=cli_env(broker.address),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    # The snapshot line proves the watch is live: later events cannot be missed.
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
    assert (first["type"], first["agent"]["agent_id"]) == ("registered", "before")
    await client.register("after", max_concurrent_tasks=1)
    await client.deregister("after")
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert [(e["type"], e["agent"]["agent_id"]) for e in events] == [
        ("registered", "after"),
        ("deregistered", "after"),
    ]

    # Table output, ended by --timeout with no events.
    r = await cli(broker.address, "agents", "watch", "--snapshot", "--timeout", "0.5")
    assert r.rc == 0, r.err
    assert "registered" in r.out and "before" in r.out


async def test_unreachable_broker_message_and_exit_code():
    address = f"127.0.0.1:{free_port()}"
    for args in (
        ["agents", "list"],
        ["agents", "get", "x", "--json"],
        ["tasks", "get", "t"],
        ["messages", "list"],
        ["subscribe", "a", "--count", "1"],
    ):
        r = await cli(address, *args)
        assert r.rc == 3, (args, r)
        assert r.out == ""
        assert r.err.startswith(f"a2a-broker: cannot reach the broker at {address} (UNAVAILABLE")
        assert "Set --address or A2A_BROKER_ADDRESS" in r.err
        assert "Traceback" not in r.err


async def test_usage_errors_exit_2():
    r = await cli("127.0.0.1:1", "agents", "list", "--status", "sleepy")
    assert r.rc == 2 and "invalid choice" in r.err
    r = await cli("127.0.0.1:1", "agents")
    assert r.rc == 2
    r = await cli("127.0.0.1:1", "tasks", "submit")  # neither TITLE nor --graph
    assert r.rc == 2 and "TITLE" in r.err and "Traceback" not in r.err
