"""Time as the broker stores it: integer microseconds since the Unix epoch (UTC).

Integers sort and index exactly in SQLite and PostgreSQL alike, and
microseconds keep events of one millisecond apart in order.
"""

from __future__ import annotations

import time

US_PER_S = 1_000_000


def now_us() -> int:
    return time.time_ns() // 1_000


def s_to_us(seconds: float) -> int:
    return int(round(seconds * US_PER_S))
