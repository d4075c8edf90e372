"""A repeated Complete (or Fail) of an attempt that already committed answers OK, so that a client's
retry after a lost answer is safe; a Complete or Fail for another attempt stays refused."""

from __future__ import annotations

import grpc
from grpc import StatusCode as Code

from broker.pb import tasks_pb2 as pb

from .tasks_helpers import claim, complete, fail, get, history, name, refused, register, submit


async def test_repeated_complete_of_the_same_attempt_answers_ok(stubs):
    await register(stubs, "w")
    t = await submit(stubs, "t")
    (a,) = await claim(stubs, "w")
    first = await complete(stubs, a, "w", b"done")
    again = await complete(stubs, a, "w", b"done")
    assert name(again.status) == "completed" and again.result == b"done"
    assert again.finished_at == first.finished_at
    # Still one completion in the history.
    assert [h[1] for h in await history(stubs, t.task_id)].count("completed") == 1
    # Another result for the same attempt is no retry: refused, changing nothing.
    await refused(
        stubs.tasks.Complete(
            pb.CompleteRequest(task_id=t.task_id, agent_id="w", attempt=a.attempt, result=b"x")
        ),
        Code.FAILED_PRECONDITION,
    )
    # Another agent, or another attempt, likewise.
    other = pb.CompleteRequest(task_id=t.task_id, agent_id="w2", attempt=a.attempt, result=b"done")
    await refused(stubs.tasks.Complete(other), Code.FAILED_PRECONDITION)
    assert (await get(stubs, t.task_id)).result == b"done"


async def test_complete_of_a_stale_attempt_stays_refused(stubs):
    await register(stubs, "w")
    t = await submit(stubs, "t", retries=2, backoff=0)
    (a,) = await claim(stubs, "w")
    await fail(stubs, a, "w")
    (b,) = await claim(stubs, "w")
    await complete(stubs, b, "w", b"second")
    stale = pb.CompleteRequest(task_id=t.task_id, agent_id="w", attempt=a.attempt, result=b"second")
    await refused(stubs.tasks.Complete(stale), Code.FAILED_PRECONDITION)


async def test_repeated_complete_in_a_batch_answers_ok(stubs):
    await register(stubs, "w")
    await submit(stubs, "t")
    (a,) = await claim(stubs, "w")
    item = pb.CompleteRequest(task_id=a.task.task_id, agent_id="w", attempt=a.attempt, result=b"r")
    for _ in range(2):
        resp = await stubs.tasks.CompleteBatch(pb.CompleteBatchRequest(items=[item]))
        (r,) = resp.results
        assert r.code == grpc.StatusCode.OK.value[0], r.message
        assert r.task.status == pb.TASK_STATUS_COMPLETED and r.task.result == b"r"


async def test_repeated_fail_of_the_same_attempt_answers_ok(stubs):
    await register(stubs, "w")
    t = await submit(stubs, "t", retries=0)
    (a,) = await claim(stubs, "w")
    assert name((await fail(stubs, a, "w", "boom")).status) == "failed"
    again = await fail(stubs, a, "w", "boom")
    assert name(again.status) == "failed" and again.last_error == "boom"
    assert [h[1] for h in await history(stubs, t.task_id)].count("failed") == 1
    # A different outcome for that attempt is refused.
    await refused(
        stubs.tasks.Fail(pb.FailRequest(task_id=t.task_id, agent_id="w", attempt=a.attempt, error="other")),
        Code.FAILED_PRECONDITION,
    )


async def test_repeated_retryable_fail_answers_ok_without_spending_another_retry(stubs):
    await register(stubs, "w")
    t = await submit(stubs, "t", retries=3, backoff=60)
    (a,) = await claim(stubs, "w")
    await fail(stubs, a, "w", "boom")
    again = await fail(stubs, a, "w", "boom")
    assert name(again.status) == "ready" and again.attempt == 1
    assert [h[1] for h in await history(stubs, t.task_id)].count("ready") == 2  # submitted, one retry
