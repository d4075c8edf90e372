"""`a2a-broker subscribe` runs until --count, --timeout or Ctrl-C: its open stream keeps the agent
online however many liveness timeouts pass without a Heartbeat."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from a2a_broker_client import AgentStatus, BrokerClient

from tests.conftest import eventually
from tests.e2e.test_cli_agents import cli

LIVENESS_S = 0.3


@pytest.fixture
def settings_overrides():
    return {"heartbeat_interval_s": 0.1, "liveness_timeout_s": LIVENESS_S, "sweeper_period_s": 0.05}


async def test_cli_subscribe_outlives_several_liveness_timeouts(broker):
    async with BrokerClient(broker.address) as client:
        await client.register("alice", max_concurrent_tasks=1)
        await client.register("bob", max_concurrent_tasks=1)
        run = asyncio.ensure_future(
            cli(broker.address, "subscribe", "bob", "--count", "1", "--timeout", "30")
        )
        try:

            async def streaming() -> bool:
                return broker.registry.open_streams("bob") > 0

            await eventually(streaming, timeout=20, what="the CLI's Subscribe stream")
            t0 = time.monotonic()

            async def outlasted() -> bool:
                alice = await client.get_agent("alice")  # silent, no stream: offline by now
                return alice.status == AgentStatus.OFFLINE and time.monotonic() - t0 > 5 * LIVENESS_S

            await eventually(outlasted, timeout=15, what="several liveness timeouts")
            assert not run.done(), run.result()
            assert (await client.get_agent("bob")).status == AgentStatus.AVAILABLE
            mid = (await client.send("alice", "bob", {"late": True})).message_id
            r = await asyncio.wait_for(run, 20)
        finally:
            run.cancel()
    assert r.rc == 0, r.err
    (line,) = r.out.splitlines()
    assert json.loads(line)["message_id"] == mid
