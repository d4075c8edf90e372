"""What a README snippet prints is what its comment says, even with other agents at work (issue
22.7): the snippets are run as tests/e2e/test_docs.py runs them."""

from __future__ import annotations

import asyncio
import os
import re

from a2a_broker_client import BrokerClient

from tests.e2e.test_docs import RUN_TIMEOUT, _command, _run, extract


def block_with(path: str, text: str):
    (found,) = [b for b in extract(path) if text in b.code]
    return found


async def test_the_session_snippet_prints_the_counts_its_comment_gives_while_an_agent_waits(broker):
    block = block_with("clients/python/README.md", 'create_session("nightly report"')
    promised = re.search(r"task_counts\)  # (\{.*?\})", block.code).group(1)  # type: ignore[union-attr]
    async with BrokerClient(broker.address, timeout=RUN_TIMEOUT) as c:
        await c.register("helper", max_concurrent_tasks=5)  # an agent waiting for any work it may take
        waiting = asyncio.ensure_future(c.claim("helper", max_tasks=5, wait=RUN_TIMEOUT))
        argv, cwd = _command(block, broker.address)
        proc = await _run(argv, cwd, {**os.environ, "A2A_BROKER_ADDRESS": broker.address})
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
        waiting.cancel()
    assert proc.returncode == 0, out.decode()
    assert out.decode().strip() == promised, (out.decode(), promised)
