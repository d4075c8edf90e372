"""BrokerClient's subscription methods (topics): create, read, list, delete and seek durable
subscriptions to subjects. Sending to a subject is :meth:`BrokerClient.send` with
``Target.to_subject(...)``; consuming a subscription is :meth:`BrokerClient.subscribe` or
:meth:`BrokerClient.consume` with ``subscription=``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from . import _convert as c
from . import models as m
from ._paging import pages
from .pb import messaging_pb2


class TopicsMixin:
    """Mixed into :class:`BrokerClient` (which provides ``_unary``)."""

    async def _unary(self, service: str, method: str, request: Any, *, safe: bool) -> Any:
        raise NotImplementedError

    async def create_subscription(
        self,
        name: str,
        filter: str,
        *,
        ack_deadline: m.Seconds | None = None,
        max_attempts: int = 0,
        retention: m.Seconds | None = None,
        ordering: bool = False,
        dead_letter_subject: str = "",
        start_sequence: int | None = None,
        start_time: datetime | None = None,
    ) -> m.Subscription:
        """Create a durable subscription to the subjects ``filter`` matches (``*``: one token,
        ``>``: the rest): each message sent to one from now on is delivered to it once, to one
        of its consumers. ``start_sequence`` (a message's ``sequence``) or ``start_time``: also
        the retained messages sent from that point (a replay). ``ordering``: messages with the
        same ``ordering_key`` are delivered one at a time, in order. ``dead_letter_subject``:
        where its dead letters are also published. Creating the same one again returns it."""
        req = messaging_pb2.CreateSubscriptionRequest(
            name=name,
            filter=filter,
            max_attempts=max_attempts,
            ordering=ordering,
            dead_letter_subject=dead_letter_subject,
        )
        if ack_deadline is not None:
            req.ack_deadline.CopyFrom(c.duration(ack_deadline))
        if retention is not None:
            req.retention.CopyFrom(c.duration(retention))
        if start_sequence is not None and start_time is not None:
            raise ValueError("give start_sequence or start_time, not both")
        if start_sequence is not None:
            req.start_sequence = start_sequence
        if start_time is not None:
            req.start_time.CopyFrom(c.timestamp(start_time))
        # Safe to retry: a repeat of the same subscription answers with it.
        return c.subscription(await self._unary("messaging", "CreateSubscription", req, safe=True))

    async def get_subscription(self, name: str) -> m.Subscription:
        """One subscription with its figures (backlog, in flight, dead letters, oldest unacked)."""
        req = messaging_pb2.GetSubscriptionRequest(name=name)
        return c.subscription(await self._unary("messaging", "GetSubscription", req, safe=True))

    async def list_subscriptions(self, *, page_size: int = 0, page_token: str = "") -> m.Page[m.Subscription]:
        """One page of subscriptions by name."""
        req = messaging_pb2.ListSubscriptionsRequest(page_size=page_size, page_token=page_token)
        resp = await self._unary("messaging", "ListSubscriptions", req, safe=True)
        return m.Page([c.subscription(x) for x in resp.subscriptions], resp.next_page_token)

    async def iter_subscriptions(self) -> AsyncIterator[m.Subscription]:
        """Every subscription, following pages."""
        async for x in pages(self.list_subscriptions, {}):
            yield x

    async def delete_subscription(self, name: str) -> None:
        """Delete a subscription and its deliveries; streams consuming it end (NotFound)."""
        req = messaging_pb2.DeleteSubscriptionRequest(name=name)
        await self._unary("messaging", "DeleteSubscription", req, safe=False)

    async def seek(
        self, name: str, *, sequence: int | None = None, time: datetime | None = None
    ) -> m.SeekResult:
        """Move a subscription to a point of the retained history (a message's ``sequence``, or
        a time): the messages from there on are delivered (again); unacknowledged ones before it
        are acknowledged."""
        if (sequence is None) == (time is None):
            raise ValueError("give sequence or time (one of them)")
        req = messaging_pb2.SeekRequest(name=name)
        if sequence is not None:
            req.sequence = sequence
        if time is not None:
            req.time.CopyFrom(c.timestamp(time))
        resp = await self._unary("messaging", "Seek", req, safe=True)
        return m.SeekResult(c.subscription(resp.subscription), resp.replayed, resp.skipped)
