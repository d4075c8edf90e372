"""A graceful stop ends the task queue's Listen streams and Claim long polls at once,
rather than holding the shutdown for the whole grace period and then cancelling them."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from broker.pb import tasks_pb2 as pb
from broker.server import start_server

from ..conftest import eventually, make_settings, next_within, stubs_for
from .tasks_helpers import duration, register


async def test_shutdown_ends_listen_streams_and_claim_long_polls_at_once(tmp_path):
    b = await start_server(make_settings(tmp_path))
    stubs = stubs_for(b.address)
    stop = None
    try:
        await register(stubs, "w", capacity=1)
        await register(stubs, "c", capacity=1)
        listen = stubs.tasks.Listen(pb.ListenRequest(agent_id="w"))
        await asyncio.wait_for(listen.initial_metadata(), 5)
        dispatch = b.tasks.dispatch
        before = dispatch.lease_attempts
        poll = asyncio.ensure_future(stubs.tasks.Claim(pb.ClaimRequest(agent_id="c", wait=duration(30))))

        async def polling() -> bool:
            return dispatch.lease_attempts > before

        await eventually(polling, what="the Claim to poll")
        stop = asyncio.ensure_future(b.stop(30.0))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await next_within(listen, 5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (err.value.details() or ""), err.value.details()
        assert list((await asyncio.wait_for(poll, 5)).assignments) == []
        await asyncio.wait_for(stop, 5)  # not the 30 s grace
    finally:
        await stubs.channel.close()
        if stop is not None and not stop.done():
            await b.server.stop(0)  # a regression fails here and now instead of hanging the suite
            await asyncio.wait_for(stop, 10)


async def test_shutdown_ends_task_watch_streams_at_once(tmp_path):
    b = await start_server(make_settings(tmp_path))
    stubs = stubs_for(b.address)
    stop = None
    try:
        sub = await stubs.tasks.Submit(pb.SubmitRequest(task=pb.TaskSpec(title="watched")))
        watch = stubs.tasks.Watch(pb.WatchTasksRequest(task_id=sub.task.task_id))
        await asyncio.wait_for(watch.initial_metadata(), 5)
        stop = asyncio.ensure_future(b.stop(30.0))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await next_within(watch, 5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (err.value.details() or ""), err.value.details()
        await asyncio.wait_for(stop, 5)  # not the 30 s grace
    finally:
        await stubs.channel.close()
        if stop is not None and not stop.done():
            await b.server.stop(0)  # a regression fails here and now instead of hanging the suite
            await asyncio.wait_for(stop, 10)
