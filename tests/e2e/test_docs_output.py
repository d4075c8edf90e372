"""README snippets as a reader uses them, run as tests/e2e/test_docs.py runs them: what one prints
is what its comment says, even with other agents at work (issue 22.7), and the snippets work with
each other (issue 22.6)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal

from a2a_broker_client import BrokerClient, TaskStatus

from tests.conftest import ROOT, eventually
from tests.e2e.test_cli_agents import cli
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


async def test_the_readme_worker_summarizes_what_the_readme_sends_and_leaves_hello_alone(broker):
    """Issue 22.6: the quick start's `summarize` Worker, left running, with the README's own
    commands: the shell's summarize task and the A2A send complete; `tasks submit hello` (a task
    naming no capability) is not its to take."""
    block = block_with("README.md", 'Worker("summarizer-1"')
    argv, cwd = _command(block, broker.address)
    env = {**os.environ, "A2A_BROKER_ADDRESS": broker.address}
    worker = await _run(argv, cwd, env)
    try:
        async with BrokerClient(broker.address, timeout=RUN_TIMEOUT) as c:

            async def registered() -> bool:
                assert worker.returncode is None, (await worker.stdout.read()).decode()  # type: ignore[union-attr]
                return "summarizer-1" in {a.agent_id async for a in c.iter_agents()}

            await eventually(registered, timeout=30, what="the README's worker to register")
            hello = await cli(broker.address, "tasks", "submit", "hello")
            assert hello.rc == 0, hello.err
            shell = await cli(
                broker.address, "--json", "tasks", "submit", "summarize", "--capability", "summarize",
                "--payload", '{"doc": "a long document"}',
            )  # fmt: skip
            done = await c.wait_for_task(json.loads(shell.out)["task"]["task_id"], timeout=30)
            assert done.status == TaskStatus.COMPLETED, done.last_error
            assert json.loads(done.result) == {"summary": "a long document"}

            a2a = await cli(broker.address, "a2a", "send", "a long text", "--skill", "summarize")
            assert a2a.rc == 0, (a2a.out, a2a.err)
            assert a2a.out.split()[1] == "completed" and '"summary":"a long text"' in a2a.out, a2a.out

            left = await c.get_task(hello.out.split()[0])
            assert (left.status, left.attempt) == (TaskStatus.READY, 0)
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGINT)
            await asyncio.wait_for(worker.wait(), 30)


async def test_the_readme_first_screen_takes_a_newcomer_to_a_delivered_message(broker):
    """Issue 22.8: the first block of README.md that runs (within its first screen) ends with a
    message delivered: the subscriber prints it."""
    block = next(b for b in extract("README.md") if b.lang in ("sh", "python") and not b.marker)
    assert block.line <= 40, f"the first runnable block is at line {block.line}"
    argv, cwd = _command(block, broker.address)
    proc = await _run(argv, cwd, {**os.environ, "A2A_BROKER_ADDRESS": broker.address})
    out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    assert proc.returncode == 0, out.decode()
    delivered = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert [(m["sender_id"], m["recipient_id"]) for m in delivered] == [("alice", "bob")], out.decode()
    async with BrokerClient(broker.address) as c:
        (m,) = (await c.list_messages()).items
    assert m.status.value == "processed"  # received and acknowledged


def test_the_readme_leaves_the_internals_to_docs():
    """Issue 22.8: the README is the user's guide; the dispatch formula, the storage internals and
    the performance analysis are in docs/, linked from it."""
    readme = (ROOT / "README.md").read_text()
    internals = (ROOT / "docs" / "internals.md").read_text()
    performance = (ROOT / "docs" / "performance.md").read_text()
    for text in (
        "urgency(t)    = W * floor",
        "All writes go through one writer connection",
        "## How the code is organised",
    ):
        assert text not in readme and text in internals, text
    for text in ("**Why the targets are missed.**", "| figure | measured (median of 3) |"):
        assert text not in readme and text in performance, text
    assert "(docs/internals.md" in readme and "(docs/performance.md)" in readme


async def test_the_topics_snippet_prints_what_its_comments_say(broker):
    block = block_with("README.md", 'create_subscription("billing"')
    argv, cwd = _command(block, broker.address)
    proc = await _run(argv, cwd, {**os.environ, "A2A_BROKER_ADDRESS": broker.address})
    out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    assert proc.returncode == 0, out.decode()
    assert out.decode().splitlines() == ["audit-eu: [0, 1, 2, 3]", "billing backlog: 5", "replayed: 4"]
