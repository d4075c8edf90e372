"""Routing by record (``--route-by-record``, off by default): among the able agents with free
capacity that wait for work, the one with the better record leases a newly ready task first.

Every waiting Claim and Listen stream is woken by a ready task; each leases in its own write job,
and the first job wins. With routing on, a woken agent first looks at the other agents waiting
with free capacity that share one of its capabilities, and holds back a few milliseconds for each
that ranks above it (``domain.agent_records.deferral``), so the best one's lease commits first.
Records come from ``Registry.records``, read as an agent starts to wait (cached a few seconds),
so that a wake-up costs no read. It is a preference, not
a reservation: nothing is held for an agent, and no task waits longer than the few milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ..domain.agent_records import NO_RECORD, deferral, preference
from ..models.agents import AgentRecord

Records = Callable[[list[str]], Awaitable[dict[str, AgentRecord]]]
CACHE_S = 5.0


class RecordRouter:
    def __init__(self, records: Records) -> None:
        self._records = records
        self._cache: dict[str, tuple[float, tuple[float, int]]] = {}
        self._waiting: dict[str, frozenset[str]] = {}  # agent -> its capabilities

    async def waiting(self, agent_id: str, caps: tuple[str, ...], free: int) -> None:
        """An agent starts to wait for work, with ``free`` room after its last lease."""
        if free <= 0:
            self._waiting.pop(agent_id, None)
            return
        if agent_id not in self._cache or self._cache[agent_id][0] < time.monotonic():
            rec = (await self._records([agent_id])).get(agent_id)
            if rec is not None:
                self._cache[agent_id] = (time.monotonic() + CACHE_S, preference(rec))
        self._waiting[agent_id] = frozenset(caps)

    def waiting_agents(self) -> set[str]:
        return set(self._waiting)

    def gone(self, agent_id: str) -> None:
        self._waiting.pop(agent_id, None)

    async def hold_back(self, agent_id: str, caps: tuple[str, ...]) -> None:
        """Before a woken agent leases: let better-ranked waiting agents go first."""
        mine = frozenset(caps)
        peers = [a for a, c in self._waiting.items() if a != agent_id and (c & mine or not mine)]
        if not peers:
            return
        delay = deferral(self._preference(agent_id), [self._preference(p) for p in peers])
        if delay:
            await asyncio.sleep(delay)

    def _preference(self, agent_id: str) -> tuple[float, int]:
        cached = self._cache.get(agent_id)
        return cached[1] if cached is not None else NO_RECORD
