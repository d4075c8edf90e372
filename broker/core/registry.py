"""AgentRegistry rules: registration, heartbeats, liveness, and agent events."""

from __future__ import annotations

import builtins
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from ..clock import Clock, s_to_us
from ..config import Settings
from ..domain import agent_records
from ..errors import StorageUnavailable
from ..models.agents import (
    LIVE_STATUSES,
    Agent,
    AgentEvent,
    AgentEventType,
    AgentFilter,
    AgentGone,
    AgentRecord,
    AgentStatus,
    HeartbeatInput,
    RegisterInput,
)
from ..storage.base import Storage
from .feeds import Feed

log = logging.getLogger("broker.registry")
RETIRE_EVERY_S = 60.0  # how often offline agents past the retention are looked for (at most)
RETIRE_PAGE = 500

GoneListener = Callable[[AgentGone], Awaitable[None] | None]


class Registry:
    """Keeps agents and tells the rest of the broker when one comes or goes."""

    def __init__(self, storage: Storage, settings: Settings, clock: Clock | None = None) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock or Clock()
        self.events: Feed[AgentEvent] = Feed()
        # Called (after commit) for every agent that goes offline or deregisters;
        # the mailbox and task queue hook in here to wake streams and publish events.
        self._gone_listeners: list[GoneListener] = []
        # Called (after commit) when an agent comes (back) online or reports a new status or free
        # capacity: it may take work now.
        self._online_listeners: list[Callable[[Agent], None]] = []
        # Signs of life storage does not hold: open Subscribe/Listen streams per agent (a stream
        # the transport keeps alive, with HTTP/2 keepalive pings, is as good as heartbeats), and
        # the time of the last one not recorded (a stream ended; a heartbeat refused because
        # storage failed: the broker's fault, not the agent's). The sweep respects both.
        self._streams: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._last_retire = float("-inf")

    def on_agent_gone(self, listener: GoneListener) -> None:
        self._gone_listeners.append(listener)

    def on_agent_online(self, listener: Callable[[Agent], None]) -> None:
        self._online_listeners.append(listener)

    async def register(self, inp: RegisterInput) -> tuple[Agent, bool]:
        agent_id = inp.agent_id or f"agent-{uuid.uuid4().hex[:16]}"
        now = self.clock.now_us()
        agent, before = await self.storage.register_agent(inp, agent_id, now)
        if before is None:
            self._publish(AgentEventType.REGISTERED, agent, now)
        elif before.status == AgentStatus.OFFLINE:
            self._publish(AgentEventType.ONLINE, agent, now)
        else:
            self._publish(AgentEventType.UPDATED, agent, now)
        if before is None or before.status not in LIVE_STATUSES:
            self._came_online(agent)
        return agent, before is None

    async def revive(self, agent_id: str) -> Agent:
        """The agent, brought back online as a heartbeat would if it was offline: a stream about to
        open is a sign of life (an agent may subscribe long after it registered)."""
        agent = await self.get(agent_id)
        if agent.status == AgentStatus.OFFLINE:
            agent = await self.heartbeat(HeartbeatInput(agent_id=agent_id))
        return agent

    def stream_opened(self, agent_id: str, kind: str) -> None:
        """A Subscribe or Listen stream of the agent is open: it is alive until the stream ends."""
        self._streams[agent_id] = self._streams.get(agent_id, 0) + 1
        log.info("stream opened", extra={"agent_id": agent_id, "stream": kind})

    def open_streams(self, agent_id: str) -> int:
        """How many Subscribe and Listen streams of the agent are open now."""
        return self._streams.get(agent_id, 0)

    def stream_closed(self, agent_id: str, kind: str, handed: int) -> None:
        """The stream ended (having handed out ``handed`` messages or tasks): the liveness timeout
        runs from now."""
        log.info("stream closed", extra={"agent_id": agent_id, "stream": kind, "handed_out": handed})
        n = self._streams.pop(agent_id, 0) - 1
        if n > 0:
            self._streams[agent_id] = n
        self._seen[agent_id] = self.clock.now_us()

    async def heartbeat(self, inp: HeartbeatInput) -> Agent:
        now = self.clock.now_us()
        try:
            agent, before = await self.storage.heartbeat(inp.agent_id, inp.status, inp.free_capacity, now)
        except StorageUnavailable:
            self._seen[inp.agent_id] = now  # refused by the broker's fault: it still counts
            raise
        if before.status == AgentStatus.OFFLINE:
            self._publish(AgentEventType.ONLINE, agent, now)
            self._came_online(agent)
        elif before.status != agent.status:
            self._publish(AgentEventType.UPDATED, agent, now)
            self._came_online(agent)  # e.g. back from maintenance: may take tasks again
        elif before.reported_free_capacity != agent.reported_free_capacity:
            self._came_online(agent)  # reported more room: its Listen stream may take work now
        return agent

    async def deregister(self, agent_id: str) -> AgentGone:
        now = self.clock.now_us()
        gone = await self.storage.deregister_agent(agent_id, now)
        self._publish(AgentEventType.DEREGISTERED, gone.agent, now)
        await self._tell_gone(gone)
        return gone

    def shutdown(self) -> None:
        """End every WatchAgents stream (UNAVAILABLE: watch again later) and refuse new ones."""
        self.events.close(StorageUnavailable("the broker is shutting down; watch again"))

    async def get(self, agent_id: str) -> Agent:
        return await self.storage.get_agent(agent_id)

    async def records(self, agent_ids: builtins.list[str]) -> dict[str, AgentRecord]:
        """Each agent's performance record over the configured window."""
        window = self.settings.agent_record_window_s
        outcomes = await self.storage.agent_outcomes(agent_ids, self.clock.now_us() - s_to_us(window))
        return {a: agent_records.record(o, window) for a, o in outcomes.items()}

    async def list(self, flt: AgentFilter) -> tuple[list[Agent], str | None]:
        return await self.storage.list_agents(flt)

    async def every(self, capability: str = "") -> builtins.list[Agent]:
        """Every registered agent (with ``capability``, when given), following the pages."""
        out: builtins.list[Agent] = []
        after: str | None = None
        while True:
            page, after = await self.list(AgentFilter(capability=capability, page_size=1000, after=after))
            out += page
            if after is None:
                return out

    async def deregister_offline(self, older_than_s: float) -> builtins.list[str]:
        """Deregister the agents offline whose last heartbeat is older than ``older_than_s``
        (0: every offline agent), a page at a time; their ids."""
        out: builtins.list[str] = []
        while True:
            now = self.clock.now_us()
            gone = await self.storage.deregister_offline(now - s_to_us(older_than_s), now, RETIRE_PAGE)
            for g in gone:
                self._publish(AgentEventType.DEREGISTERED, g.agent, now)
                await self._tell_gone(g)
            out += [g.agent.agent_id for g in gone]
            if len(gone) < RETIRE_PAGE:
                return out

    async def sweep(self) -> builtins.list[AgentGone]:
        """Mark agents silent past the liveness timeout offline (one transaction). Silent means no
        heartbeat stored, no open stream and no sign of life seen since (``_seen``). Now and then,
        deregister the agents offline longer than the retention."""
        retention = self.settings.agent_retention_s
        clock = time.monotonic()
        if retention and clock - self._last_retire >= min(RETIRE_EVERY_S, retention / 10):
            self._last_retire = clock
            retired = await self.deregister_offline(retention)
            if retired:
                log.info("offline agents deregistered after the retention", extra={"count": len(retired)})
        now = self.clock.now_us()
        cutoff = now - s_to_us(self.settings.liveness_timeout)
        self._seen = {a: t for a, t in self._seen.items() if t >= cutoff}
        alive = {**self._seen, **dict.fromkeys(self._streams, now)}
        gone = await self.storage.mark_offline(cutoff, now, alive)
        for g in gone:
            log.info(
                "agent offline",
                extra={
                    "agent_id": g.agent.agent_id,
                    "released_messages": g.released_messages,
                    "requeued_tasks": len(g.requeued_tasks),
                },
            )
            self._publish(AgentEventType.OFFLINE, g.agent, now)
            await self._tell_gone(g)
        return gone

    def _publish(self, kind: AgentEventType, agent: Agent, now: int) -> None:
        if kind in (AgentEventType.REGISTERED, AgentEventType.ONLINE, AgentEventType.DEREGISTERED):
            # (offline: logged by the sweep, with what it released)
            log.info(
                f"agent {kind.value}",
                extra={"agent_id": agent.agent_id, "capabilities": ",".join(agent.capabilities)},
            )
        self.events.publish(AgentEvent(kind, agent, now))

    def _came_online(self, agent: Agent) -> None:
        for listener in self._online_listeners:
            listener(agent)

    async def _tell_gone(self, gone: AgentGone) -> None:
        for listener in self._gone_listeners:
            result = listener(gone)
            if result is not None:
                await result
