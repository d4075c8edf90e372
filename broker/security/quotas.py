"""Per-subject quotas, so that one agent cannot starve the others.

Each subject (a token's or certificate's agent id or prefix) has a token bucket of calls per
second and one of request bytes per second (each holding up to two seconds' worth, for bursts),
and a cap on the streams it holds open. A Send (or SendBatch) to an agent that already holds
``quota_pending_messages`` pending messages is refused too (counted in storage at most once a
second per recipient, and by the Sends admitted since). A call beyond them is refused with RESOURCE_EXHAUSTED
and the delay after which a retry would pass (``google.rpc.RetryInfo`` in the status details,
and ``retry-after-ms`` in the trailing metadata). Admins are not limited. Refusals are counted
per subject (``refused``), and logged (rate-limited) by the security interceptor.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..config import Settings


@dataclass(slots=True)
class Bucket:
    rate: float  # refill per second
    burst: float  # capacity
    level: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self, n: float, now: float) -> float:
        """Take ``n`` if there is that much; else 0 taken and the seconds until there would be."""
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level >= n or n > self.burst and self.level >= self.burst:
            self.level -= n  # a request larger than the burst passes once the bucket is full
            return 0.0
        return (min(n, self.burst) - self.level) / self.rate


class Quotas:
    def __init__(
        self, settings: Settings, count_pending: Callable[[str, int], Awaitable[int]] | None = None
    ) -> None:
        self.max_pending = settings.quota_pending_messages if count_pending else 0
        self._count_pending = count_pending
        self._pending: dict[str, tuple[int, float]] = {}  # recipient -> (pending, counted at)
        self.calls_per_s = settings.quota_calls_per_s
        self.bytes_per_s = settings.quota_bytes_per_s
        self.max_streams = settings.quota_streams
        self._calls: dict[str, Bucket] = {}
        self._bytes: dict[str, Bucket] = {}
        self._streams: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # refusals per subject

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

    async def admit_pending(self, recipient: str) -> bool:
        """Count one more message for ``recipient``; False when it already holds its cap."""
        if not self.max_pending or self._count_pending is None:
            return True
        now = time.monotonic()
        hit = self._pending.get(recipient)
        if hit is None or now - hit[1] >= 1.0:
            if len(self._pending) > 10_000:
                self._pending.clear()
            hit = (await self._count_pending(recipient, self.max_pending), now)
        if hit[0] >= self.max_pending:
            self._pending[recipient] = hit
            return False
        self._pending[recipient] = (hit[0] + 1, hit[1])
        return True
