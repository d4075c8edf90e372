"""Work: Listen with completions, failures and lease extensions on the same stream."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from broker.pb import tasks_pb2 as pb
from tests.conftest import Stubs

from .tasks_helpers import duration, register, submit, us

S = pb.TaskStatus
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]


class Worker:
    """One Work call: assignments, cancellations and confirmations read into queues by a task."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.assignments: asyncio.Queue[pb.Assignment] = asyncio.Queue()
        self.cancellations: asyncio.Queue[pb.Cancellation] = asyncio.Queue()
        self.confirms: asyncio.Queue[pb.WorkConfirm] = asyncio.Queue()
        self.ended: asyncio.Future[grpc.StatusCode] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())
        self._seq = 0
        self.frames_with_assignments = 0

    @classmethod
    async def open(cls, stubs: Stubs, agent_id: str) -> Worker:
        call = stubs.tasks.Work()
        await call.write(pb.WorkRequest(listen=pb.ListenRequest(agent_id=agent_id)))
        await asyncio.wait_for(call.initial_metadata(), 5)
        return cls(call)

    async def _read(self) -> None:
        try:
            async for resp in self.call:
                if resp.HasField("confirm"):
                    self.confirms.put_nowait(resp.confirm)
                if resp.assignments:
                    self.frames_with_assignments += 1
                for a in resp.assignments:
                    self.assignments.put_nowait(a)
                for c in resp.cancellations:
                    self.cancellations.put_nowait(c)
            self.ended.set_result(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as err:
            self.ended.set_result(err.code())

    async def next(self) -> pb.Assignment:
        return await asyncio.wait_for(self.assignments.get(), 5)

    async def settle(self, **outcome: Any) -> pb.WorkConfirm:
        self._seq += 1
        await self.call.write(pb.WorkRequest(sequence=self._seq, **outcome))
        confirm = await asyncio.wait_for(self.confirms.get(), 5)
        assert confirm.sequence == self._seq
        return confirm

    def cancel(self) -> None:
        self.call.cancel()
        self._reader.cancel()


def done(a: pb.Assignment, result: bytes = b"ok") -> dict[str, Any]:
    return {"complete": pb.CompleteRequest(task_id=a.task.task_id, attempt=a.attempt, result=result)}


async def test_a_completion_on_the_stream_is_committed_before_its_confirmation(stubs):
    await register(stubs, "w")
    t = await submit(stubs, "job")
    w = await Worker.open(stubs, "w")
    a = await w.next()
    assert a.task.task_id == t.task_id
    confirm = await w.settle(**done(a, b"42"))
    assert confirm.code == 0 and confirm.task.status == S.TASK_STATUS_COMPLETED
    got = await stubs.tasks.Get(pb.GetTaskRequest(task_id=t.task_id))
    assert (got.status, got.result) == (S.TASK_STATUS_COMPLETED, b"42")
    w.cancel()


async def test_a_stale_attempt_is_refused_alone_and_the_stream_goes_on(stubs):
    await register(stubs, "w", capacity=2)
    await submit(stubs, "one")
    await submit(stubs, "two")
    w = await Worker.open(stubs, "w")
    a, b = await w.next(), await w.next()
    stale = pb.CompleteRequest(task_id=a.task.task_id, attempt=a.attempt + 1)
    refused = await w.settle(complete=stale)
    assert refused.code == FAILED_PRECONDITION
    running = await stubs.tasks.Get(pb.GetTaskRequest(task_id=a.task.task_id))
    assert running.status == S.TASK_STATUS_RUNNING  # nothing changed
    assert (await w.settle(**done(a))).code == 0
    assert (await w.settle(**done(b))).code == 0
    w.cancel()


async def test_a_completion_sent_again_after_reconnecting_is_answered_ok_once(stubs):
    await register(stubs, "w")
    t = await submit(stubs, "job")
    first = await Worker.open(stubs, "w")
    a = await first.next()
    assert (await first.settle(**done(a, b"r"))).code == 0
    first.cancel()  # the worker did not see the confirmation, say: it sends the outcome again
    second = await Worker.open(stubs, "w")
    again = await second.settle(**done(a, b"r"))
    assert again.code == 0 and again.task.status == S.TASK_STATUS_COMPLETED
    history = await stubs.tasks.GetHistory(pb.GetHistoryRequest(task_id=t.task_id))
    assert [h.to_status for h in history.transitions].count(S.TASK_STATUS_COMPLETED) == 1
    second.cancel()


async def test_cancellations_reach_the_stream_and_a_failure_is_retried_on_it(stubs):
    await register(stubs, "w")
    doomed = await submit(stubs, "doomed")
    w = await Worker.open(stubs, "w")
    a = await w.next()
    await stubs.tasks.Cancel(pb.CancelRequest(task_id=doomed.task_id, reason="not needed"))
    c = await asyncio.wait_for(w.cancellations.get(), 5)
    assert (c.task_id, c.attempt, c.reason) == (doomed.task_id, a.attempt, "not needed")
    flaky = await submit(stubs, "flaky", retries=1, backoff=0)
    b = await w.next()
    assert b.task.task_id == flaky.task_id
    failed = await w.settle(fail=pb.FailRequest(task_id=b.task.task_id, attempt=b.attempt, error="oops"))
    assert failed.code == 0 and failed.task.status == S.TASK_STATUS_READY
    retry = await w.next()  # the retry comes back on the same stream
    assert (retry.task.task_id, retry.attempt) == (flaky.task_id, 2)
    w.cancel()


async def test_a_lease_is_extended_on_the_stream(stubs):
    await register(stubs, "w")
    await submit(stubs, "long", lease=2.0)
    w = await Worker.open(stubs, "w")
    a = await w.next()
    ext = pb.ExtendLeaseRequest(
        task_id=a.task.task_id, attempt=a.attempt, extension=duration(60), progress=40
    )
    confirm = await w.settle(extend=ext)
    assert confirm.code == 0 and us(confirm.lease_expires_at) > us(a.lease_expires_at) + 50_000_000
    w.cancel()


@pytest.mark.parametrize(
    ("second", "code", "word"),
    [
        (pb.WorkRequest(listen=pb.ListenRequest(agent_id="w")), grpc.StatusCode.INVALID_ARGUMENT, "listen"),
        (pb.WorkRequest(sequence=1), grpc.StatusCode.INVALID_ARGUMENT, "outcome"),
        (
            pb.WorkRequest(sequence=1, complete=pb.CompleteRequest(task_id="t", agent_id="other", attempt=1)),
            grpc.StatusCode.PERMISSION_DENIED,
            "other",
        ),
    ],
    ids=["listen-twice", "no-outcome", "another-agent"],
)
async def test_a_malformed_request_ends_the_stream(stubs, second, code, word):
    await register(stubs, "w")
    w = await Worker.open(stubs, "w")
    await w.call.write(second)
    assert await asyncio.wait_for(w.ended, 5) == code
    assert word in (await w.call.details() or "")


async def test_a_stream_not_opened_by_listen_is_invalid(stubs):
    call = stubs.tasks.Work()
    await call.write(pb.WorkRequest(sequence=1, complete=pb.CompleteRequest(task_id="t", attempt=1)))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
