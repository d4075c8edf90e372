"""Execution timeout: an attempt may not run longer than its task's max_run_time, however often
its lease is extended. Past it the attempt fails with a timeout error (retried per the task's retry
policy), the history says so, and the holder is told on its stream."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from broker.pb import tasks_pb2 as pb
from tests.conftest import eventually, next_within

from . import tasks_helpers as th


def spec(title: str, max_run: float | None, **kw) -> pb.TaskSpec:
    s = th.spec(title, required_capabilities=["slow"], lease=30, **kw)
    if max_run is not None:
        s.max_run_time.CopyFrom(th.duration(max_run))
    return s


async def keep_extending(stubs, a: pb.Assignment, agent_id: str, stop: asyncio.Event) -> None:
    """A worker that never finishes and keeps its lease alive (what max_run_time is for)."""
    while not stop.is_set():
        try:
            await stubs.tasks.ExtendLease(
                pb.ExtendLeaseRequest(task_id=a.task.task_id, agent_id=agent_id, attempt=a.attempt)
            )
        except grpc.aio.AioRpcError:
            return
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("settings_overrides", [{"sweeper_period_s": 0.05}])
async def test_an_attempt_past_its_max_run_time_fails_is_retried_and_the_holder_is_told(stubs):
    await th.register(stubs, "w", ["slow"])
    t = (await stubs.tasks.Submit(pb.SubmitRequest(task=spec("forever", 1.0, retries=1, backoff=0)))).task
    assert t.spec.max_run_time.seconds == 1
    listen = stubs.tasks.Listen(pb.ListenRequest(agent_id="w"))
    (a,) = (await next_within(listen)).assignments
    stop = asyncio.Event()
    extender = asyncio.ensure_future(keep_extending(stubs, a, "w", stop))
    cancellations: list[pb.Cancellation] = []
    assignments: list[pb.Assignment] = []
    while len(cancellations) < 2:  # each attempt's timeout, despite the extensions, and the retry
        push = await next_within(listen, timeout=10)
        cancellations += push.cancellations
        assignments += push.assignments
    assert [(c.task_id, c.attempt) for c in cancellations] == [(t.task_id, 1), (t.task_id, 2)]
    assert all(c.reason.startswith("timeout") for c in cancellations)
    assert [(x.task.task_id, x.attempt) for x in assignments] == [(t.task_id, 2)]  # retried once
    stop.set()
    await extender
    listen.cancel()
    done = await th.get(stubs, t.task_id)
    assert th.name(done.status) == "failed" and done.last_error.startswith("timeout")
    reasons = [h[2] for h in await th.history(stubs, t.task_id)]
    assert sum("timeout" in r for r in reasons) == 2, reasons


@pytest.mark.parametrize("settings_overrides", [{"sweeper_period_s": 0.05}])
async def test_without_a_max_run_time_an_extended_lease_keeps_the_task(stubs):
    await th.register(stubs, "w", ["slow"])
    t = (await stubs.tasks.Submit(pb.SubmitRequest(task=spec("patient", None)))).task
    assert not t.spec.HasField("max_run_time")
    (a,) = await th.claim(stubs, "w")
    stop = asyncio.Event()
    extender = asyncio.ensure_future(keep_extending(stubs, a, "w", stop))
    await asyncio.sleep(1.5)  # longer than the other test's max_run_time: nothing may happen
    assert await th.status(stubs, t.task_id) == "running"
    stop.set()
    await extender
    assert th.name((await th.complete(stubs, a, "w")).status) == "completed"


@pytest.mark.parametrize("settings_overrides", [{"sweeper_period_s": 0.05, "default_max_run_time_s": 0.5}])
async def test_the_configured_default_applies_when_a_task_sets_none(stubs):
    await th.register(stubs, "w", ["slow"])
    t = (await stubs.tasks.Submit(pb.SubmitRequest(task=spec("default", None, retries=0)))).task
    assert t.spec.max_run_time.ToMicroseconds() == 500_000
    await th.claim(stubs, "w")

    async def failed() -> bool:
        return await th.status(stubs, t.task_id) == "failed"

    await eventually(failed, timeout=10, what="the default max_run_time to fail the attempt")


async def test_a_max_run_time_out_of_range_is_refused_naming_the_field(stubs):
    for value in (0.5, 8 * 24 * 3600):
        msg = await th.refused(
            stubs.tasks.Submit(pb.SubmitRequest(task=spec("x", value))), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert "task.max_run_time: must be between 1 s and 7 days" in msg
    assert await th.all_tasks(stubs) == []
