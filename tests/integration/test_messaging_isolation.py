"""One request's content never fails another's write: coalesced Sends that share a write job are
retried alone when the job fails, so only the offender fails."""

from __future__ import annotations

import asyncio

import pytest

from broker.clock import now_us
from broker.errors import StorageUnavailable
from broker.models.messages import MessageFilter, Target, TargetKind, check_send
from tests.integration.messaging_support import register


async def test_a_send_the_database_refuses_fails_alone_among_concurrent_sends(broker, stubs):
    await register(stubs, "alice")
    await register(stubs, "bob")

    def msg(correlation_id: str):
        m = check_send(
            field="",
            now=now_us(),
            max_payload=1024,
            sender_id="alice",
            target=Target(TargetKind.DIRECT, agent_id="bob"),
            payload=b"p",
            correlation_id="ok",
        )
        # Past validation (which refuses a NUL): the database's CHECK (length() stops at NUL) is
        # what refuses it, as it would refuse any content validation let through.
        m.correlation_id = correlation_id
        return m

    msgs = [msg("\x00" if i in (3, 31) else f"c{i}") for i in range(60)]
    results = await asyncio.wait_for(
        asyncio.gather(*(broker.mailbox.send(m) for m in msgs), return_exceptions=True), 10
    )
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [3, 31], [repr(results[i]) for i in failed]
    for i in failed:
        with pytest.raises(StorageUnavailable):
            raise results[i]
    stored, _ = await broker.mailbox.list(MessageFilter(page_size=1000))
    assert sorted(m.correlation_id for m in stored) == sorted(f"c{i}" for i in range(60) if i not in failed)
