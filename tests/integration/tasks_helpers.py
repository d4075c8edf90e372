"""Small helpers for the task-queue integration tests (raw stubs, no client library)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from broker.pb import agents_pb2 as apb
from broker.pb import tasks_pb2 as pb

S = pb.TaskStatus


def name(status: int) -> str:
    return S.Name(status).removeprefix("TASK_STATUS_").lower()


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMicroseconds(int(round(seconds * 1_000_000)))
    return d


def timestamp(us: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def us(ts: timestamp_pb2.Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def spec(
    title: str = "t",
    *,
    deps: list[Any] = (),  # type: ignore[assignment]
    retries: int | None = None,
    backoff: float | None = None,
    multiplier: float = 0.0,
    lease: float | None = None,
    **kw: Any,
) -> pb.TaskSpec:
    """A TaskSpec; ``deps`` holds ids, or (id, "soft" | "optional") pairs."""
    depends = []
    for d in deps:
        if isinstance(d, tuple):
            kind = pb.DependencyType.Value(f"DEPENDENCY_TYPE_{d[1].upper()}")
            depends.append(pb.Dependency(task_id=d[0], type=kind))
        else:
            depends.append(pb.Dependency(task_id=d, type=pb.DEPENDENCY_TYPE_HARD))
    msg = pb.TaskSpec(title=title, depends_on=depends, **kw)
    if retries is not None or backoff is not None or multiplier:
        msg.retry.multiplier = multiplier
        if retries is not None:
            msg.retry.max_retries = retries
        if backoff is not None:
            msg.retry.initial_backoff.CopyFrom(duration(backoff))
    if lease is not None:
        msg.lease_timeout.CopyFrom(duration(lease))
    return msg


async def register(
    stubs: Any, agent_id: str, caps: list[str] | tuple[str, ...] = (), capacity: int = 1
) -> None:
    await stubs.agents.Register(
        apb.RegisterRequest(agent_id=agent_id, capabilities=list(caps), max_concurrent_tasks=capacity)
    )


async def submit(stubs: Any, title: str = "t", **kw: Any) -> pb.Task:
    return (await stubs.tasks.Submit(pb.SubmitRequest(task=spec(title, **kw)))).task


async def claim(stubs: Any, agent_id: str, n: int = 1, wait: float | None = None) -> list[pb.Assignment]:
    req = pb.ClaimRequest(agent_id=agent_id, max_tasks=n)
    if wait is not None:
        req.wait.CopyFrom(duration(wait))
    return list((await stubs.tasks.Claim(req)).assignments)


async def complete(stubs: Any, a: pb.Assignment, agent_id: str, result: bytes = b"") -> pb.Task:
    req = pb.CompleteRequest(task_id=a.task.task_id, agent_id=agent_id, attempt=a.attempt, result=result)
    return (await stubs.tasks.Complete(req)).task


async def fail(
    stubs: Any, a: pb.Assignment, agent_id: str, error: str = "boom", final: bool = False
) -> pb.Task:
    req = pb.FailRequest(
        task_id=a.task.task_id, agent_id=agent_id, attempt=a.attempt, error=error, non_retryable=final
    )
    return (await stubs.tasks.Fail(req)).task


async def get(stubs: Any, task_id: str) -> pb.Task:
    return await stubs.tasks.Get(pb.GetTaskRequest(task_id=task_id))


async def status(stubs: Any, task_id: str) -> str:
    return name((await get(stubs, task_id)).status)


async def all_tasks(stubs: Any, **flt: Any) -> list[pb.Task]:
    out: list[pb.Task] = []
    token = ""
    while True:
        resp = await stubs.tasks.List(pb.ListTasksRequest(page_size=1000, page_token=token, **flt))
        out += resp.tasks
        token = resp.next_page_token
        if not token:
            return out


async def history(stubs: Any, task_id: str) -> list[tuple[str, str, str, str, int]]:
    resp = await stubs.tasks.GetHistory(pb.GetHistoryRequest(task_id=task_id))
    return [
        (name(t.from_status) if t.from_status else "", name(t.to_status), t.reason, t.actor, t.attempt)
        for t in resp.transitions
    ]


async def agent_count(stubs: Any, agent_id: str) -> int:
    return (await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id=agent_id))).current_task_count


async def refused(call: Any, code: grpc.StatusCode) -> str:
    """Await ``call`` and expect it to fail with ``code``; return the status message."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    return err.value.details() or ""
