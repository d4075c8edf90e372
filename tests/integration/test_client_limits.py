"""The Python client's concurrency keys and limits against a real broker (both backends): a task's
key round-trips, limits are set, listed, replaced and deleted as typed values, and a key's usage
reads back with the limit that governs it."""

from __future__ import annotations

import pytest
from a2a_broker_client import BrokerClient, ConcurrencyLimit, InvalidArgumentError, NotFoundError


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("w", max_concurrent_tasks=5, capabilities=["py"])
        yield c


async def test_limits_and_keys_through_the_client(client):
    made = await client.set_concurrency_limit("tenants", key="tenant-*", max_running=1, rate=10, per=60)
    assert (made.name, made.key, made.max_running, made.rate, made.per, made.burst) == (
        "tenants", "tenant-*", 1, 10, 60.0, 10,
    )  # fmt: skip
    assert made.created_at is not None
    assert await client.list_concurrency_limits() == [made]

    first = (await client.submit("a", required_capabilities=["py"], concurrency_key="tenant-1")).task
    await client.submit("b", required_capabilities=["py"], concurrency_key="tenant-1")
    assert first.spec.concurrency_key == "tenant-1"
    got = await client.claim("w", max_tasks=5)
    assert [a.task.task_id for a in got] == [first.task_id]  # the second waits: max_running 1
    assert got[0].task.spec.concurrency_key == "tenant-1"

    (k,) = await client.list_concurrency_keys(prefix="tenant-")
    assert (k.key, k.running, k.waiting, k.limit, k.max_running, k.rate, k.per) == (
        "tenant-1", 1, 1, "tenants", 1, 10, 60.0,
    )  # fmt: skip
    assert 9.0 <= k.tokens < 9.5  # one start spent, a little refilled since

    with pytest.raises(InvalidArgumentError, match="give exactly one of key and capability"):
        await client.set_concurrency_limit("bad", key="a", capability="b", max_running=1)
    await client.delete_concurrency_limit("tenants")
    assert await client.list_concurrency_limits() == []
    with pytest.raises(NotFoundError):
        await client.delete_concurrency_limit("tenants")
    assert [a.task.title for a in await client.claim("w", max_tasks=5)] == ["b"]  # no limit now
    assert isinstance(made, ConcurrencyLimit)
