"""A clock the tests move by hand (``ManualClock``), for a broker started with it
(``start_server(settings, clock=...)``, or the ``broker`` fixture of a test marked
``@manual_clock``): the timed rules (ack deadlines, scheduled delivery, expiry, leases, backoff,
liveness, run time, a Claim's wait, the sweeper's period) see time pass only when the test
advances it, so a test says "30 s later" instead of sleeping, and waits for the effect (an event,
a sweeper round) rather than for a time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from broker.clock import Clock, now_us, s_to_us


class _Timer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock(Clock):
    """Wall time that starts at the real time and moves only by ``advance``. Timers and sleeps
    due by then fire, in order, as the clock reaches the new time (a jump: each sees the new time)."""

    def __init__(self, start_us: int | None = None) -> None:
        self._start = self._now = now_us() if start_us is None else start_us
        self._timers: list[tuple[int, int, _Timer]] = []
        self._seq = itertools.count()

    def now_us(self) -> int:
        return self._now

    def monotonic(self) -> float:
        return (self._now - self._start) / 1e6

    def call_later(self, seconds: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(callback)
        if seconds <= 0:  # due now: as soon as the loop runs, as with the system's clock
            asyncio.get_running_loop().call_soon(lambda: timer.cancelled or callback())
        else:
            heapq.heappush(self._timers, (self._now + s_to_us(seconds), next(self._seq), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_later(seconds, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            timer.cancel()

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, and fire every timer and sleep due by then."""
        self._now += s_to_us(seconds)
        while self._timers and self._timers[0][0] <= self._now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()
        await asyncio.sleep(0)  # the woken run their next step

    @property
    def waiting(self) -> int:
        """Timers and sleeps not yet due (not cancelled)."""
        return sum(1 for *_, t in self._timers if not t.cancelled)


async def later(broker: Any, seconds: float, timeout: float = 5.0) -> None:
    """``seconds`` later on the broker's manual clock, and a sweeper round run at that time."""
    clock: ManualClock = broker.sweeper.clock
    swept = broker.sweeper.next_round()
    await clock.advance(seconds)
    await asyncio.wait_for(swept, timeout)


# A test marked so runs against a `broker` fixture on a ManualClock (its `broker_clock`).
manual_clock = pytest.mark.parametrize("broker_clock", [ManualClock], indirect=True, ids=["manual-clock"])
