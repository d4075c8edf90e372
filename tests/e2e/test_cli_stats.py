"""`a2a-broker stats`: the overview read from the broker's /metrics, in a subprocess."""

from __future__ import annotations

import json
from typing import Any

import pytest
from a2a_broker_client import BrokerClient

from tests.conftest import free_port
from tests.e2e.test_cli_agents import cli


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"http_address": "127.0.0.1:0", "metrics_census_s": 0}


async def test_stats_shows_agents_messages_and_tasks(broker):
    async with BrokerClient(broker.address) as c:
        await c.register("a", max_concurrent_tasks=1)
        await c.register("b", max_concurrent_tasks=1)
        await c.send("a", "b", "waiting")
        await c.submit("queued")
    r = await cli(broker.address, "--json", "stats", "--http", broker.http_address)
    assert r.rc == 0, r.err
    view = json.loads(r.out)
    assert view["agents"]["available"] == 2
    assert view["messages"] == {"ready": 1, "unacked": 0, "scheduled": 0, "dead_letters": 0}
    assert view["tasks"]["ready"] == 1
    r = await cli(broker.address, "stats", "--http", broker.http_address)
    assert r.rc == 0 and "agents" in r.out and "available    2" in r.out, r.out


async def test_stats_without_a_listener_says_so_in_one_line():
    r = await cli(None, "stats", "--http", f"127.0.0.1:{free_port()}")
    assert r.rc == 3 and len(r.err.strip().splitlines()) == 1 and "--http" in r.err, r.err
