"""Work's batched form: several outcomes in one request, each judged on its own, answered by one
confirmation with one result per outcome; several assignments in one response."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from broker.pb import tasks_pb2 as pb

from .tasks_helpers import duration, register, submit, us
from .test_tasks_work import Worker

S = pb.TaskStatus
OK = 0
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]


def complete(a: pb.Assignment, result: bytes = b"ok", attempt: int | None = None) -> pb.WorkOutcome:
    att = a.attempt if attempt is None else attempt
    return pb.WorkOutcome(complete=pb.CompleteRequest(task_id=a.task.task_id, attempt=att, result=result))


async def test_several_outcomes_share_one_confirmation_each_judged_on_its_own(stubs):
    await register(stubs, "w", capacity=4)
    tasks = [await submit(stubs, f"job{i}", lease=2.0) for i in range(4)]
    w = await Worker.open(stubs, "w")
    got = {a.task.task_id: a for a in [await w.next() for _ in tasks]}
    a, b, c, d = (got[t.task_id] for t in tasks)
    outcomes = [
        complete(a, b"A"),
        complete(b, attempt=b.attempt + 1),  # stale: refused alone
        pb.WorkOutcome(
            fail=pb.FailRequest(task_id=c.task.task_id, attempt=c.attempt, error="boom", non_retryable=True)
        ),
        pb.WorkOutcome(
            extend=pb.ExtendLeaseRequest(task_id=d.task.task_id, attempt=d.attempt, extension=duration(60))
        ),
        complete(a, b"A"),  # the same completion again: answered OK
    ]
    confirm = await w.settle(outcomes=outcomes)
    assert confirm.code == OK and len(confirm.results) == 5
    done, stale, failed, extended, again = confirm.results
    assert done.code == OK and done.task.status == S.TASK_STATUS_COMPLETED and done.task.result == b"A"
    assert stale.code == FAILED_PRECONDITION and "attempt" in stale.error and not stale.HasField("task")
    assert failed.code == OK and failed.task.status == S.TASK_STATUS_FAILED
    assert extended.code == OK and us(extended.lease_expires_at) > us(d.lease_expires_at) + 50_000_000
    assert again.code == OK and again.task.status == S.TASK_STATUS_COMPLETED
    # Committed when confirmed; the refused one changed nothing.
    status = {t.task_id: (await stubs.tasks.Get(pb.GetTaskRequest(task_id=t.task_id))).status for t in tasks}
    assert [status[t.task_id] for t in tasks] == [
        S.TASK_STATUS_COMPLETED,
        S.TASK_STATUS_RUNNING,
        S.TASK_STATUS_FAILED,
        S.TASK_STATUS_RUNNING,
    ]
    history = await stubs.tasks.GetHistory(pb.GetHistoryRequest(task_id=a.task.task_id))
    assert [h.to_status for h in history.transitions].count(S.TASK_STATUS_COMPLETED) == 1
    # The single form still works on the same stream.
    single = await w.settle(complete=pb.CompleteRequest(task_id=b.task.task_id, attempt=b.attempt))
    assert single.code == OK and single.task.status == S.TASK_STATUS_COMPLETED and not single.results
    w.cancel()


async def test_tasks_ready_together_are_assigned_in_one_response(stubs):
    for i in range(5):
        await submit(stubs, f"job{i}")
    await register(stubs, "w", capacity=5)  # all five become ready for it at once
    w = await Worker.open(stubs, "w")
    first = await asyncio.wait_for(w.assignments.get(), 5)
    rest = [await w.next() for _ in range(4)]
    assert len({a.task.task_id for a in [first, *rest]}) == 5
    assert w.frames_with_assignments <= 2  # not one frame per task
    w.cancel()


@pytest.mark.parametrize(
    ("second", "code", "word"),
    [
        (
            pb.WorkRequest(
                sequence=1,
                complete=pb.CompleteRequest(task_id="t", attempt=1),
                outcomes=[pb.WorkOutcome(complete=pb.CompleteRequest(task_id="t", attempt=1))],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "outcomes",
        ),
        (
            pb.WorkRequest(
                sequence=1,
                outcomes=[
                    pb.WorkOutcome(complete=pb.CompleteRequest(task_id="t", attempt=1)),
                    pb.WorkOutcome(),
                ],
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "outcomes[1]",
        ),
        (
            pb.WorkRequest(
                sequence=1,
                outcomes=[pb.WorkOutcome(complete=pb.CompleteRequest(task_id="t", attempt=1))] * 1001,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "1000",
        ),
        (
            pb.WorkRequest(
                sequence=1,
                outcomes=[pb.WorkOutcome(fail=pb.FailRequest(task_id="t", agent_id="other", attempt=1))],
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "outcomes[0].fail.agent_id",
        ),
    ],
    ids=["both-forms", "empty-outcome", "too-many", "another-agent"],
)
async def test_a_malformed_batch_ends_the_stream_and_changes_nothing(stubs, second, code, word):
    await register(stubs, "w")
    t = await submit(stubs, "job")
    w = await Worker.open(stubs, "w")
    a = await w.next()
    for o in second.outcomes:  # the batch names the real task: still nothing may change
        if (kind := o.WhichOneof("outcome")) is not None:
            getattr(o, kind).task_id = a.task.task_id
    await w.call.write(second)
    assert await asyncio.wait_for(w.ended, 5) == code
    assert word in (await w.call.details() or "")
    got = await stubs.tasks.Get(pb.GetTaskRequest(task_id=t.task_id))
    assert got.status in (S.TASK_STATUS_RUNNING, S.TASK_STATUS_PENDING)
