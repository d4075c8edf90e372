"""Time as the broker stores it: integer microseconds since the Unix epoch (UTC), and the one
``Clock`` the core, the sweeper and the federation links read it from and wait on.

Integers sort and index exactly in SQLite and PostgreSQL alike, and
microseconds keep events of one millisecond apart in order.

Every timed rule (ack deadlines, scheduled delivery, expiry, leases, retry backoff, liveness,
a Claim's wait, the sweeper's period) reads ``now_us()`` and waits with ``sleep``/``call_later``
of the clock it was given: ``Clock()`` is the system's; a test passes its own (see
tests/clock_support.py) and advances it, instead of sleeping until a deadline passes.
Waits that are about the process rather than a rule (the shutdown grace, a release's bound)
stay on the event loop's time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

US_PER_S = 1_000_000


def now_us() -> int:
    return time.time_ns() // 1_000


def s_to_us(seconds: float) -> int:
    return int(round(seconds * US_PER_S))


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock:
    """The system's time: the wall clock for what is stored and compared, the event loop's for
    waits."""

    def now_us(self) -> int:
        """Microseconds since the Unix epoch."""
        return time.time_ns() // 1_000

    def monotonic(self) -> float:
        """Seconds, for intervals (never stored)."""
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` (on the event loop) once ``seconds`` have passed."""
        return asyncio.get_running_loop().call_later(seconds, callback)
