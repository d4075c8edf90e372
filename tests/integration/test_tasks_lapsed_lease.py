"""A lease that has lapsed is over even before the sweeper gets to it: its holder can
neither complete, fail nor revive it (the sweeper here runs only once a minute)."""

from __future__ import annotations

import time

import grpc
import pytest

from broker.pb import tasks_pb2 as pb

from ..conftest import eventually
from .tasks_helpers import claim, get, refused, register, submit, us

Code = grpc.StatusCode


@pytest.fixture
def settings_overrides():
    return {"sweeper_period_s": 60.0}


async def test_a_lapsed_lease_cannot_be_completed_failed_or_extended_before_the_sweep(stubs):
    await register(stubs, "w", capacity=1)
    t = await submit(stubs, "t", lease=1.0)
    (a,) = await claim(stubs, "w")
    expiry = us(a.lease_expires_at)

    async def lapsed() -> bool:
        return time.time() * 1e6 > expiry + 50_000

    await eventually(lapsed, timeout=10, what="the lease to lapse")
    ref = {"task_id": t.task_id, "agent_id": "w", "attempt": a.attempt}
    for call in (
        stubs.tasks.ExtendLease(pb.ExtendLeaseRequest(**ref)),
        stubs.tasks.Complete(pb.CompleteRequest(**ref, result=b"late")),
        stubs.tasks.Fail(pb.FailRequest(**ref, error="late")),
    ):
        assert "lapsed" in await refused(call, Code.FAILED_PRECONDITION)
    got = await get(stubs, t.task_id)
    assert got.status == pb.TASK_STATUS_RUNNING  # left for the sweeper to end as a failed attempt
    assert (got.result, got.last_error, us(got.lease_expires_at)) == (b"", "", expiry)
