"""The Python client, the Worker and the CLI against a broker with tokens and mutual TLS."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from a2a_broker_client import BrokerClient, Message, PermissionDeniedError, UnauthenticatedError, Worker

from broker.server import Broker, start_server
from tests.conftest import ROOT, make_settings

from .security_support import issue
from .tls_support import CA, write_server_files


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[Broker, dict[str, str]]]:
    ca, clients = CA(), CA("clients")
    settings = make_settings(tmp_path, auth="token", **write_server_files(tmp_path, ca, clients))
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    c = clients.issue("host-1")
    (tmp_path / "client.pem").write_bytes(c.cert)
    (tmp_path / "client.key").write_bytes(c.key)
    files = {
        "ca": str(tmp_path / "ca.pem"),
        "client_cert": str(tmp_path / "client.pem"),
        "client_key": str(tmp_path / "client.key"),
    }
    b = await start_server(settings)
    try:
        yield b, files
    finally:
        await b.stop(0.2)


async def test_client_sends_its_token_over_mtls(secured: tuple[Broker, dict[str, str]]) -> None:
    b, files = secured
    async with BrokerClient(b.address, token=issue(b.settings.db, "a1"), **files) as c:
        await c.register("a1", max_concurrent_tasks=1)
        with pytest.raises(PermissionDeniedError):
            await c.register("a2", max_concurrent_tasks=1)
    async with BrokerClient(b.address, **files) as anonymous:  # the cert names host-1, not a1
        with pytest.raises(PermissionDeniedError):
            await anonymous.register("a1", max_concurrent_tasks=1)
    async with BrokerClient(b.address, token="a2a.x.y", **files) as bad:
        with pytest.raises(UnauthenticatedError):
            await bad.register("a1", max_concurrent_tasks=1)


async def test_client_and_worker_take_credentials_from_the_environment(
    secured: tuple[Broker, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    b, files = secured
    monkeypatch.setenv("A2A_BROKER_CA", files["ca"])
    monkeypatch.setenv("A2A_BROKER_CLIENT_CERT", files["client_cert"])
    monkeypatch.setenv("A2A_BROKER_CLIENT_KEY", files["client_key"])
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def on_message(msg: Message) -> None:
        await got.put(msg)

    worker = Worker("w1", address=b.address, on_message=on_message, token=issue(b.settings.db, "w1"))
    run = asyncio.create_task(worker.run(handle_signals=False))
    try:
        await asyncio.wait_for(worker.ready.wait(), 10)
        monkeypatch.setenv("A2A_BROKER_TOKEN", issue(b.settings.db, "sender"))
        async with BrokerClient(b.address) as c:
            await c.register("sender", max_concurrent_tasks=1)
            await c.send("sender", "w1", b"hello")
        msg = await asyncio.wait_for(got.get(), 10)
        assert (msg.sender_id, msg.payload) == ("sender", b"hello")
    finally:
        await worker.stop()
        await asyncio.wait_for(run, 10)


async def test_cli_takes_token_and_tls_flags(secured: tuple[Broker, dict[str, str]]) -> None:
    b, files = secured
    admin = issue(b.settings.db, "ops", "admin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("A2A_BROKER_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", "--json", "agents", "list", "--address", b.address,
        "--token", admin, "--ca", files["ca"], "--client-cert", files["client_cert"],
        "--client-key", files["client_key"],
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out) == []
