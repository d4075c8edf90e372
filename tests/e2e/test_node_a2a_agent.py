"""A Node.js Agent (clients/node/examples/a2a-agent.js, a separate process) takes part in A2A
turns: an a2a-sdk client sends it a message through the broker's A2A gateway, the agent asks which
city (input-required), and completes the answer with an artifact."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal

import pytest
from a2a_broker_client import BrokerClient, NotFoundError

from tests.conftest import ROOT, eventually
from tests.integration.a2a_support import a2a_client, say, state, texts

NODE_DIR = ROOT / "clients" / "node"


@pytest.fixture
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules").is_dir():
        pytest.skip("clients/node has no node_modules: run `make node`")
    return path


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_node_agent_asks_for_input_then_completes_with_an_artifact(broker, node):
    proc = await asyncio.create_subprocess_exec(
        node,
        "examples/a2a-agent.js",
        cwd=NODE_DIR,
        env={**os.environ, "A2A_BROKER_ADDRESS": broker.address},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with BrokerClient(broker.address, timeout=10) as c:

            async def registered() -> bool:
                try:
                    return bool(await c.get_agent("node-weather"))
                except NotFoundError:
                    return False

            await eventually(registered, timeout=20, what="the Node agent registered")
            client = a2a_client(broker.address)
            task = await say(client, "weather please", "n-1", skill="weather")
            assert state(task) == "TASK_STATE_INPUT_REQUIRED"
            assert texts([task.status.message]) == ["Which city?"]
            assert (await c.get_agent("node-weather")).current_task_count == 0

            task = await say(client, "Lyon", "n-2", task=task)
            assert state(task) == "TASK_STATE_COMPLETED"
            assert [(a.name, texts([a])) for a in task.artifacts] == [("forecast", ["Sunny in Lyon"])]
            assert texts(task.history) == ["weather please", "Which city?", "Lyon"]
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, out.decode()
        assert "turn" in out.decode() and "stopped" in out.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
