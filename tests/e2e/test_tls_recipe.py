"""Issue 22.3: the README's "Try TLS and tokens on this machine" recipe works as pasted: its first
block (a certificate with openssl, then a TLS broker with tokens) runs in one shell, its second (a
token, then a client) in another, in a fresh folder; only its port is made free."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket

import pytest

from tests.conftest import eventually, free_port
from tests.e2e.test_docs import VENV_BIN, extract

PORT = "127.0.0.1:50443"


def recipe() -> tuple[str, str]:
    blocks = extract("README.md")
    (i,) = [n for n, b in enumerate(blocks) if "subjectAltName=IP:127.0.0.1,DNS:localhost" in b.code]
    return blocks[i].code, blocks[i + 1].code


def as_run_here(code: str, address: str) -> str:
    return code.replace(PORT, address).replace(".venv/bin/", f"{VENV_BIN}/")


async def shell(code: str, cwd: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "bash", "-e", "-o", "pipefail", "-c", code,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("A2A_BROKER_")},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_local_tls_recipe_works_as_pasted(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    serve, client = recipe()
    assert PORT in serve and PORT in client, "the recipe's port changed: update PORT"
    port = free_port()
    broker = await shell(as_run_here(serve, f"127.0.0.1:{port}"), str(tmp_path))
    try:

        async def up() -> bool:
            if broker.returncode is not None:
                assert broker.stdout is not None
                raise AssertionError(f"the first block ended: {(await broker.stdout.read()).decode()}")
            return await asyncio.to_thread(listening, port)

        await eventually(up, timeout=60, interval=0.1, what="the recipe's broker to listen")
        proc = await shell(as_run_here(client, f"127.0.0.1:{port}"), str(tmp_path))
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out.decode()
        assert out.decode().strip() == "(no agents)", out.decode()
    finally:
        if broker.returncode is None:
            os.killpg(broker.pid, signal.SIGINT)
            await asyncio.wait_for(broker.wait(), 30)
    assert broker.returncode == 0
