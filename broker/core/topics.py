"""Topics: subscriptions to subjects as a resource (create, read, list, delete, seek), and what
the broker does for them in the background (dead letters published to a subject).

Sending to a subject is the mailbox's Send (storage matches the subject against the filters and
fans the message out, see ``broker/storage/sql/subject_index.py``); consuming a subscription is a
Subscribe or Consume stream that names it (``Mailbox.subscribe``): its deliveries go through the
delivery ledger as every other delivery does. The rules (subject and filter syntax, matching,
per-key ordering) are the domain's (``broker/domain/subjects.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..clock import Clock
from ..domain import subjects
from ..domain.messages import Audience
from ..errors import NotFound
from ..models.subscriptions import SeekPoint, SeekResult, SubscriptionInfo, SubscriptionSpec
from ..storage.base import Storage
from .ledger import Ledger
from .wakeups import subscription_key

log = logging.getLogger("broker.mailbox")

FORWARD_LIMIT = 1000  # dead letters published per round


class Topics:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        ledger: Ledger,
        notify: Callable[[str], None],
        woken: Callable[[set[Audience], list[tuple[int, Audience]]], None],
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.ledger = ledger
        self._notify = notify  # a wake-up key, here and on the other brokers
        self._woken = woken  # whom a commit made deliveries for
        self.forwarded = 0  # dead letters published to a dead-letter subject

    async def create(
        self, spec: SubscriptionSpec, created_by: str, start: SeekPoint | None = None
    ) -> tuple[SubscriptionInfo, bool]:
        """Create a subscription (a repeat of the same one answers with it)."""
        subjects.check_filter(spec.filter)
        if spec.dead_letter_subject is not None:
            subjects.check_subject(spec.dead_letter_subject, "dead_letter_subject")
        info, created = await self.storage.create_subscription(spec, created_by, self.clock.now_us(), start)
        if created:
            log.info(
                "subscription created",
                extra={"subscription": spec.name, "filter": spec.filter, "replayed": info.backlog},
            )
            if info.backlog:
                self._notify(subscription_key(info.subscription_id))
        return info, created

    async def get(self, name: str) -> SubscriptionInfo:
        return await self.storage.get_subscription(name)

    async def list(self, after: str | None, limit: int) -> tuple[list[SubscriptionInfo], str | None]:
        return await self.storage.list_subscriptions(after, limit)

    async def delete(self, name: str) -> SubscriptionInfo:
        """Delete it; the streams consuming it end (NOT_FOUND), here at once and on the other
        brokers at their next claim, which the wake-up sent them makes."""
        info = await self.storage.delete_subscription(name)
        for sub in self.ledger.consuming(info.subscription_id):
            sub.stop(NotFound(f"subscription {name!r} was deleted"))
        self._notify(subscription_key(info.subscription_id))
        log.info("subscription deleted", extra={"subscription": name})
        return info

    async def seek(self, name: str, point: SeekPoint) -> SeekResult:
        result, changes = await self.storage.seek_subscription(name, point, self.clock.now_us())
        self.ledger.forget(changes.ids)  # deliveries out on streams were reset: their room is free
        self._woken(changes.wake, changes.scheduled)
        log.info(
            "subscription sought",
            extra={"subscription": name, "replayed": result.replayed, "skipped": result.skipped},
        )
        return result

    async def forward_dead_letters(self) -> None:
        """Publish dead letters to their subscriptions' dead-letter subjects (the sweeper's)."""
        out = await self.storage.forward_dead_letters(self.clock.now_us(), FORWARD_LIMIT)
        if out.forwarded:
            self.forwarded += out.forwarded
            log.info("dead letters published to their dead-letter subjects", extra={"count": out.forwarded})
            self._woken(out.wake, [])
