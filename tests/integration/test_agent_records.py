"""Agent performance records in GetAgent and ListAgents: tasks completed and failed for good,
success rate, mean and p95 run time, over the configured window."""

from __future__ import annotations

from broker.pb import agents_pb2 as apb
from tests.clock_support import manual_clock

from . import tasks_helpers as th


async def record(stubs, agent_id: str) -> apb.AgentRecord:
    return (await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id=agent_id))).record


@manual_clock
async def test_records_count_outcomes_and_run_times_after_a_scripted_workload(stubs, broker):
    await th.register(stubs, "fast", ["x"])
    await th.register(stubs, "idle", ["y"])
    r = await record(stubs, "fast")
    assert (r.tasks_completed, r.tasks_failed, r.success_rate) == (0, 0, 0.0)
    assert r.window.seconds == 86_400
    for i in range(3):
        await th.submit(stubs, f"ok {i}", required_capabilities=["x"])
        (a,) = await th.claim(stubs, "fast")
        await broker.tasks.clock.advance(0.05 * (i + 1))  # 50, 100, 150 ms of work
        await th.complete(stubs, a, "fast")
    await th.submit(stubs, "doomed", required_capabilities=["x"], retries=0)
    (a,) = await th.claim(stubs, "fast")
    await th.fail(stubs, a, "fast", "broken")
    r = await record(stubs, "fast")
    assert (r.tasks_completed, r.tasks_failed, r.success_rate) == (3, 1, 0.75)
    mean_ms, p95_ms = r.mean_run_time.ToMilliseconds(), r.p95_run_time.ToMilliseconds()
    assert 50 <= mean_ms < 2000 and p95_ms >= 150 and p95_ms >= mean_ms, (mean_ms, p95_ms)
    assert (mean_ms, p95_ms) == (75, 150)  # 50, 100, 150 and the failed one's 0 ms, exactly
    listed = {a.agent_id: a.record for a in (await stubs.agents.ListAgents(apb.ListAgentsRequest())).agents}
    assert listed["fast"].tasks_completed == 3 and listed["idle"].tasks_completed == 0


async def test_a_retried_attempt_counts_for_the_agent_that_finished_the_task(stubs):
    await th.register(stubs, "flaky", ["x"])
    await th.register(stubs, "steady", ["x"])
    await th.submit(stubs, "t", required_capabilities=["x"], retries=1, backoff=0)
    (a,) = await th.claim(stubs, "flaky")
    await th.fail(stubs, a, "flaky", "oops")  # retried: not a failure for good
    (b,) = await th.claim(stubs, "steady", wait=5)
    await th.complete(stubs, b, "steady")
    assert (await record(stubs, "flaky")).tasks_failed == 0
    assert (await record(stubs, "steady")).tasks_completed == 1


async def test_the_python_client_reads_the_record(broker):
    from a2a_broker_client import BrokerClient

    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("c", capabilities=["x"])
        await client.submit("t", required_capabilities=["x"])
        (a,) = await client.claim("c")
        await client.complete(a.task.task_id, "c", a.attempt, b"ok")
        r = (await client.get_agent("c")).record
        assert r is not None and (r.tasks_completed, r.success_rate, r.window) == (1, 1.0, 86_400.0)
        (listed,) = (await client.list_agents()).items
        assert listed.record is not None and listed.record.tasks_completed == 1
