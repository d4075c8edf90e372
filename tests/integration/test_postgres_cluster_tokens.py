"""#23.1: tokens on a PostgreSQL cluster. A token revoked through one broker (the Admin service),
or by `a2a-broker tokens --db postgresql://...` with no broker, is refused by every broker of the
database within a second, and the streams opened with it on any of them end; a revocation whose
notification never came (a plain UPDATE) is found by the poll.

Each broker trusts what it read of a token for a minute (``auth_cache_s``), and the relay's poll is
a minute too (unless the test is about the poll): what ends a stream within a second is the
revocation reaching the broker."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import psycopg

from broker.pb import admin_pb2 as pb
from broker.pb import admin_pb2_grpc
from broker.pb import messaging_pb2 as mpb
from broker.server import Broker
from tests.conftest import ROOT, Stubs, eventually

from .security_support import authed_stubs, issue, register_outcome

SECURED = {"auth": "token", "auth_cache_s": 60.0}
Cluster = Callable[..., Awaitable[tuple[Broker, Stubs]]]


async def _refused_within(address: str, token: str, agent_id: str, seconds: float) -> None:
    async def refused() -> bool:
        return await register_outcome(address, token, agent_id) == "UNAUTHENTICATED"

    await eventually(refused, timeout=seconds, what=f"the token refused by {address}")


async def _stream_ends_within(call: Any, seconds: float) -> grpc.aio.AioRpcError:
    """Read the stream until it ends with an error; fail if it is still open after ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            await asyncio.wait_for(call.read(), left)
        except grpc.aio.AioRpcError as err:
            return err
        except TimeoutError:
            break
    raise AssertionError(f"the stream was still open {seconds}s after the revocation")


async def _two_brokers_and_a_streaming_agent(cluster: Cluster, pg_url: str, **settings: Any) -> Any:
    """Brokers A and B; an agent token known to both (each read it once); the agent's Subscribe
    open on B."""
    a, _ = await cluster(**SECURED, **settings)
    b, _ = await cluster(**SECURED, **settings)
    admin = authed_stubs(a.address, issue(pg_url, "root", "admin"))
    made = await admin_pb2_grpc.AdminStub(admin.channel).CreateToken(pb.CreateTokenRequest(subject="w1"))
    token = made.token
    for broker in (a, b):
        assert await register_outcome(broker.address, token, "w1") == "OK"
    agent = authed_stubs(b.address, token)
    sub = agent.messaging.Subscribe(mpb.SubscribeRequest(agent_id="w1"))
    await asyncio.wait_for(sub.initial_metadata(), 5)
    return a, b, admin, token, agent, sub


async def test_a_token_revoked_through_one_broker_is_refused_by_the_other_within_a_second(
    cluster: Cluster, pg_url: str
) -> None:
    a, b, admin, token, agent, sub = await _two_brokers_and_a_streaming_agent(cluster, pg_url)
    try:
        await admin_pb2_grpc.AdminStub(admin.channel).RevokeToken(
            pb.RevokeTokenRequest(token_id=token.split(".")[1])
        )
        err = await _stream_ends_within(sub, 1.0)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in (err.details() or "")
        await _refused_within(b.address, token, "w1", 1.0)
        assert await register_outcome(a.address, token, "w1") == "UNAUTHENTICATED"
    finally:
        await admin.channel.close()
        await agent.channel.close()


async def _tokens_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_tokens_command_on_the_database_url_revokes_on_every_broker(
    cluster: Cluster, pg_url: str
) -> None:
    a, b, admin, token, agent, sub = await _two_brokers_and_a_streaming_agent(cluster, pg_url)
    token_id = token.split(".")[1]
    try:
        rc, out, err = await _tokens_cli("--json", "tokens", "--db", pg_url, "list")
        assert rc == 0, err
        assert token_id in {t["token_id"] for t in json.loads(out)}
        rc, out, err = await _tokens_cli("tokens", "--db", pg_url, "revoke", token_id)
        assert rc == 0 and out.strip() == f"revoked {token_id}", (rc, out, err)
        err_ = await _stream_ends_within(sub, 1.0)
        assert err_.code() == grpc.StatusCode.UNAUTHENTICATED
        for broker in (a, b):
            await _refused_within(broker.address, token, "w1", 1.0)
        # And a token the command issues works on both at once.
        rc, out, err = await _tokens_cli("--json", "tokens", "--db", pg_url, "create", "--agent", "w2")
        assert rc == 0, err
        fresh = json.loads(out)["token"]
        for broker in (a, b):
            assert await register_outcome(broker.address, fresh, "w2") == "OK"
    finally:
        await admin.channel.close()
        await agent.channel.close()


async def test_a_revocation_whose_notification_was_lost_is_found_by_the_poll(
    cluster: Cluster, pg_url: str
) -> None:
    _, b, admin, token, agent, sub = await _two_brokers_and_a_streaming_agent(
        cluster, pg_url, pg_poll_interval_s=0.3
    )
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:  # no NOTIFY: as if it were lost
            conn.execute("UPDATE tokens SET revoked_at = %s WHERE token_id = %s", (1, token.split(".")[1]))
        err = await _stream_ends_within(sub, 1.5)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        await _refused_within(b.address, token, "w1", 1.0)
    finally:
        await admin.channel.close()
        await agent.channel.close()
