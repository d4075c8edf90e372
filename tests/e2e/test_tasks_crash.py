"""A task graph survives SIGKILL: after a restart its tasks, statuses, leases and history are as the
broker last said they were (synchronous=FULL)."""

from __future__ import annotations

import grpc
import pytest

from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as pb
from tests.conftest import stubs_for
from tests.integration.tasks_helpers import claim, complete, fail, spec

# Slow; and under pytest -n (make test) the SIGKILL tests run one after another on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crash")]


def node(key: str, deps: list[str] = (), parent: str = "", **kw) -> pb.GraphNode:  # type: ignore[assignment]
    return pb.GraphNode(
        key=key,
        task=spec(key, **kw),
        depends_on_keys=[pb.GraphDependency(key=d) for d in deps],
        parent_key=parent,
    )


async def state(stubs, ids: list[str]) -> dict[str, tuple]:
    out = {}
    for tid in ids:
        t = await stubs.tasks.Get(pb.GetTaskRequest(task_id=tid))
        t.ClearField("calculated_priority")  # moves with age
        h = await stubs.tasks.GetHistory(pb.GetHistoryRequest(task_id=tid))
        out[tid] = (t.SerializeToString(deterministic=True), h.SerializeToString(deterministic=True))
    return out


async def test_graph_statuses_and_history_survive_sigkill(tmp_path, broker_process):
    db = tmp_path / "tasks-kill.db"
    p = broker_process(db, A2A_BROKER_SQLITE_SYNCHRONOUS="FULL")
    p.start()
    s = stubs_for(p.address)
    await s.agents.Register(apb.RegisterRequest(agent_id="w", max_concurrent_tasks=5))
    g = await s.tasks.SubmitGraph(
        pb.SubmitGraphRequest(
            nodes=[
                node("root"),
                node("a", parent="root", retries=1, backoff=60.0),
                node("b", ["a"], parent="root"),
                node("c", ["a"], parent="root"),
                node("d", ["b", "c"], parent="root"),
                node("e", [], parent="a", session_id="sess", tags=["keep"]),
            ]
        )
    )
    ids = dict(g.task_ids)
    leased = {x.task.spec.title: x for x in await claim(s, "w", n=5)}
    assert set(leased) == {"root", "a", "e"}
    await complete(s, leased["e"], "w", result=b"e-done")
    await fail(s, leased["a"], "w", error="first try")  # back to ready, in a 60 s backoff
    await s.tasks.ExtendLease(
        pb.ExtendLeaseRequest(task_id=ids["root"], agent_id="w", attempt=1, progress=30)
    )
    before = await state(s, list(ids.values()))
    agent_before = await s.agents.GetAgent(apb.GetAgentRequest(agent_id="w"))
    p.kill()
    await s.channel.close()

    p2 = broker_process(db)
    p2.start()
    s2 = stubs_for(p2.address)
    try:
        assert await state(s2, list(ids.values())) == before
        got = {k: await s2.tasks.Get(pb.GetTaskRequest(task_id=v)) for k, v in ids.items()}
        names = {k: pb.TaskStatus.Name(t.status) for k, t in got.items()}
        assert names == {
            "root": "TASK_STATUS_RUNNING",
            "a": "TASK_STATUS_READY",
            "b": "TASK_STATUS_BLOCKED",
            "c": "TASK_STATUS_BLOCKED",
            "d": "TASK_STATUS_BLOCKED",
            "e": "TASK_STATUS_COMPLETED",
        }
        assert got["e"].result == b"e-done" and got["a"].last_error == "first try"
        assert got["a"].HasField("next_attempt_at") and got["root"].progress == 30
        agent = await s2.agents.GetAgent(apb.GetAgentRequest(agent_id="w"))
        assert agent.current_task_count == agent_before.current_task_count == 1
        tree = await s2.tasks.GetTree(pb.GetTreeRequest(task_id=ids["root"]))
        assert len(tree.tasks) == 6
        # The restarted broker carries on: the running lease can still be completed.
        done = await s2.tasks.Complete(pb.CompleteRequest(task_id=ids["root"], agent_id="w", attempt=1))
        assert done.task.status == pb.TASK_STATUS_COMPLETED
        # A retry of that Complete is answered the same (idempotent); another attempt is refused.
        again = await s2.tasks.Complete(pb.CompleteRequest(task_id=ids["root"], agent_id="w", attempt=1))
        assert again.task.status == pb.TASK_STATUS_COMPLETED
        with pytest.raises(grpc.aio.AioRpcError):
            await s2.tasks.Complete(pb.CompleteRequest(task_id=ids["root"], agent_id="w", attempt=2))
    finally:
        await s2.channel.close()
