"""What an attempt that ended without completing becomes: retried (after which backoff) or failed.

A *failure* (the holder called Fail, or its lease lapsed) spends a retry: the
task runs again while the failed attempts number at most ``max_retries``, and
fails for good once they exceed it, or at once when the failure is not
retryable. A *departure* (the holder went offline or deregistered) is not a
failure: the task is ready again at once and no retry is spent, although its
attempt number (the fencing token) has risen. Failed attempts are therefore
``attempt - departures``.

Retry backoff
-------------
The delay before retry ``n`` (1 for the first retry) is::

    min(initial * multiplier ** (n - 1), max_backoff) * (1 + 0.2 * u),  u uniform in [0, 1)

exponential, capped, with up to 20 % jitter so that tasks failed together do
not all come back at once. A delay of 0 makes the task leasable at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

JITTER = 0.2


def backoff_us(
    retry: int, initial_us: int, multiplier: float, max_us: int, rng: random.Random | None = None
) -> int:
    """Delay before retry number ``retry`` (1-based): exponential, capped, jittered."""
    base = min(initial_us * multiplier ** max(0, retry - 1), float(max_us))
    u = (rng or random).random()
    return int(base * (1.0 + JITTER * u))


@dataclass(frozen=True)
class Failure:
    """How an attempt failed: its error, and whether a retry was allowed (a Fail marked non-retryable
    allows none). Stored with the transition that ends the attempt."""

    error: str
    retryable: bool


@dataclass(frozen=True)
class AttemptFailed:
    """What a failed attempt becomes. ``retry``: ready again (at ``next_attempt_at``, or
    now when it is None); otherwise failed for good. ``reason`` is its transition's."""

    retry: bool
    next_attempt_at: int | None
    reason: str


def failed_attempt(
    *,
    attempt: int,
    departures: int,
    max_retries: int,
    backoff_initial_us: int,
    backoff_multiplier: float,
    backoff_max_us: int,
    error: str,
    retryable: bool,
    now: int,
    rng: random.Random | None = None,
) -> AttemptFailed:
    """Attempt number ``attempt`` failed with ``error``: retry after a backoff, or fail."""
    failures = attempt - departures  # departures spend no retry
    if retryable and failures <= max_retries:
        delay = backoff_us(failures, backoff_initial_us, backoff_multiplier, backoff_max_us, rng)
        if delay > 0:
            return AttemptFailed(
                True, now + delay, f"attempt {attempt} failed: {error}; retry in {delay / 1e6:.3f} s"
            )
        return AttemptFailed(True, None, f"attempt {attempt} failed: {error}; retry now")
    why = NOT_RETRYABLE if not retryable else f"no retries left ({max_retries})"
    return AttemptFailed(False, None, f"attempt {attempt} failed: {error}; {why}")


NOT_RETRYABLE = "not retryable"


def departure_reason(attempt: int, why: str) -> str:
    """The reason of a departed holder's task going back to ready (no retry spent)."""
    return f"attempt {attempt} ended: {why}; requeued, no retry spent"
