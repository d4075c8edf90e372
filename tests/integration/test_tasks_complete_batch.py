"""CompleteBatch: several completions in one call, each judged as Complete would judge it."""

from __future__ import annotations

import grpc
import pytest

from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as pb


async def setup_three_leases(stubs):
    await stubs.agents.Register(apb.RegisterRequest(agent_id="w", max_concurrent_tasks=3))
    for i in range(3):
        await stubs.tasks.Submit(pb.SubmitRequest(task=pb.TaskSpec(title=f"t{i}")))
    claimed = await stubs.tasks.Claim(pb.ClaimRequest(agent_id="w", max_tasks=3))
    assert len(claimed.assignments) == 3
    return claimed.assignments


async def test_batch_completes_each_and_refuses_a_stale_item_alone(stubs):
    a = await setup_three_leases(stubs)
    items = [
        pb.CompleteRequest(task_id=a[0].task.task_id, agent_id="w", attempt=a[0].attempt, result=b"r0"),
        # Stale: wrong attempt. Refused alone, changing nothing.
        pb.CompleteRequest(task_id=a[1].task.task_id, agent_id="w", attempt=a[1].attempt + 1),
        pb.CompleteRequest(task_id=a[2].task.task_id, agent_id="w", attempt=a[2].attempt, result=b"r2"),
        pb.CompleteRequest(task_id="t-unknown", agent_id="w", attempt=1),
    ]
    resp = await stubs.tasks.CompleteBatch(pb.CompleteBatchRequest(items=items))
    codes = [r.code for r in resp.results]
    assert codes == [
        grpc.StatusCode.OK.value[0],
        grpc.StatusCode.FAILED_PRECONDITION.value[0],
        grpc.StatusCode.OK.value[0],
        grpc.StatusCode.NOT_FOUND.value[0],
    ]
    assert resp.results[0].task.status == pb.TASK_STATUS_COMPLETED
    assert resp.results[0].task.result == b"r0"
    assert resp.results[1].message and not resp.results[1].HasField("task")

    stale = await stubs.tasks.Get(pb.GetTaskRequest(task_id=a[1].task.task_id))
    assert stale.status == pb.TASK_STATUS_RUNNING
    agent = await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id="w"))
    assert agent.current_task_count == 1  # only the stale item's lease is still held


async def test_empty_batch_is_refused(stubs):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.tasks.CompleteBatch(pb.CompleteBatchRequest(items=[]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("items")


async def test_one_malformed_item_refuses_the_whole_batch(stubs):
    a = await setup_three_leases(stubs)
    good = pb.CompleteRequest(task_id=a[0].task.task_id, agent_id="w", attempt=a[0].attempt)
    bad = pb.CompleteRequest(task_id="", agent_id="w", attempt=1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.tasks.CompleteBatch(pb.CompleteBatchRequest(items=[good, bad]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("items[1]: task_id"), err.value.details()
    t = await stubs.tasks.Get(pb.GetTaskRequest(task_id=a[0].task.task_id))
    assert t.status == pb.TASK_STATUS_RUNNING  # nothing changed, not even the good item


async def test_python_client_complete_batch(broker, stubs):
    from a2a_broker_client import BrokerClient, Completion, FailedPreconditionError

    a = await setup_three_leases(stubs)
    async with BrokerClient(broker.address) as client:
        out = await client.complete_batch(
            [
                Completion(a[0].task.task_id, "w", a[0].attempt, {"ok": True}),
                Completion(a[1].task.task_id, "w", a[1].attempt + 5),
            ]
        )
    assert out[0].status == "completed" and out[0].result_data == {"ok": True}
    assert isinstance(out[1], FailedPreconditionError)
