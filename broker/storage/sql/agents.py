"""Agent registry operations (both dialects' statements: ``Queries.agents``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from ...errors import FailedPrecondition, InvalidArgument, NotFound
from ...models.agents import (
    LIVE_STATUSES,
    Agent,
    AgentFilter,
    AgentGone,
    AgentStatus,
    Exposure,
    RegisterInput,
)
from .connection import Connection, Engine, Row
from .departures import Departures
from .queries import Queries

RECORD_TASKS = 1000  # the tasks read for an agent's performance record, at most


def list_agents_sql(p: str, flt: AgentFilter) -> tuple[str, list[object]]:
    """The ListAgents query for a filter (``p``: the dialect's parameter marker), and its arguments
    (one row more than a page)."""
    where = ["a.status != 'deregistered'"]
    args: list[object] = []
    if flt.status is not None:
        where.append(f"a.status = {p}")
        args.append(flt.status.value)
    if flt.agent_type:
        where.append(f"a.agent_type = {p}")
        args.append(flt.agent_type)
    if flt.capability:
        where.append(f"a.agent_id IN (SELECT agent_id FROM agent_capabilities WHERE capability = {p})")
        args.append(flt.capability)
    if flt.after is not None:
        where.append(f"a.agent_id > {p}")
        args.append(flt.after)
    args.append(flt.page_size + 1)
    return f"SELECT a.* FROM agents a WHERE {' AND '.join(where)} ORDER BY a.agent_id LIMIT {p}", args


def row_to_agent(row: Row) -> Agent:
    return Agent(
        agent_id=row["agent_id"],
        name=row["name"],
        agent_type=row["agent_type"],
        capabilities=tuple(json.loads(row["capabilities"])),
        max_concurrent_tasks=row["max_concurrent_tasks"],
        current_task_count=row["current_task_count"],
        endpoint=row["endpoint"],
        labels=json.loads(row["labels"]),
        metadata=json.loads(row["metadata"]),
        status=AgentStatus(row["status"]),
        registered_at=row["registered_at"],
        updated_at=row["updated_at"],
        last_heartbeat_at=row["last_heartbeat_at"],
        reported_free_capacity=row["reported_free_capacity"],
        exposure=Exposure(row["exposure"]),
        capability_descriptions=json.loads(row["capability_descriptions"]),
    )


def fetch_agent(conn: Connection, q: Queries, agent_id: str, *, live_only: bool = False) -> Agent:
    """The agent, or NotFound (deregistered agents count as not found)."""
    row = conn.execute(q.agents.fetch, (agent_id,)).fetchone()
    if row is None or row["status"] == AgentStatus.DEREGISTERED:
        raise NotFound(f"agent {agent_id!r} is not registered")
    agent = row_to_agent(row)
    if live_only and agent.status not in LIVE_STATUSES:
        raise FailedPrecondition(f"agent {agent_id!r} is {agent.status.value}")
    return agent


class AgentOps(Departures):
    engine: Engine
    q: Queries

    # An agent's departure releases its messages and tasks (``Departures``: MessageOps and TaskOps
    # do it) in the same transaction that marks it gone.
    def _release_all(self, conn: Connection, agent: Agent, now: int, reason: str) -> AgentGone:
        released = self._release_messages_of(conn, agent.agent_id, now, reason)
        subscriptions = self._release_deliveries_of(conn, agent.agent_id, now, reason)
        requeued, changes = self._requeue_tasks_of(conn, agent.agent_id, now, reason)
        after = fetch_agent_any(conn, self.q, agent.agent_id)
        return AgentGone(after, reason, released, requeued, changes, subscriptions)

    async def register_agent(self, inp: RegisterInput, agent_id: str, now: int) -> tuple[Agent, Agent | None]:
        q = self.q

        def job(conn: Connection) -> tuple[Agent, Agent | None]:
            row = conn.execute(q.agents.fetch, (agent_id,)).fetchone()
            before = row_to_agent(row) if row is not None else None
            if before is not None and before.status != AgentStatus.DEREGISTERED:
                if inp.max_concurrent_tasks < before.current_task_count:
                    raise FailedPrecondition(
                        f"max_concurrent_tasks {inp.max_concurrent_tasks} is below the "
                        f"{before.current_task_count} tasks agent {agent_id!r} holds now"
                    )
            # Re-registering keeps a live status (busy, maintenance); otherwise available.
            status = (
                before.status
                if before is not None and before.status in LIVE_STATUSES
                else AgentStatus.AVAILABLE
            )
            caps = json.dumps(list(inp.capabilities))
            conn.execute(
                q.agents.register,
                (
                    agent_id,
                    inp.name or agent_id,
                    inp.agent_type,
                    caps,
                    inp.max_concurrent_tasks,
                    inp.endpoint,
                    json.dumps(inp.labels),
                    json.dumps(inp.metadata),
                    status.value,
                    now,
                    now,
                    now,
                    inp.exposure.value,
                    json.dumps(inp.capability_descriptions),
                ),
            )
            conn.execute(q.agents.delete_capabilities, (agent_id,))
            conn.executemany(q.agents.insert_capability, [(c, agent_id) for c in inp.capabilities])
            if before is not None and before.status == AgentStatus.DEREGISTERED:
                before = None  # a comeback after deregistering is a new registration
            return fetch_agent(conn, q, agent_id), before

        return await self.engine.write(job)

    async def heartbeat(
        self, agent_id: str, status: AgentStatus | None, free_capacity: int | None, now: int
    ) -> tuple[Agent, Agent]:
        q = self.q

        def job(conn: Connection) -> tuple[Agent, Agent]:
            before = fetch_agent(conn, q, agent_id)
            new_status = status or (
                AgentStatus.AVAILABLE if before.status == AgentStatus.OFFLINE else before.status
            )
            if free_capacity is not None and free_capacity > before.max_concurrent_tasks:
                raise InvalidArgument(
                    "free_capacity", f"must be at most max_concurrent_tasks ({before.max_concurrent_tasks})"
                )
            conn.execute(q.agents.heartbeat, (new_status.value, now, now, free_capacity, agent_id))
            return fetch_agent(conn, q, agent_id), before

        return await self.engine.write(job)

    def _deregister(self, conn: Connection, agent: Agent, now: int, reason: str) -> AgentGone:
        gone = self._release_all(conn, agent, now, reason)
        conn.execute(self.q.agents.deregister, (now, agent.agent_id))
        return dataclasses.replace(gone, agent=fetch_agent_any(conn, self.q, agent.agent_id))

    async def deregister_agent(self, agent_id: str, now: int) -> AgentGone:
        q = self.q
        return await self.engine.write(
            lambda conn: self._deregister(conn, fetch_agent(conn, q, agent_id), now, "agent deregistered")
        )

    async def deregister_offline(self, heartbeat_before: int, now: int, limit: int) -> list[AgentGone]:
        q = self.q

        def job(conn: Connection) -> list[AgentGone]:
            rows = conn.execute(q.agents.offline_since, (heartbeat_before, limit)).fetchall()
            reason = "agent deregistered: offline past the retention"
            return [self._deregister(conn, row_to_agent(r), now, reason) for r in rows]

        return await self.engine.write(job)

    async def get_agent(self, agent_id: str) -> Agent:
        return await self.engine.read(lambda conn: fetch_agent(conn, self.q, agent_id))

    async def agent_outcomes(self, agent_ids: list[str], since: int) -> dict[str, list[tuple[bool, int]]]:
        sql = self.q.agents.outcomes

        def job(conn: Connection) -> dict[str, list[tuple[bool, int]]]:
            return {
                a: [(r[0] == "completed", r[1]) for r in conn.execute(sql, (a, since, RECORD_TASKS))]
                for a in agent_ids
            }

        return await self.engine.read(job)

    async def list_agents(self, flt: AgentFilter) -> tuple[list[Agent], str | None]:
        sql, args = list_agents_sql(self.q.param, flt)

        def job(conn: Connection) -> tuple[list[Agent], str | None]:
            rows = conn.execute(sql, args).fetchall()
            agents = [row_to_agent(r) for r in rows[: flt.page_size]]
            more = len(rows) > flt.page_size
            return agents, (agents[-1].agent_id if more else None)

        return await self.engine.read(job)

    async def mark_offline(
        self, heartbeat_before: int, now: int, alive: Mapping[str, int] | None = None
    ) -> list[AgentGone]:
        return await self.engine.write(
            lambda conn: self._mark_offline_job(conn, heartbeat_before, now, alive or {})
        )

    def _mark_offline_job(
        self, conn: Connection, heartbeat_before: int, now: int, alive: Mapping[str, int]
    ) -> list[AgentGone]:
        q = self.q
        rows = conn.execute(q.agents.liveness_scan, (heartbeat_before,)).fetchall()
        out = []
        for row in rows:
            agent = row_to_agent(row)
            seen = alive.get(agent.agent_id)
            if seen is not None and seen >= heartbeat_before:
                # Alive by other signs (an open stream...): recorded as its last heartbeat.
                conn.execute(q.agents.set_heartbeat, (seen, agent.agent_id))
                continue
            conn.execute(q.agents.set_offline, (now, agent.agent_id))
            out.append(self._release_all(conn, agent, now, "agent missed its heartbeats"))
        return out


def fetch_agent_any(conn: Connection, q: Queries, agent_id: str) -> Agent:
    row = conn.execute(q.agents.fetch, (agent_id,)).fetchone()
    if row is None:
        raise NotFound(f"agent {agent_id!r} is not registered")
    return row_to_agent(row)
