"""Concurrency keys as an operator sees them (#26.3), on a real broker (both backends): each key's
running and waiting tasks in /metrics (the top N keys, the rest as ``_other``), in the console's
overview, and from ListConcurrencyKeys."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from broker.pb import tasks_pb2 as pb
from broker.server import Broker

from .tasks_helpers import claim, register
from .test_observability import one, scrape
from .test_tasks_fairness import keys, set_limit, submit_many


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"http_address": "127.0.0.1:0", "metrics_census_s": 0, "metrics_top_n": 2}


async def overview(broker: Broker) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://{broker.http_address}/api/overview") as r,
    ):
        assert r.status == 200, await r.text()
        return await r.json()  # type: ignore[no-any-return]


async def test_each_keys_running_and_waiting_tasks_are_in_metrics_the_console_and_the_api(broker, stubs):
    for key, most in (("k-a", 3), ("k-b", 1), ("k-c", 1)):
        await set_limit(stubs, key, key=key, max_running=most)
    await submit_many(stubs, 3, "k-a")
    await submit_many(stubs, 5, "k-b")
    await submit_many(stubs, 2, "k-c")
    await register(stubs, "w", capacity=10)
    assert len(await claim(stubs, "w", n=10)) == 5  # a: 3, b: 1, c: 1; b and c wait

    m = await scrape(broker)
    running = {dict(lb)["key"]: v for (n, lb), v in m.items() if n == "a2a_concurrency_key_tasks_running"}
    waiting = {dict(lb)["key"]: v for (n, lb), v in m.items() if n == "a2a_concurrency_key_tasks_waiting"}
    assert running == {"k-a": 3, "k-b": 1, "_other": 1}  # the top 2 (ties by key), the rest summed
    assert waiting == {"k-b": 4, "k-c": 1, "_other": 0}
    assert one(m, "a2a_concurrency_key_tasks_running", key="k-a") == 3

    o = (await overview(broker))["keys"]
    assert o == {
        "running": [["k-a", 3], ["k-b", 1]],
        "running_total": 5,
        "waiting": [["k-b", 4], ["k-c", 1]],
        "waiting_total": 5,
    }

    listed = await keys(stubs)
    assert {k: (v.running, v.waiting, v.limit, v.max_running) for k, v in listed.items()} == {
        "k-a": (3, 0, "k-a", 3),
        "k-b": (1, 4, "k-b", 1),
        "k-c": (1, 1, "k-c", 1),
    }
    only_b = await stubs.tasks.ListConcurrencyKeys(pb.ListConcurrencyKeysRequest(prefix="k-b"))
    assert [k.key for k in only_b.keys] == ["k-b"]
