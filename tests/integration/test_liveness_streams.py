"""An open Subscribe or Listen stream is a sign of life: its agent stays online without Heartbeat
calls, and goes offline a liveness timeout after the stream ends."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest

from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as tpb
from tests.conftest import ROOT, eventually, next_within

from .messaging_support import Sub, register, send
from .tasks_helpers import submit

LIVENESS_S = 0.3


@pytest.fixture
def settings_overrides():
    return {"heartbeat_interval_s": 0.1, "liveness_timeout_s": LIVENESS_S, "sweeper_period_s": 0.05}


async def status_of(stubs, agent_id):
    return (await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id=agent_id))).status


async def outlast_liveness(stubs, broker, silent: str, timeouts: int = 4) -> None:
    """Wait until a silent agent (no stream) went offline and ``timeouts`` liveness timeouts and
    a dozen sweeps have passed."""
    t0, rounds = time.monotonic(), broker.sweeper.rounds

    async def passed() -> bool:
        return (
            await status_of(stubs, silent) == apb.AGENT_STATUS_OFFLINE
            and time.monotonic() - t0 > timeouts * LIVENESS_S
            and broker.sweeper.rounds >= rounds + 12
        )

    await eventually(passed, timeout=15, what="several liveness timeouts")


async def offline_after_stream_ends(stubs, agent_id: str, timeout: float = 10) -> float:
    """Seconds from now until the agent is seen offline."""
    t0 = time.monotonic()

    async def offline() -> bool:
        return await status_of(stubs, agent_id) == apb.AGENT_STATUS_OFFLINE

    await eventually(offline, timeout=timeout, what=f"{agent_id} offline")
    return time.monotonic() - t0


async def test_open_subscribe_stream_keeps_its_agent_online(stubs, broker):
    await register(stubs, "alice")
    await register(stubs, "bob")
    await register(stubs, "silent")
    sub = await Sub.open(stubs, "bob")
    try:
        await outlast_liveness(stubs, broker, "silent")
        assert await status_of(stubs, "bob") == apb.AGENT_STATUS_AVAILABLE
        await send(stubs, "alice", "bob", b"still there?")
        assert (await sub.one()).payload == b"still there?"
    finally:
        sub.cancel()
    took = await offline_after_stream_ends(stubs, "bob")
    assert took >= LIVENESS_S * 0.8  # a liveness timeout after the stream ended, not at once


async def test_open_listen_stream_keeps_its_agent_online(stubs, broker):
    await stubs.agents.Register(apb.RegisterRequest(agent_id="w", max_concurrent_tasks=1))
    await stubs.agents.Register(apb.RegisterRequest(agent_id="silent", max_concurrent_tasks=1))
    stream = stubs.tasks.Listen(tpb.ListenRequest(agent_id="w"))
    try:
        await asyncio.wait_for(stream.initial_metadata(), 5)
        await outlast_liveness(stubs, broker, "silent")
        assert await status_of(stubs, "w") == apb.AGENT_STATUS_AVAILABLE
        t = (await stubs.tasks.Submit(tpb.SubmitRequest(task=tpb.TaskSpec(title="late")))).task
        got = await next_within(stream)
        assert [a.task.task_id for a in got.assignments] == [t.task_id]
    finally:
        stream.cancel()
    await offline_after_stream_ends(stubs, "w")


FROZEN_SUBSCRIBER = """
import asyncio, sys
import grpc
from broker.pb import messaging_pb2 as pb, messaging_pb2_grpc as pb_grpc

async def main():
    async with grpc.aio.insecure_channel(sys.argv[1]) as channel:
        call = pb_grpc.MessagingStub(channel).Subscribe(pb.SubscribeRequest(agent_id=sys.argv[2]))
        await call.initial_metadata()
        print("live", flush=True)
        async for _ in call:
            pass

asyncio.run(main())
"""


# A liveness timeout of 3 s here, not 0.3: the subscriber is a new process, which may take seconds
# to start on a loaded machine; its agent, silent meanwhile, goes offline, and the Subscribe that
# brings it back could be swept offline again by an event-loop stall of 0.3 s before the stream
# counts as open. The keepalive pings that find the frozen peer are every 1 s either way
# (server.keepalive_options: at least 1 s).
@pytest.mark.parametrize(
    "settings_overrides", [{"heartbeat_interval_s": 1.0, "liveness_timeout_s": 3.0, "sweeper_period_s": 0.05}]
)
async def test_stream_of_a_peer_that_stops_answering_ends_and_its_agent_goes_offline(stubs, broker):
    """The server's HTTP/2 keepalive pings find a frozen peer: its stream ends, so an open
    stream cannot keep a dead agent online."""
    await register(stubs, "frozen")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FROZEN_SUBSCRIBER,
        broker.address,
        "frozen",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"live\n"
        assert broker.registry.open_streams("frozen") == 1
        os.kill(proc.pid, signal.SIGSTOP)  # the process, its gRPC threads too, stops answering pings
        await offline_after_stream_ends(stubs, "frozen", timeout=20)  # ~2 s of pings, then 3 s
        assert broker.registry.open_streams("frozen") == 0
    finally:
        proc.kill()
        await proc.wait()


async def test_a_stream_opened_by_an_offline_agent_brings_it_back_online(stubs, broker):
    """An agent may subscribe (or listen) long after it registered: the stream is its sign of life,
    as a heartbeat would be, and messages and tasks reach it."""
    await register(stubs, "alice")
    await register(stubs, "bob")
    await stubs.agents.Register(apb.RegisterRequest(agent_id="w", max_concurrent_tasks=1))
    for agent_id in ("bob", "w"):
        await offline_after_stream_ends(stubs, agent_id)  # silent: offline after the timeout
    sub = await Sub.open(stubs, "bob")
    listen = stubs.tasks.Listen(tpb.ListenRequest(agent_id="w"))
    try:
        await asyncio.wait_for(listen.initial_metadata(), 5)
        assert await status_of(stubs, "bob") == apb.AGENT_STATUS_AVAILABLE
        assert await status_of(stubs, "w") == apb.AGENT_STATUS_AVAILABLE
        await send(stubs, "alice", "bob", b"welcome back")
        assert (await sub.one()).payload == b"welcome back"
        await submit(stubs)
        got = await next_within(listen, 5)
        assert len(got.assignments) == 1
    finally:
        sub.cancel()
        listen.cancel()
