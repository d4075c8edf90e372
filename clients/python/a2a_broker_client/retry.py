"""When and how the client tries a call again.

Only calls that are safe to repeat are retried (see ``BrokerClient``: reads,
heartbeats, acks, lease extensions, registrations with an explicit id, and
sends or submits carrying an idempotency key), and only when the broker
answered UNAVAILABLE (unreachable, restarting, or its storage failing).
Anything else could apply twice: a ``Send`` without a key would store two
messages, a ``Claim`` would lease more tasks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True)
class RetryConfig:
    """Exponential backoff for safe calls that fail with UNAVAILABLE.

    The delay before retry n (1-based) is
    ``min(initial_backoff * multiplier**(n-1), max_backoff)``, plus up to
    ``jitter`` (a fraction) of random extra so that many clients restarting
    together do not retry in lock step.

    Attributes:
        max_attempts: total attempts including the first; 1 disables retries.
        initial_backoff: seconds before the first retry.
        multiplier: growth of the delay per retry.
        max_backoff: cap on one delay, in seconds.
        jitter: random extra, as a fraction of the delay (0-1).
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delays(self) -> Iterator[float]:
        """The sleeps between attempts: ``max_attempts - 1`` of them."""
        delay = self.initial_backoff
        for _ in range(self.max_attempts - 1):
            base = min(delay, self.max_backoff)
            yield base + base * self.jitter * random.random()
            delay *= self.multiplier


NO_RETRY = RetryConfig(max_attempts=1)
