"""The other brokers of the database (PostgreSQL), as the core sees them.

Several brokers on one database each serve their own clients; what one commits, the others must
tell theirs. Storage carries it (``storage.base.WakeRelay``: on PostgreSQL, NOTIFY after the
commit, and the task history read back); this module decides what goes and what to do with what
comes:

- wake-up keys (``wakeups.py``): a stream on this broker waiting for a message or a task another
  broker made deliverable claims it from the database;
- a cancellation or a lost lease (``Changes.cancellations``) goes to the holder's Listen or Work
  stream, on whichever broker it is (here: ``Leaser.tell``);
- agent events (WatchAgents) go with their content: the agent as the event left it;
- task transitions (Watch): read from the database by the brokers that have a Watch open
  (``follow``), so that none is missed while the watch lasts; a session's end goes by its id (the
  watchers' broker reads it);
- a revocation drops the token cache (``TokenAuthenticator.changed``): the token is refused and
  the streams opened with it end within a second on every broker.

Everything here runs after the commit that caused it; nothing here is durable: a broker that
missed a notification wakes its streams at the next poll, and a worker that missed a
cancellation learns it from its next ExtendLease or outcome.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any

from ..errors import BrokerError
from ..models.agents import Agent, AgentEvent, AgentEventType, AgentStatus, Exposure
from ..models.tasks import Cancellation, Changes, TaskEvent, Transition
from ..storage.base import WakeRelay
from .registry import Registry
from .taskqueue import TaskQueue
from .wakeups import Wakeups

log = logging.getLogger("broker.cluster")

# Message kinds (the bodies: JSON, one line).
AGENT = "agent"  # an agent event, with the agent
CANCEL = "cancel"  # a lease holder loses a task: agent, task, attempt, reason
SESSION = "session"  # a session ended: its id
TOKENS = "tokens"  # tokens changed (a revocation): storage sends it with the revocation itself

_MAX_BODY = 7000  # an agent event bigger than this goes without the agent's free-form parts
_MAX_REASON = 1000


class Cluster:
    """Joins this broker's core to the others through ``relay``."""

    def __init__(
        self,
        relay: WakeRelay,
        registry: Registry,
        wakeups: list[Wakeups],
        tasks: TaskQueue,
        tokens: object | None = None,
    ) -> None:
        self.relay = relay
        self.registry = registry
        self.wakeups = wakeups
        self.tasks = tasks
        # The token authenticator (``TokenAuthenticator.changed``), when the broker has one.
        self._tokens_changed = getattr(tokens, "changed", None)
        self._bg: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        await self.relay.start(self)
        for w in self.wakeups:
            w.relay = self.relay.publish
        self.registry.events.outbound = self._agent_event
        self.tasks.cluster = self

    async def close(self) -> None:
        for f in list(self._bg):
            f.cancel()
        await asyncio.gather(*self._bg, return_exceptions=True)

    # -- out ---------------------------------------------------------------------------------

    def announced(self, changes: Changes) -> None:
        """After a commit here: what the other brokers' clients must hear of it."""
        if changes.transitions:
            self.relay.committed()
        for agent_id, c in changes.cancellations:
            body = {
                "agent": agent_id,
                "task": c.task_id,
                "attempt": c.attempt,
                "reason": c.reason[:_MAX_REASON],
            }
            self.relay.send(CANCEL, json.dumps(body, separators=(",", ":")))
        for s in changes.sessions:
            self.relay.send(SESSION, json.dumps(s.session_id))

    def _agent_event(self, ev: AgentEvent) -> None:
        self.relay.send(AGENT, encode_agent_event(ev))

    async def watching(self) -> None:
        """A Watch opens here: follow the other brokers' transitions (from before its snapshot)."""
        await self.relay.follow()

    # -- in (ClusterPeer) --------------------------------------------------------------------

    def wake(self, keys: list[str]) -> None:
        for w in self.wakeups:
            w.notify_local(keys)

    def wake_all(self) -> None:
        for w in self.wakeups:
            w.wake_all()

    def received(self, kind: str, body: str) -> None:
        try:
            if kind == TOKENS:
                if self._tokens_changed is not None:
                    self._tokens_changed()
            elif kind == CANCEL:
                c = json.loads(body)
                self.tasks.dispatch.tell(c["agent"], Cancellation(c["task"], c["attempt"], c["reason"]))
            elif kind == AGENT:
                self.registry.events.publish_local(decode_agent_event(body))
            elif kind == SESSION:
                if self.tasks.events.watchers:
                    self._spawn(self._session_ended(json.loads(body)))
        except (ValueError, KeyError, TypeError) as exc:  # another version's message: not ours to read
            log.warning("unreadable message from another broker", extra={"kind": kind, "error": repr(exc)})

    def transitions(self, transitions: list[Transition]) -> None:
        events = self.tasks.events
        if not events.watchers:
            self.relay.unfollow()  # the last Watch here ended
        for tr in transitions:
            events.publish_local(TaskEvent(tr, None))
            self.tasks.transitions.publish_local(tr)

    async def _session_ended(self, session_id: str) -> None:
        await self.relay.caught_up()  # its tasks' last transitions first, as on one broker
        try:
            session = await self.tasks.sessions.get(session_id)
        except BrokerError:  # archived since, or storage down: its watchers saw its tasks end
            return
        self.tasks.events.publish_local(TaskEvent(None, None, session=session))

    def _spawn(self, coro: Any) -> None:
        f = asyncio.ensure_future(coro)
        self._bg.add(f)
        f.add_done_callback(self._bg.discard)


def encode_agent_event(ev: AgentEvent) -> str:
    agent = dataclasses.asdict(ev.agent)
    body = json.dumps({"type": ev.type.value, "time": ev.time, "agent": agent}, separators=(",", ":"))
    if len(body) > _MAX_BODY:  # too big for a notification: without the free-form parts
        agent.update(metadata={}, labels={}, capability_descriptions={})
        body = json.dumps({"type": ev.type.value, "time": ev.time, "agent": agent}, separators=(",", ":"))
    return body


def decode_agent_event(body: str) -> AgentEvent:
    d = json.loads(body)
    a = d["agent"]
    a["capabilities"] = tuple(a["capabilities"])
    a["status"] = AgentStatus(a["status"])
    a["exposure"] = Exposure(a["exposure"])
    return AgentEvent(AgentEventType(d["type"]), Agent(**a), d["time"])
