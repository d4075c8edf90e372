"""The one wake-up registry (broker/core/wakeups.py) and its key vocabulary."""

from __future__ import annotations

import asyncio

from broker.core import wakeups as w
from broker.domain.messages import Audience


def test_task_and_message_keys_of_one_agent_or_capability_never_meet():
    task_keys = {*w.keys_for("bob", ["gpu"]), w.ready_key(("gpu", "x"))}
    message_keys = {*w.subscriber_keys("bob", ["gpu"]), w.audience_key(Audience("bob", None))}
    assert not task_keys & message_keys
    assert w.audience_key(Audience("bob", None)) == w.inbox_key("bob")
    assert w.audience_key(Audience(None, "gpu")) == w.pool_key("gpu")
    assert w.ready_key(()) == "ready:*" and "ready:*" in w.keys_for("bob", [])


async def test_an_armed_event_is_set_by_a_notify_that_lands_before_the_wait():
    reg = w.Wakeups()
    keys = w.keys_for("bob", ["gpu"])
    ev = reg.arm(keys)
    reg.notify(w.ready_key(("gpu",)))
    await asyncio.wait_for(ev.wait(), 1)
    reg.disarm(keys, ev)
    assert not reg._events  # nothing left behind


async def test_a_watcher_callback_runs_for_each_notify_of_its_keys_until_unwatched():
    reg = w.Wakeups()
    woken: list[str] = []
    keys = w.subscriber_keys("bob", ["gpu"])
    reg.watch(keys, lambda: woken.append("bob"))
    wake = woken.clear
    reg.watch([w.inbox_key("eve")], wake)
    reg.notify_all([w.pool_key("gpu"), w.inbox_key("carol")])
    assert woken == ["bob"]
    reg.unwatch([w.inbox_key("eve")], wake)
    assert w.inbox_key("eve") not in reg._events
