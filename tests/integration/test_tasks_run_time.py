"""Execution timeout: an attempt may not run longer than its task's max_run_time, however often
its lease is extended. Past it the attempt fails with a timeout error (retried per the task's retry
policy), the history says so, and the holder is told on its stream."""

from __future__ import annotations

import grpc
import pytest

from broker.pb import tasks_pb2 as pb
from tests.clock_support import later, manual_clock
from tests.conftest import eventually, next_within

from . import tasks_helpers as th


def spec(title: str, max_run: float | None, **kw) -> pb.TaskSpec:
    s = th.spec(title, required_capabilities=["slow"], lease=30, **kw)
    if max_run is not None:
        s.max_run_time.CopyFrom(th.duration(max_run))
    return s


async def extend(stubs, a: pb.Assignment, agent_id: str) -> None:
    await stubs.tasks.ExtendLease(
        pb.ExtendLeaseRequest(task_id=a.task.task_id, agent_id=agent_id, attempt=a.attempt)
    )


async def run_extended(stubs, broker, a: pb.Assignment, agent_id: str, seconds: float) -> None:
    """A worker that never finishes and keeps its lease alive (what max_run_time is for): an
    extension every 0.3 s of the broker's clock, a sweep at each step."""
    for _ in range(round(seconds / 0.3)):
        await extend(stubs, a, agent_id)
        await later(broker, 0.3)


@manual_clock
async def test_an_attempt_past_its_max_run_time_fails_is_retried_and_the_holder_is_told(stubs, broker):
    await th.register(stubs, "w", ["slow"])
    t = (await stubs.tasks.Submit(pb.SubmitRequest(task=spec("forever", 1.0, retries=1, backoff=0)))).task
    assert t.spec.max_run_time.seconds == 1
    listen = stubs.tasks.Listen(pb.ListenRequest(agent_id="w"))
    (a,) = (await next_within(listen)).assignments
    cancellations: list[pb.Cancellation] = []
    assignments: list[pb.Assignment] = []
    # Each attempt's timeout, despite the extensions, and the retry.
    await run_extended(stubs, broker, a, "w", 1.2)
    while not assignments:
        push = await next_within(listen)
        cancellations += push.cancellations
        assignments += push.assignments
    await run_extended(stubs, broker, assignments[0], "w", 1.2)
    while len(cancellations) < 2:
        push = await next_within(listen)
        cancellations += push.cancellations
        assignments += push.assignments
    assert [(c.task_id, c.attempt) for c in cancellations] == [(t.task_id, 1), (t.task_id, 2)]
    assert all(c.reason.startswith("timeout") for c in cancellations)
    assert [(x.task.task_id, x.attempt) for x in assignments] == [(t.task_id, 2)]  # retried once
    listen.cancel()
    done = await th.get(stubs, t.task_id)
    assert th.name(done.status) == "failed" and done.last_error.startswith("timeout")
    reasons = [h[2] for h in await th.history(stubs, t.task_id)]
    assert sum("timeout" in r for r in reasons) == 2, reasons


@manual_clock
async def test_without_a_max_run_time_an_extended_lease_keeps_the_task(stubs, broker):
    await th.register(stubs, "w", ["slow"])
    t = (await stubs.tasks.Submit(pb.SubmitRequest(task=spec("patient", None)))).task
    assert not t.spec.HasField("max_run_time")
    (a,) = await th.claim(stubs, "w")
    await run_extended(stubs, broker, a, "w", 1.5)  # longer than the other test's max_run_time
    assert await th.status(stubs, t.task_id) == "running"  # swept all along: nothing happened
    assert th.name((await th.complete(stubs, a, "w")).status) == "completed"


@pytest.mark.parametrize("settings_overrides", [{"sweeper_period_s": 0.05, "default_max_run_time_s": 0.5}])
async def test_the_configured_default_applies_when_a_task_sets_none(stubs):
    """On the real clock, end to end: the execution timeout and the sweeper."""
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
