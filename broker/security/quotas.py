"""Per-subject quotas, so that one agent cannot starve the others.

Each subject (a token's or certificate's agent id or prefix) has a token bucket of calls per
second and one of request bytes per second (each holding up to two seconds' worth, for bursts),
and a cap on the streams it holds open. Each entry of a request stream (a Publish entry, a
Consume ack, a Work completion) is charged as its unary twin (Send, Ack, Complete) is.

The pending cap: a direct Send to an agent that holds ``quota_pending_messages`` pending
messages is refused, fairly between its senders. Under the cap a recipient takes from anyone; at
or over it, a sender may still add up to an equal share of the cap among the senders holding
messages there (itself included), so the largest contributor is refused first and one sender
flooding a recipient does not lock the others out (``fair_share_admits``). A recipient's backlog
therefore stays under about twice the cap.

Nothing here waits for storage: a call is refused (or admitted) from memory, before it costs a
storage read or a place in a write group. The pending counts are read from storage in the
background, at most once a second per recipient being sent to, and counted up by the sends
admitted since.

A call beyond a quota is refused with RESOURCE_EXHAUSTED and the delay after which a retry would
pass (``google.rpc.RetryInfo`` in the status details, and ``retry-after-ms`` in the trailing
metadata). Admins are not limited. Refusals are counted per subject (``refused``), and logged
(rate-limited) by the security interceptor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ..config import Settings

log = logging.getLogger("broker.audit")

COUNT_EVERY_S = 1.0  # a recipient's pending messages are read from storage at most this often
_MAX_RECIPIENTS = 10_000  # backlogs remembered (forgotten all at once beyond: they are re-read)

# (recipient, limit) -> (pending messages, held by each sender when at least ``limit``)
CountPending = Callable[[str, int], Awaitable[tuple[int, dict[str, int]]]]


@dataclass(slots=True)
class Bucket:
    rate: float  # refill per second
    burst: float  # capacity
    level: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self, n: float, now: float) -> float:
        """Take ``n`` if there is that much; else 0 taken and the seconds until there would be."""
        self._refill(now)
        if self.level >= n or n > self.burst and self.level >= self.burst:
            self.level -= n  # a request larger than the burst passes once the bucket is full
            return 0.0
        return (min(n, self.burst) - self.level) / self.rate

    def empty(self, now: float) -> bool:
        """Whether not even one unit is left (nothing taken)."""
        self._refill(now)
        return self.level < 1

    def _refill(self, now: float) -> None:
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now


def fair_share_admits(total: int, mine: int, senders: int, cap: int) -> bool:
    """Whether a recipient holding ``total`` pending messages takes one more from a sender that
    holds ``mine`` of them, ``senders`` senders holding messages there (this one included): always
    under ``cap``; at or over it, only while the sender holds less than an equal share of the cap."""
    return total < cap or mine * senders < cap


@dataclass(slots=True)
class Backlog:
    """A recipient's pending messages: as last counted in storage, plus the sends admitted since.

    A count races with the sends in flight while it reads: those answered before it began are in
    it, those admitted after it began are not, and those in flight when it began are taken as not
    in it (they are committed, at the earliest, as it reads)."""

    total: int = 0
    held: Counter[str] = field(default_factory=Counter)  # by sender (from storage once at the cap)
    since: Counter[str] = field(default_factory=Counter)  # admitted since the last count began
    flying: Counter[str] = field(default_factory=Counter)  # admitted, not yet answered
    counted_at: float = float("-inf")
    counting: bool = False

    def add(self, sender: str, n: int) -> None:
        self.total += n
        self.held[sender] += n
        self.since[sender] += n
        self.flying[sender] += n


class Quotas:
    def __init__(self, settings: Settings, count_pending: CountPending | None = None) -> None:
        self.max_pending = settings.quota_pending_messages if count_pending else 0
        self._count_pending = count_pending
        self._backlogs: dict[str, Backlog] = {}
        self._counting: set[asyncio.Task[None]] = set()
        self.calls_per_s = settings.quota_calls_per_s
        self.bytes_per_s = settings.quota_bytes_per_s
        self.max_streams = settings.quota_streams
        self._calls: dict[str, Bucket] = {}
        self._bytes: dict[str, Bucket] = {}
        self._streams: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # refusals per subject
        self.counts = 0  # storage reads of pending counts (tests, the bench)

    def charge(self, subject: str, nbytes: int) -> float:
        """Count one call of ``nbytes`` bytes; 0.0 when within quota, else the retry delay (s)."""
        now = time.monotonic()
        if self.calls_per_s:
            b = self._calls.get(subject)
            if b is None:
                b = self._calls[subject] = Bucket(
                    self.calls_per_s, 2 * self.calls_per_s, 2 * self.calls_per_s
                )
            wait = b.take(1, now)
            if wait:
                self.refused[subject] += 1
                return wait
        if self.bytes_per_s and nbytes:
            b = self._bytes.get(subject)
            if b is None:
                b = self._bytes[subject] = Bucket(
                    self.bytes_per_s, 2 * self.bytes_per_s, 2 * self.bytes_per_s
                )
            wait = b.take(nbytes, now)
            if wait:
                self.refused[subject] += 1
                return wait
        return 0.0

    def open_stream(self, subject: str) -> bool:
        if self.max_streams and self._streams[subject] >= self.max_streams:
            self.refused[subject] += 1
            return False
        self._streams[subject] += 1
        return True

    def close_stream(self, subject: str) -> None:
        self._streams[subject] -= 1
        if self._streams[subject] <= 0:
            del self._streams[subject]

    def admit_pending(self, subject: str, sends: Sequence[tuple[str, str]]) -> str | None:
        """Count direct sends (recipient, sender), all or none: the first recipient that refuses
        one (see ``fair_share_admits``), else None, each counted and in flight until
        ``settle_pending`` (called once the call is answered, committed or not)."""
        if not self.max_pending or self._count_pending is None:
            return None
        extra: Counter[tuple[str, str]] = Counter()  # this call's own, counted as it goes
        extra_total: Counter[str] = Counter()
        for recipient, sender in sends:
            b = self._backlog(recipient)
            pair = (recipient, sender)
            mine = b.held[sender] + extra[pair]
            senders = len(b.held) + (sender not in b.held)
            if not fair_share_admits(b.total + extra_total[recipient], mine, senders, self.max_pending):
                self.refused[subject] += 1
                self._count_if_stale(recipient, b)  # the recipient may have read its backlog since
                return recipient
            extra[pair] += 1
            extra_total[recipient] += 1
        for (recipient, sender), n in extra.items():
            b = self._backlogs[recipient]
            b.add(sender, n)
            self._count_if_stale(recipient, b)
        return None

    def settle_pending(self, sends: Sequence[tuple[str, str]]) -> None:
        """Sends admitted by ``admit_pending`` were answered (stored, or refused)."""
        for recipient, sender in sends:
            b = self._backlogs.get(recipient)
            if b is not None and b.flying[sender] > 0:
                b.flying[sender] -= 1
                if not b.flying[sender]:
                    del b.flying[sender]

    def _backlog(self, recipient: str) -> Backlog:
        b = self._backlogs.get(recipient)
        if b is None:
            if len(self._backlogs) >= _MAX_RECIPIENTS:
                self._backlogs.clear()
            b = self._backlogs[recipient] = Backlog()
        return b

    def _count_if_stale(self, recipient: str, b: Backlog) -> None:
        """Start a count from storage (in the background) when the last is over a second old."""
        if not b.counting and time.monotonic() - b.counted_at >= COUNT_EVERY_S:
            b.counting = True
            task = asyncio.ensure_future(self._count(recipient, b))
            self._counting.add(task)
            task.add_done_callback(self._counting.discard)

    async def _count(self, recipient: str, b: Backlog) -> None:
        assert self._count_pending is not None
        self.counts += 1
        flying, b.since = Counter(b.flying), Counter()
        try:
            total, held = await self._count_pending(recipient, self.max_pending)
        except Exception as exc:  # storage down: keep counting up from what is known; retry later
            log.debug("pending count of %s failed: %r", recipient, exc)
            return
        finally:
            b.counting = False
            b.counted_at = time.monotonic()
        b.held = Counter(held) + flying + b.since
        b.total = total + flying.total() + b.since.total()

    async def close(self) -> None:
        """Wait for the counts in flight (before storage closes)."""
        if self._counting:
            await asyncio.gather(*self._counting, return_exceptions=True)
