"""Concurrency limits shared by several brokers on one PostgreSQL database (#26.3): a limit set
through one broker holds for claims racing through all of them, running counts and token buckets
alike (the limits' epoch tells each broker to reload them; every write is SERIALIZABLE)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from broker.server import start_server
from tests.conftest import make_settings, stopped, stubs_for
from tests.integration import tasks_helpers as th

from .test_tasks_fairness import keys, set_limit, submit_many


async def test_limits_hold_for_claims_racing_through_two_brokers(tmp_path: Path, pg_url: str):
    brokers = [await start_server(make_settings(tmp_path / str(i), db=pg_url)) for i in range(2)]
    a, b = (stubs_for(x.address) for x in brokers)
    try:
        agents = [f"w{i}" for i in range(6)]
        for w in agents:
            await th.register(a, w, capacity=10)
        await submit_many(b, 1, "warm-up")
        assert len(await th.claim(b, "w0")) == 1  # broker b has read the limits (none) before they change
        await set_limit(a, "two-at-once", key="k", max_running=2)
        await set_limit(a, "three-a-minute", key="r-*", rate=3, per=60.0)
        await submit_many(a, 10, "k")
        await submit_many(b, 10, "r-1")
        claims = [th.claim(s, w, n=10) for s in (a, b) for w in agents]
        got = [x for batch in await asyncio.gather(*claims) for x in batch]
        per_key = Counter(x.task.spec.concurrency_key for x in got)
        assert per_key["k"] == 2 and per_key["r-1"] == 3, per_key
        listed = await keys(b)
        assert (listed["k"].running, listed["k"].waiting) == (2, 8)
        assert (listed["r-1"].running, listed["r-1"].waiting) == (3, 7)
        assert listed["r-1"].tokens < 1
    finally:
        for s in (a, b):
            await s.channel.close()
        for x in brokers:
            await stopped(x)
