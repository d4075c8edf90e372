"""The ``/mcp`` endpoint as a part of the broker: turned off and on by ``--mcp``, its loopback
socket private to the broker's user and gone after a stop, and the SDK's DNS-rebinding guard on a
loopback listener (a web page's script reaching a local broker through a name it controls)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from pathlib import Path

import httpx
import pytest

from broker.errors import BrokerError
from broker.server import start_server
from tests.conftest import eventually, make_settings
from tests.integration.mcp_support import RAW_HEADERS, RAW_INITIALIZE, http_session, ok, open_watches

INIT, HEADERS = RAW_INITIALIZE, RAW_HEADERS


async def test_mcp_off_serves_no_endpoint_and_opens_no_socket(tmp_path: Path):
    b = await start_server(make_settings(tmp_path, http_address="127.0.0.1:0", mcp="off"))
    try:
        assert b.mcp is None
        async with httpx.AsyncClient() as http:
            assert (await http.post(f"{b.http_url}/mcp", json=INIT, headers=HEADERS)).status_code == 404
    finally:
        await b.stop(0.2)


async def test_mcp_on_needs_the_http_listener(tmp_path: Path):
    with pytest.raises(BrokerError, match="--http-address"):
        await start_server(make_settings(tmp_path, http_address="off", mcp="on"))


async def test_the_loopback_socket_is_the_brokers_users_alone_and_removed_at_stop(tmp_path: Path):
    b = await start_server(make_settings(tmp_path, http_address="127.0.0.1:0", mcp="on"))
    stopped = False
    try:
        assert b.mcp is not None
        target = b.mcp.mcp.connector.target
        directory = Path(target.removeprefix("unix:")).parent
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        async with http_session(b) as mcp:
            await ok(mcp, "submit_task", title="through the socket")
        await b.stop(0.2)
        stopped = True
        assert not directory.exists()
    finally:
        if not stopped:
            await b.stop(0.2)


async def test_a_foreign_host_name_is_refused_on_a_loopback_listener(tmp_path: Path):
    b = await start_server(make_settings(tmp_path, http_address="127.0.0.1:0"))
    try:
        assert b.http_address is not None
        port = b.http_address.rsplit(":", 1)[1]
        async with httpx.AsyncClient() as http:
            rebound = await http.post(
                f"{b.http_url}/mcp", json=INIT, headers={**HEADERS, "Host": f"attacker.example:{port}"}
            )
            assert rebound.status_code in (403, 421)
            page = await http.post(
                f"{b.http_url}/mcp", json=INIT, headers={**HEADERS, "Origin": "http://attacker.example"}
            )
            assert page.status_code == 403
            assert (await http.post(f"{b.http_url}/mcp", json=INIT, headers=HEADERS)).status_code == 200
    finally:
        await b.stop(0.2)


async def test_a_stop_ends_the_waits_of_mcp_sessions_at_once(tmp_path: Path):
    b = await start_server(make_settings(tmp_path, http_address="127.0.0.1:0", shutdown_grace_s=30))
    stopped = False
    try:
        async with http_session(b) as mcp:
            task_id = (await ok(mcp, "submit_task", title="nobody takes me"))["task"]["task_id"]
            waiting = asyncio.ensure_future(
                mcp.call_tool("wait_for_task", {"task_id": task_id, "timeout_s": 300})
            )

            async def watching() -> bool:
                return open_watches(b) == 1

            await eventually(watching, what="the wait's watch")
            t0 = time.monotonic()
            await asyncio.wait_for(b.stop(), 10)  # not the 30 s grace, nor the 300 s wait
            stopped = True
            assert time.monotonic() - t0 < 5
            with contextlib.suppress(Exception):  # the session is gone: an error or a closed stream
                await asyncio.wait_for(waiting, 10)
            assert waiting.done()
    finally:
        if not stopped:
            await b.stop(0.2)
