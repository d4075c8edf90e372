"""#23.1: `a2a-broker tokens --address` manages tokens through a running broker's Admin service,
with an admin token: create (the token shown once works at once), list, revoke (refused at once);
without an admin token the broker refuses and the command says so; --db and --address together is
a usage error."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from broker.pb import agents_pb2 as apb
from broker.server import Broker
from tests.e2e.test_cli_agents import cli
from tests.integration.security_support import authed_stubs, issue

EXIT_USAGE, EXIT_REFUSED = 2, 4


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth": "token", "auth_cache_s": 60.0}


async def _works(address: str, token: str, agent_id: str) -> bool:
    stubs = authed_stubs(address, token)
    try:
        await stubs.agents.Register(apb.RegisterRequest(agent_id=agent_id, max_concurrent_tasks=1))
        return True
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc
        return False
    finally:
        await stubs.channel.close()


async def test_create_list_and_revoke_through_a_running_broker(broker: Broker) -> None:
    admin = issue(broker.settings.db, "root", "admin")
    at = ("tokens", "--address", broker.address, "--token", admin)
    r = await cli(None, "--json", *at, "create", "--agent", "worker-7", "--expires", "2h", "--note", "ops")
    assert r.rc == 0, r.err
    made = json.loads(r.out)
    assert (made["subject"], made["role"], made["note"]) == ("worker-7", "agent", "ops")
    assert await _works(broker.address, made["token"], "worker-7")

    r = await cli(None, "--json", *at, "list")
    assert r.rc == 0, r.err
    listed = {t["token_id"]: t for t in json.loads(r.out)}
    assert listed[made["token_id"]]["revoked_at"] == "-" and "token" not in listed[made["token_id"]]

    r = await cli(None, *at, "revoke", made["token_id"])
    assert (r.rc, r.out.strip()) == (0, f"revoked {made['token_id']}"), r.err
    assert not await _works(broker.address, made["token"], "worker-7")  # at once: the cache was dropped

    r = await cli(None, *at, "revoke", "0123456789ab")
    assert r.rc == EXIT_REFUSED and "NOT_FOUND" in r.err and "0123456789ab" in r.err, r


async def test_without_an_admin_token_the_broker_refuses_and_the_command_says_why(broker: Broker) -> None:
    agent = issue(broker.settings.db, "worker-1", "agent")
    for token_args in ((), ("--token", agent)):
        r = await cli(None, "tokens", "--address", broker.address, *token_args, "list")
        assert r.rc == EXIT_REFUSED, r
        assert "UNAUTHENTICATED" in r.err or "PERMISSION_DENIED" in r.err, r.err
        assert "admin token" in r.err


async def test_db_and_address_together_is_a_usage_error(broker: Broker) -> None:
    r = await cli(None, "tokens", "--db", broker.settings.db, "--address", broker.address, "list")
    assert r.rc == EXIT_USAGE and "not both" in r.err, r
