"""What the broker counts as it works: plain numbers, kept by the layer that sees each event and
read by the metrics endpoint (broker/observability/) at scrape time.

Counting is an integer increment on the event loop's thread (or a list append under the GIL for a
histogram): no lock, no metrics library below the observability layer, nothing per scrape.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

# Seconds: from a millisecond to ten minutes (task queue waits and run times, commits).
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)
COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Hist:
    """A fixed-bucket histogram (Prometheus' shape: cumulative at export)."""

    __slots__ = ("bounds", "counts", "total", "n")

    def __init__(self, bounds: tuple[float, ...] = SECONDS_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound as Prometheus writes it, count at or below it), ending with +Inf."""
        out, acc = [], 0
        for bound, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += c
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), acc))
        return out


@dataclass
class MessageStats:
    published: int = 0  # copies stored (a broadcast to 3 agents: 3)
    delivered: int = 0  # deliveries handed to subscribers (redeliveries included)
    redelivered: int = 0  # of which a second or later attempt
    acknowledged: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)  # by reason
    expired: int = 0
    purged: int = 0


@dataclass
class TaskStats:
    submitted: int = 0
    assigned: int = 0
    completed: int = 0
    failed: int = 0  # for good (a failed attempt that is retried counts in ``retried``)
    retried: int = 0
    cancelled: int = 0
    queue_wait: Hist = field(default_factory=Hist)  # submission -> first assignment, seconds
    run_time: Hist = field(default_factory=Hist)  # an attempt's assignment -> its end, seconds


@dataclass
class StorageStats:
    commit_seconds: Hist = field(default_factory=Hist)
    jobs_per_commit: Hist = field(default_factory=lambda: Hist(COUNT_BUCKETS))
    # PostgreSQL only (they stay 0 on SQLite): groups run again after a serialization failure or
    # deadlock, and wake-up notifications sent to and heard from other brokers.
    retried: int = 0
    notifications_sent: int = 0
    notifications_received: int = 0
