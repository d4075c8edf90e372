"""Helpers shared by the topic (subject and subscription) integration tests."""

from __future__ import annotations

from typing import Any

from broker.pb import messaging_pb2 as pb

from .messaging_support import Sub, send


async def publish(stubs: Any, sender: str, subject: str, payload: bytes = b"x", **kw: Any) -> str:
    """Send to a subject; its message id."""
    return await send(stubs, sender, pb.Target(subject=subject), payload, **kw)


async def create(stubs: Any, name: str, flt: str, **kw: Any) -> pb.Subscription:
    return await stubs.messaging.CreateSubscription(pb.CreateSubscriptionRequest(name=name, filter=flt, **kw))


async def consume(stubs: Any, agent_id: str, subscription: str, **kw: Any) -> Sub:
    """A Subscribe stream on a subscription (the agent must be registered)."""
    return await Sub.open(stubs, agent_id, subscription=subscription, **kw)


async def settle(stubs: Any, agent_id: str, msgs: list[pb.Message]) -> int:
    r = await stubs.messaging.Ack(pb.AckRequest(agent_id=agent_id, message_ids=[m.message_id for m in msgs]))
    return int(r.acked)


async def figures(stubs: Any, name: str) -> pb.Subscription:
    return await stubs.messaging.GetSubscription(pb.GetSubscriptionRequest(name=name))
