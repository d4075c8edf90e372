"""The broker is its own package: ``a2a-broker serve`` starts, on uvloop or asyncio, where the
Python client (a2a_broker_client, a separate package) is not installed. The process is real;
``sys.modules["a2a_broker_client"] = None`` makes the client unimportable in it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, eventually, free_port

WITHOUT_CLIENT = (
    "import sys; sys.modules['a2a_broker_client'] = None;"
    " from broker.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("loop", ["auto", "asyncio"])
async def test_the_broker_serves_without_the_python_client(tmp_path: Path, loop: str):
    http = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "A2A_BROKER_ADDRESS": f"127.0.0.1:{free_port()}",
        "A2A_BROKER_DB": str(tmp_path / "broker.db"),
        "A2A_BROKER_HTTP_ADDRESS": f"127.0.0.1:{http}",
        "A2A_BROKER_EVENT_LOOP": loop,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WITHOUT_CLIENT, "serve", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient() as client:

            async def up() -> bool:
                if proc.returncode is not None:
                    _, err = await proc.communicate()
                    raise AssertionError(f"the broker exited with {proc.returncode}: {err.decode()[-800:]}")
                try:
                    return (await client.get(f"http://127.0.0.1:{http}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, timeout=20, what="the broker's /healthz")
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.communicate(), 10)


async def test_event_loop_uvloop_where_it_is_not_installed_is_a_usage_error(tmp_path: Path):
    code = WITHOUT_CLIENT.replace("a2a_broker_client", "uvloop")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "A2A_BROKER_ADDRESS": f"127.0.0.1:{free_port()}",
        "A2A_BROKER_DB": str(tmp_path / "broker.db"),
        "A2A_BROKER_HTTP_ADDRESS": "off",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "serve", "--event-loop", "uvloop", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert "--event-loop: uvloop is not installed" in err.decode()
