"""The MCP SDK is an extra: a broker process that cannot import it starts without ``/mcp`` (unless
``--mcp on`` asks for it), and ``a2a-broker mcp`` says what to install. The processes are real;
``sys.modules["mcp"] = None`` makes the SDK unimportable in them, as if it were not installed."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from tests.conftest import ROOT, eventually, free_port

WITHOUT_MCP = (
    "import sys; sys.modules['mcp'] = None; from broker.cli import main; sys.exit(main(sys.argv[1:]))"
)


async def _run(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WITHOUT_MCP,
        *args,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _env(tmp_path: Path, http: int, **extra: str) -> dict[str, str]:
    return {
        "A2A_BROKER_ADDRESS": f"127.0.0.1:{free_port()}",
        "A2A_BROKER_DB": str(tmp_path / "broker.db"),
        "A2A_BROKER_HTTP_ADDRESS": f"127.0.0.1:{http}",
        **extra,
    }


async def test_the_broker_starts_without_the_mcp_sdk(tmp_path: Path):
    http = free_port()
    proc = await _run("serve", env=_env(tmp_path, http))
    try:
        async with httpx.AsyncClient() as client:

            async def up() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"the broker exited with {proc.returncode}")
                try:
                    return (await client.get(f"http://127.0.0.1:{http}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, timeout=20, what="the broker's /healthz")
            assert (await client.post(f"http://127.0.0.1:{http}/mcp", json={})).status_code == 404
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.communicate(), 10)


async def test_mcp_on_without_the_sdk_refuses_to_start_and_names_the_extra(tmp_path: Path):
    proc = await _run("serve", env=_env(tmp_path, free_port(), A2A_BROKER_MCP="on"))
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert "--mcp on needs the [mcp] extra" in err.decode()


async def test_the_mcp_command_without_the_sdk_says_what_to_install(tmp_path: Path):
    proc = await _run("mcp", "--address", "127.0.0.1:1", env={})
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert "pip install 'a2a-broker-client[mcp]'" in err.decode()
