"""Quotas: a flooding agent is limited (RESOURCE_EXHAUSTED with a retry delay) while another
agent keeps its latency; open streams and request bytes are capped per subject."""

from __future__ import annotations

import asyncio
import logging
import secrets
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as mpb
from broker.security.interceptor import LOOKUP_BURST, LOOKUPS_PER_S
from broker.server import Broker, start_server
from tests.conftest import Stubs, make_settings

from .security_support import authed_stubs, issue


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Broker]:
    settings = make_settings(
        tmp_path, auth="token", quota_calls_per_s=50, quota_streams=2, quota_bytes_per_s=10_000
    )
    b = await start_server(settings)
    try:
        yield b
    finally:
        await b.stop(0.2)


async def _agent(b: Broker, agent_id: str) -> Stubs:
    stubs = authed_stubs(b.address, issue(b.settings.db, agent_id))
    await stubs.agents.Register(apb.RegisterRequest(agent_id=agent_id, max_concurrent_tasks=1), timeout=5)
    return stubs


async def test_flooding_agent_is_limited_while_another_keeps_its_latency(
    limited: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="broker.audit")
    flood, quiet = await _agent(limited, "flood"), await _agent(limited, "quiet")
    try:
        refused: list[grpc.aio.AioRpcError] = []
        ok = 0

        async def flooder() -> None:
            nonlocal ok
            for _ in range(10):
                calls = [
                    flood.agents.Heartbeat(apb.HeartbeatRequest(agent_id="flood"), timeout=5)
                    for _ in range(50)
                ]
                for result in await asyncio.gather(*calls, return_exceptions=True):
                    if isinstance(result, grpc.aio.AioRpcError):
                        refused.append(result)
                    else:
                        ok += 1

        async def quiet_calls() -> list[float]:
            took = []
            for _ in range(20):
                t0 = time.perf_counter()
                await quiet.agents.Heartbeat(apb.HeartbeatRequest(agent_id="quiet"), timeout=5)
                took.append(time.perf_counter() - t0)
            return took

        _, latencies = await asyncio.gather(flooder(), quiet_calls())
        assert refused, "the flood was never limited"
        assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert ok <= 100 + 50 * 5  # burst (2 s worth) + the rate over the flood's few seconds
        status = rpc_status.from_call(refused[0])
        assert status is not None
        info = error_details_pb2.RetryInfo()
        assert status.details[0].Unpack(info) and info.retry_delay.ToNanoseconds() > 0
        assert dict(refused[0].trailing_metadata())["retry-after-ms"]
        # The quiet agent was never refused (its calls raised nothing) and stayed responsive.
        assert statistics.median(latencies) < 0.25 and max(latencies) < 2.0, latencies
        audit = [r.getMessage() for r in caplog.records if r.name == "broker.audit"]
        assert any(m.startswith("quota exceeded: flood ") for m in audit), audit
        assert not any("quiet" in m for m in audit)
    finally:
        await flood.channel.close()
        await quiet.channel.close()


async def test_open_streams_are_capped_per_subject(limited: Broker) -> None:
    a = await _agent(limited, "a1")
    try:
        subs = [a.messaging.Subscribe(mpb.SubscribeRequest(agent_id="a1")) for _ in range(2)]
        for s in subs:
            await asyncio.wait_for(s.initial_metadata(), 5)
        third = a.messaging.Subscribe(mpb.SubscribeRequest(agent_id="a1"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(third.read(), 5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "open streams" in (err.value.details() or "")
        subs[0].cancel()

        async def reopened() -> bool:
            s = a.messaging.Subscribe(mpb.SubscribeRequest(agent_id="a1"))
            try:
                await asyncio.wait_for(s.initial_metadata(), 5)
                await asyncio.sleep(0)
                return not s.done()
            finally:
                s.cancel()

        deadline = time.monotonic() + 5
        while not await reopened():  # the cancelled stream's slot is freed once the server sees it
            assert time.monotonic() < deadline, "a closed stream's slot was never freed"
        subs[1].cancel()
    finally:
        await a.channel.close()


async def test_request_bytes_per_second_are_limited(limited: Broker) -> None:
    a = await _agent(limited, "a1")
    await _agent(limited, "a2")
    try:
        big = mpb.SendRequest(sender_id="a1", target=mpb.Target(agent_id="a2"), payload=b"x" * 15_000)
        await a.messaging.Send(big, timeout=5)  # within the 20 kB burst
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await a.messaging.Send(big, timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "bytes" in (err.value.details() or "")
    finally:
        await a.channel.close()


async def test_sends_to_an_agent_holding_too_many_pending_messages_are_refused(tmp_path: Path) -> None:
    b = await start_server(make_settings(tmp_path, auth="token", quota_pending_messages=3))
    try:
        a, _ = await _agent(b, "a1"), await _agent(b, "slow")
        other = await _agent(b, "fast")
        send = mpb.SendRequest(sender_id="a1", target=mpb.Target(agent_id="slow"), payload=b"x")
        for _ in range(3):
            await a.messaging.Send(send, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await a.messaging.Send(send, timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "pending messages for 'slow'" in (err.value.details() or "")
        batch = mpb.SendBatchRequest(messages=[send])
        with pytest.raises(grpc.aio.AioRpcError):
            await a.messaging.SendBatch(batch, timeout=5)
        # Another recipient is not affected.
        await a.messaging.Send(
            mpb.SendRequest(sender_id="a1", target=mpb.Target(agent_id="fast"), payload=b"x"), timeout=5
        )
        await other.channel.close()
        await a.channel.close()
    finally:
        await b.stop(0.2)


async def test_floods_of_bad_tokens_cost_no_storage_reads(limited: Broker) -> None:
    """#22.19: a token presented again (made up, wrong or revoked) is answered from the cache, and
    a peer sending one made-up token after another is refused unread past its budget of look-ups
    (each read storage before: 300 reads here); a valid token already seen from the same address
    still passes."""
    assert limited.security is not None and limited.security.authenticator is not None
    auth: Any = limited.security.authenticator
    reads = 0
    fetch = auth._fetch

    async def counted(token_id: str) -> Any:
        nonlocal reads
        reads += 1
        return await fetch(token_id)

    auth._fetch = counted
    good = await _agent(limited, "a1")  # its token read once, and cached

    async def refused(token: str) -> grpc.StatusCode:
        stubs = authed_stubs(limited.address, token)
        try:
            await stubs.agents.Heartbeat(apb.HeartbeatRequest(agent_id="a1"), timeout=5)
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        finally:
            await stubs.channel.close()

    try:
        reads = 0
        made_up = f"a2a.{secrets.token_hex(6)}.{secrets.token_urlsafe(32)}"
        codes = await asyncio.gather(*(refused(made_up) for _ in range(100)))
        assert set(codes) == {grpc.StatusCode.UNAUTHENTICATED}
        assert reads <= 2, reads  # one read, then the cache says "unknown" (a few may race it)
        reads = 0
        t0 = time.monotonic()
        fresh = [f"a2a.{secrets.token_hex(6)}.{secrets.token_urlsafe(32)}" for _ in range(200)]
        codes = await asyncio.gather(*(refused(t) for t in fresh))
        # Refused: read and unknown, or unread (come back later).
        assert set(codes) == {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert reads <= LOOKUP_BURST + LOOKUPS_PER_S * (time.monotonic() - t0) + 1, reads
        await good.agents.Heartbeat(apb.HeartbeatRequest(agent_id="a1"), timeout=5)  # cached: passes
    finally:
        await good.channel.close()


async def test_a_known_token_passes_while_its_address_floods_made_up_ones(tmp_path: Path) -> None:
    """Look-ups of tokens seen valid before are not charged to the address's budget (with no
    cache at all here, every call is a look-up): a made-up-token flood from the same host does
    not lock a good agent out."""
    b = await start_server(make_settings(tmp_path, auth="token", auth_cache_s=0))
    good = await _agent(b, "a1")
    try:
        flood = authed_stubs(b.address, None)

        async def made_up() -> grpc.StatusCode:
            token = f"a2a.{secrets.token_hex(6)}.{secrets.token_urlsafe(32)}"
            try:
                await flood.agents.GetAgent(
                    apb.GetAgentRequest(agent_id="a1"), metadata=(("authorization", f"Bearer {token}"),)
                )
                return grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                return exc.code()

        codes = await asyncio.gather(*(made_up() for _ in range(int(LOOKUP_BURST) * 2)))
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes  # the address spent its budget
        await good.agents.Heartbeat(apb.HeartbeatRequest(agent_id="a1"), timeout=5)
        await flood.channel.close()
    finally:
        await good.channel.close()
        await b.stop(0.2)
