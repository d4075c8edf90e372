"""Messaging input checks and the due timer, without a broker."""

from __future__ import annotations

import asyncio

import pytest

from broker.clock import now_us
from broker.core.wakeups import DueTimer
from broker.errors import InvalidArgument
from broker.models.messages import (
    Target,
    TargetKind,
    check_ids,
    check_nack,
    check_send,
    check_subscribe,
)

NOW = 1_700_000_000_000_000
DIRECT = Target(TargetKind.DIRECT, agent_id="bob")


def send(**kw):
    args = {"field": "", "now": NOW, "max_payload": 100, "sender_id": "alice", "target": DIRECT}
    args.update(kw)
    return check_send(**args)


def test_defaults_and_resolved_times():
    m = send()
    assert (m.priority, m.max_attempts, m.expires_at, m.deliver_after) == (5, 5, None, None)
    assert (m.correlation_id, m.conversation_id, m.idempotency_key, m.headers) == (None, None, None, {})
    assert send(ttl_us=2_000_000).expires_at == NOW + 2_000_000
    assert send(deliver_after=NOW - 1).deliver_after is None  # already due: at once
    assert send(deliver_after=NOW + 5).deliver_after == NOW + 5
    assert send(priority=0).priority == 0 and send(priority=10).priority == 10


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"priority": 11}, "priority"),
        ({"ttl_us": -1}, "ttl"),
        ({"ttl_us": 0}, "ttl"),
        ({"expires_at": NOW}, "expires_at"),
        ({"deliver_after": NOW + 10, "expires_at": NOW + 5}, "expires_at"),
        ({"payload": b"x" * 101}, "payload"),
        ({"target": None}, "target"),
        ({"target": Target(TargetKind.DIRECT, agent_id="")}, "target.agent_id"),
        ({"target": Target(TargetKind.DIRECT, agent_id="no spaces")}, "target.agent_id"),
        ({"target": Target(TargetKind.ANYCAST)}, "target.anycast.capability"),
        ({"target": Target(TargetKind.BROADCAST, capability="c" * 129)}, "target.broadcast.capability"),
        ({"sender_id": ""}, "sender_id"),
        ({"conversation_id": "c" * 129}, "conversation_id"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"headers": {"": "v"}}, "headers"),
    ],
)
def test_each_rule_names_its_field(kw, field):
    with pytest.raises(InvalidArgument) as err:
        send(**kw)
    assert err.value.field == field


def test_batch_prefix_names_the_message():
    with pytest.raises(InvalidArgument) as err:
        send(field="messages[7].", priority=-1)
    assert err.value.message.startswith("messages[7].priority:")


def test_ids_are_checked_and_folded():
    assert check_ids(["a", "b", "a"]) == ["a", "b"]
    with pytest.raises(InvalidArgument, match=r"message_ids\[1\]"):
        check_ids(["a", ""])
    with pytest.raises(InvalidArgument, match="message_ids"):
        check_ids([])


def test_subscribe_and_nack_options():
    s = check_subscribe("bob", 0, 30_000_000, 0)
    assert (s.max_in_flight, s.max_batch) == (100, 100)
    with pytest.raises(InvalidArgument, match="ack_deadline"):
        check_subscribe("bob", 1, 999_999, 1)
    with pytest.raises(InvalidArgument, match="reason"):
        check_nack("bob", ["m"], 0, False, "r" * 1025)


async def test_due_timer_fires_each_key_when_due_and_in_order():
    fired: list[tuple[str, int]] = []
    done = asyncio.Event()

    def fire(key: str) -> None:
        fired.append((key, now_us()))
        if len(fired) == 3:
            done.set()

    timer = DueTimer(fire)
    t0 = now_us()
    timer.add(t0 + 150_000, "late")
    timer.add(t0 + 50_000, "early")  # earlier than the one the timer sleeps for: it re-arms
    timer.add(t0 - 1, "past")
    await asyncio.wait_for(done.wait(), 5)
    await timer.close()
    assert [k for k, _ in fired] == ["past", "early", "late"]
    due = {"past": t0 - 1, "early": t0 + 50_000, "late": t0 + 150_000}
    assert all(at >= due[k] for k, at in fired)
