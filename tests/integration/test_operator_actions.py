"""What an operator does by hand: purge messages that reached an end, replay a task that did not
succeed."""

from __future__ import annotations

import grpc
import pytest

from broker.domain.task_states import REPLAY_OF
from broker.pb import messaging_pb2 as mpb
from broker.pb import tasks_pb2 as tpb

from . import tasks_helpers as th
from .messaging_support import Sub, ack, get, register, send


async def _dead_letter(stubs, sub: Sub, mid: str) -> None:
    await sub.one()
    await stubs.messaging.Nack(mpb.NackRequest(agent_id="r", message_ids=[mid], reject=True))


async def test_purge_deletes_dead_letters_created_before_the_time_and_nothing_else(stubs):
    await register(stubs, "s")
    await register(stubs, "r")
    sub = await Sub.open(stubs, "r", max_in_flight=1)
    old = await send(stubs, "s", "r", b"old")
    await _dead_letter(stubs, sub, old)
    cut = (await get(stubs, old)).created_at
    cut.nanos += 1000  # just after the first one
    new = await send(stubs, "s", "r", b"new")
    await _dead_letter(stubs, sub, new)
    done = await send(stubs, "s", "r", b"done")
    await sub.one()
    await ack(stubs, "r", [done])
    pending = await send(stubs, "s", "r", b"waiting")  # held back: the stream's room is full
    sub.cancel()

    r = await stubs.messaging.Purge(mpb.PurgeRequest(created_before=cut))
    assert r.purged == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await get(stubs, old)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await get(stubs, new)).status == mpb.MESSAGE_STATUS_FAILED  # created after the cut
    assert (await stubs.messaging.Purge(mpb.PurgeRequest())).purged == 1  # every dead letter left
    assert (await stubs.messaging.Purge(mpb.PurgeRequest(status=mpb.MESSAGE_STATUS_PROCESSED))).purged == 1
    assert (await get(stubs, pending)).status == mpb.MESSAGE_STATUS_PENDING  # never purged


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (mpb.PurgeRequest(status=mpb.MESSAGE_STATUS_PENDING), "status"),
        (mpb.PurgeRequest(limit=10_001), "limit"),
    ],
    ids=["pending", "limit"],
)
async def test_purge_of_an_unfinished_status_or_too_many_is_refused(stubs, request_, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.messaging.Purge(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.value.details()


async def test_replay_submits_a_failed_task_again_as_a_new_task(stubs):
    await th.register(stubs, "w", ["py"])
    original = await th.submit(stubs, "flaky", required_capabilities=["py"], priority=8, retries=0)
    (a,) = await th.claim(stubs, "w")
    await th.fail(stubs, a, "w", "boom")
    r = await stubs.tasks.Replay(tpb.ReplayRequest(task_id=original.task_id, actor="ops"))
    copy = r.task
    assert copy.task_id != original.task_id
    assert copy.status == tpb.TASK_STATUS_READY and copy.attempt == 0
    assert (copy.spec.title, copy.spec.priority, list(copy.spec.required_capabilities)) == (
        "flaky",
        8,
        ["py"],
    )
    assert copy.spec.metadata[REPLAY_OF] == original.task_id
    (again,) = await th.claim(stubs, "w")
    assert again.task.task_id == copy.task_id
    kept = await stubs.tasks.Get(tpb.GetTaskRequest(task_id=original.task_id))
    assert kept.status == tpb.TASK_STATUS_FAILED  # the original keeps its end and history


async def test_replay_of_a_task_that_did_not_fail_is_refused(stubs):
    t = await th.submit(stubs, "fine")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.tasks.Replay(tpb.ReplayRequest(task_id=t.task_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "ready" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.tasks.Replay(tpb.ReplayRequest(task_id="t-nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
