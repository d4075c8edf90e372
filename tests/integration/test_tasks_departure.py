"""A departure is not a failure: an agent that deregisters or goes offline hands its running tasks
back to the queue without spending a retry (the attempt number still rises, the history says why)."""

from __future__ import annotations

import pytest

from broker.pb import agents_pb2 as apb
from tests.conftest import eventually

from .tasks_helpers import claim, fail, get, history, name, register, status, submit


async def test_deregistering_requeues_a_task_with_no_retries_left(stubs):
    await register(stubs, "w")
    t = await submit(stubs, "t", retries=0)
    (a,) = await claim(stubs, "w")
    resp = await stubs.agents.Deregister(apb.DeregisterRequest(agent_id="w"))
    assert resp.requeued_tasks == 1
    got = await get(stubs, t.task_id)
    assert name(got.status) == "ready" and got.attempt == 1 and not got.assigned_agent_id
    (last,) = [h for h in await history(stubs, t.task_id) if h[:2] == ("running", "ready")]
    assert "deregistered" in last[2] and "no retry spent" in last[2] and last[4] == 1

    # The next attempt is number 2; its own failure is the one the budget (0 retries) counts.
    await register(stubs, "w2")
    (b,) = await claim(stubs, "w2")
    assert b.attempt == 2
    assert name((await fail(stubs, b, "w2")).status) == "failed"


async def test_a_departure_leaves_the_retry_budget_whole(stubs):
    await register(stubs, "w")
    t = await submit(stubs, "t", retries=1, backoff=0)
    await claim(stubs, "w")
    await stubs.agents.Deregister(apb.DeregisterRequest(agent_id="w"))
    await register(stubs, "w2")
    (b,) = await claim(stubs, "w2")
    assert name((await fail(stubs, b, "w2")).status) == "ready"  # the one retry is still there
    (c,) = await claim(stubs, "w2")
    assert c.attempt == 3
    assert name((await fail(stubs, c, "w2")).status) == "failed"
    assert (await get(stubs, t.task_id)).attempt == 3


@pytest.mark.parametrize("settings_overrides", [{"heartbeat_interval_s": 0.1}])
async def test_offline_agents_task_with_no_retries_left_goes_back_to_ready(stubs):
    await register(stubs, "gone")
    t = await submit(stubs, "t", retries=0)
    await claim(stubs, "gone")

    async def requeued() -> bool:
        return await status(stubs, t.task_id) == "ready"

    await eventually(requeued, timeout=10, what="the offline agent's task to be requeued")
    got = await get(stubs, t.task_id)
    assert got.attempt == 1 and "heartbeat" in got.last_error and not got.finished_at.seconds
