"""`a2a-broker limits ...` and `tasks submit --concurrency-key` in a subprocess against a real
broker."""

from __future__ import annotations

import json

from a2a_broker_client import BrokerClient

from tests.e2e.test_cli_agents import cli


async def test_set_list_keys_and_delete_limits_from_the_command_line(broker):
    r = await cli(broker.address, "limits", "set", "tenants", "--key", "tenant-*", "--max-running", "1",
                  "--rate", "5", "--per", "1m")  # fmt: skip
    assert (r.rc, r.out.strip()) == (0, "tenants: 1 running, 5 starts per 60s"), r.err
    r = await cli(broker.address, "limits", "list")
    assert r.rc == 0 and "tenants" in r.out and "key tenant-*" in r.out, r.err
    for title in ("a", "b"):
        r = await cli(broker.address, "tasks", "submit", title, "--capability", "py",
                      "--concurrency-key", "tenant-1")  # fmt: skip
        assert r.rc == 0, r.err
    async with BrokerClient(broker.address) as client:
        await client.register("w", capabilities=["py"], max_concurrent_tasks=5)
        (a,) = await client.claim("w", max_tasks=5)
        assert a.task.spec.concurrency_key == "tenant-1"
    r = await cli(broker.address, "limits", "keys", "--json")
    (k,) = json.loads(r.out)
    assert (k["key"], k["running"], k["waiting"], k["limit"]) == ("tenant-1", 1, 1, "tenants"), r.out
    r = await cli(broker.address, "limits", "keys")
    assert r.rc == 0 and r.out.split("\n")[1].split()[:4] == ["tenant-1", "1", "1", "tenants"], r.out
    r = await cli(broker.address, "limits", "set", "bad", "--max-running", "1")
    assert r.rc == 2 and "--key and --capability" in r.err
    r = await cli(broker.address, "limits", "set", "bad", "--key", "k", "--rate", "3")
    assert r.rc != 0 and "per: a rate needs its period" in r.err, r.err
    r = await cli(broker.address, "limits", "delete", "tenants")
    assert (r.rc, r.out.strip()) == (0, "tenants: deleted"), r.err
    r = await cli(broker.address, "limits", "delete", "tenants")
    assert r.rc == 1 and "NOT_FOUND" in r.err
