"""Audit: authentication failures and permission denials are logged with subject, RPC and peer
address, rate-limited, and never with the token."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from broker.pb import agents_pb2 as apb
from broker.server import start_server
from tests.conftest import make_settings

from .security_support import authed_stubs, issue


async def _register(address: str, token: str, agent_id: str) -> None:
    stubs = authed_stubs(address, token)
    try:
        with pytest.raises(grpc.aio.AioRpcError):
            await stubs.agents.Register(
                apb.RegisterRequest(agent_id=agent_id, max_concurrent_tasks=1), timeout=5
            )
    finally:
        await stubs.channel.close()


async def test_failures_and_denials_are_logged_once_without_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="broker.audit")
    b = await start_server(make_settings(tmp_path, auth="token"))
    try:
        good = issue(b.settings.db, "a1")
        forged = good[:-4] + "AAAA"
        for _ in range(5):
            await _register(b.address, forged, "a1")
            await _register(b.address, good, "victim")
    finally:
        await b.stop(0.2)
    lines = [r.getMessage() for r in caplog.records if r.name == "broker.audit"]
    unauth = [m for m in lines if m.startswith("unauthenticated")]
    denied = [m for m in lines if m.startswith("permission denied")]
    assert len(unauth) == 1 and len(denied) == 1, lines  # rate-limited: the rest counted, not logged
    assert "/a2a.broker.v1.AgentRegistry/Register" in unauth[0] and "127.0.0.1" in unauth[0]
    assert denied[0].startswith("permission denied: a1 (agent) called /a2a.broker.v1.AgentRegistry/Register")
    assert "127.0.0.1" in denied[0]
    secret_parts = {good.rsplit(".", 1)[1], forged.rsplit(".", 1)[1]}
    assert not any(s in m for m in lines for s in secret_parts)
