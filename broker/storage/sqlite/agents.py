"""Agent registry operations on SQLite."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from .engine import SqliteEngine

# The sweeper's liveness scan (served by idx_agents_liveness; see tests/unit/test_query_plans.py).
# INDEXED BY: without statistics the planner may prefer idx_agents_status, which
# reads every live agent; the partial index reads only the overdue ones.
LIVENESS_SCAN_SQL = (
    "SELECT * FROM agents INDEXED BY idx_agents_liveness"
    " WHERE status IN ('available', 'busy', 'maintenance') AND last_heartbeat_at < ?"
)


def list_agents_sql(flt: AgentFilter) -> tuple[str, list[object]]:
    """The ListAgents query for a filter, and its arguments (one row more than a page)."""
    where = ["a.status != 'deregistered'"]
    args: list[object] = []
    if flt.status is not None:
        where.append("a.status = ?")
        args.append(flt.status.value)
    if flt.agent_type:
        where.append("a.agent_type = ?")
        args.append(flt.agent_type)
    if flt.capability:
        where.append("a.agent_id IN (SELECT agent_id FROM agent_capabilities WHERE capability = ?)")
        args.append(flt.capability)
    if flt.after is not None:
        where.append("a.agent_id > ?")
        args.append(flt.after)
    args.append(flt.page_size + 1)
    return f"SELECT a.* FROM agents a WHERE {' AND '.join(where)} ORDER BY a.agent_id LIMIT ?", args


def row_to_agent(row: sqlite3.Row) -> Agent:
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


def fetch_agent(conn: sqlite3.Connection, agent_id: str, *, live_only: bool = False) -> Agent:
    """The agent, or NotFound (deregistered agents count as not found)."""
    row = conn.execute("SELECT * FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
    if row is None or row["status"] == AgentStatus.DEREGISTERED:
        raise NotFound(f"agent {agent_id!r} is not registered")
    agent = row_to_agent(row)
    if live_only and agent.status not in LIVE_STATUSES:
        raise FailedPrecondition(f"agent {agent_id!r} is {agent.status.value}")
    return agent


# The tasks an agent finished (it held them last) since a time, newest first: its record's input.
# idx_tasks_agent (assigned_agent_id, status, seq) narrows to the agent's finished tasks.
OUTCOMES_SQL = (
    "SELECT status, finished_at - started_at FROM tasks"
    " WHERE assigned_agent_id = ? AND status IN ('completed', 'failed') AND finished_at >= ?"
    " AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?"
)
RECORD_TASKS = 1000
# Offline agents silent since before a time (idx_agents_status: the offline ones, by id).
OFFLINE_SINCE_SQL = (
    "SELECT * FROM agents WHERE status = 'offline' AND last_heartbeat_at < ? ORDER BY agent_id LIMIT ?"
)


class AgentOps:
    engine: SqliteEngine

    # _release_messages_of and _requeue_tasks_of come from MessageOps and
    # TaskOps (messages.py, tasks.py): an agent's departure releases its
    # messages and tasks in the same transaction that marks it gone.
    def _release_all(self, conn: sqlite3.Connection, agent: Agent, now: int, reason: str) -> AgentGone:
        released = self._release_messages_of(conn, agent.agent_id, now, reason)  # type: ignore[attr-defined]
        requeued, changes = self._requeue_tasks_of(conn, agent.agent_id, now, reason)  # type: ignore[attr-defined]
        after = fetch_agent_any(conn, agent.agent_id)
        return AgentGone(after, reason, released, requeued, changes)

    async def register_agent(self, inp: RegisterInput, agent_id: str, now: int) -> tuple[Agent, Agent | None]:
        def job(conn: sqlite3.Connection) -> tuple[Agent, Agent | None]:
            row = conn.execute("SELECT * FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
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
                """
                INSERT INTO agents (agent_id, name, agent_type, capabilities, max_concurrent_tasks,
                    endpoint, labels, metadata, status, registered_at, updated_at, last_heartbeat_at,
                    exposure, capability_descriptions)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (agent_id) DO UPDATE SET
                    name = excluded.name, agent_type = excluded.agent_type,
                    capabilities = excluded.capabilities,
                    max_concurrent_tasks = excluded.max_concurrent_tasks,
                    endpoint = excluded.endpoint, labels = excluded.labels, metadata = excluded.metadata,
                    status = excluded.status, updated_at = excluded.updated_at,
                    last_heartbeat_at = excluded.last_heartbeat_at,
                    exposure = excluded.exposure,
                    capability_descriptions = excluded.capability_descriptions,
                    reported_free_capacity = NULL
                """,
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
            conn.execute("DELETE FROM agent_capabilities WHERE agent_id = ?", (agent_id,))
            conn.executemany(
                "INSERT INTO agent_capabilities (capability, agent_id) VALUES (?, ?)",
                [(c, agent_id) for c in inp.capabilities],
            )
            if before is not None and before.status == AgentStatus.DEREGISTERED:
                before = None  # a comeback after deregistering is a new registration
            return fetch_agent(conn, agent_id), before

        return await self.engine.write(job)

    async def heartbeat(
        self, agent_id: str, status: AgentStatus | None, free_capacity: int | None, now: int
    ) -> tuple[Agent, Agent]:
        def job(conn: sqlite3.Connection) -> tuple[Agent, Agent]:
            before = fetch_agent(conn, agent_id)
            new_status = status or (
                AgentStatus.AVAILABLE if before.status == AgentStatus.OFFLINE else before.status
            )
            if free_capacity is not None and free_capacity > before.max_concurrent_tasks:
                raise InvalidArgument(
                    "free_capacity", f"must be at most max_concurrent_tasks ({before.max_concurrent_tasks})"
                )
            conn.execute(
                "UPDATE agents SET status = ?, last_heartbeat_at = ?, updated_at = ?,"
                " reported_free_capacity = ? WHERE agent_id = ?",
                (new_status.value, now, now, free_capacity, agent_id),
            )
            return fetch_agent(conn, agent_id), before

        return await self.engine.write(job)

    def _deregister(self, conn: sqlite3.Connection, agent: Agent, now: int, reason: str) -> AgentGone:
        gone = self._release_all(conn, agent, now, reason)
        conn.execute(
            "UPDATE agents SET status = 'deregistered', updated_at = ?, reported_free_capacity = NULL"
            " WHERE agent_id = ?",
            (now, agent.agent_id),
        )
        return dataclasses.replace(gone, agent=fetch_agent_any(conn, agent.agent_id))

    async def deregister_agent(self, agent_id: str, now: int) -> AgentGone:
        return await self.engine.write(
            lambda conn: self._deregister(conn, fetch_agent(conn, agent_id), now, "agent deregistered")
        )

    async def deregister_offline(self, heartbeat_before: int, now: int, limit: int) -> list[AgentGone]:
        def job(conn: sqlite3.Connection) -> list[AgentGone]:
            rows = conn.execute(OFFLINE_SINCE_SQL, (heartbeat_before, limit)).fetchall()
            reason = "agent deregistered: offline past the retention"
            return [self._deregister(conn, row_to_agent(r), now, reason) for r in rows]

        return await self.engine.write(job)

    async def get_agent(self, agent_id: str) -> Agent:
        return await self.engine.read(lambda conn: fetch_agent(conn, agent_id))

    async def agent_outcomes(self, agent_ids: list[str], since: int) -> dict[str, list[tuple[bool, int]]]:
        def job(conn: sqlite3.Connection) -> dict[str, list[tuple[bool, int]]]:
            return {
                a: [(r[0] == "completed", r[1]) for r in conn.execute(OUTCOMES_SQL, (a, since, RECORD_TASKS))]
                for a in agent_ids
            }

        return await self.engine.read(job)

    async def list_agents(self, flt: AgentFilter) -> tuple[list[Agent], str | None]:
        sql, args = list_agents_sql(flt)

        def job(conn: sqlite3.Connection) -> tuple[list[Agent], str | None]:
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
        self, conn: sqlite3.Connection, heartbeat_before: int, now: int, alive: Mapping[str, int]
    ) -> list[AgentGone]:
        rows = conn.execute(LIVENESS_SCAN_SQL, (heartbeat_before,)).fetchall()
        out = []
        for row in rows:
            agent = row_to_agent(row)
            seen = alive.get(agent.agent_id)
            if seen is not None and seen >= heartbeat_before:
                # Alive by other signs (an open stream...): recorded as its last heartbeat.
                conn.execute(
                    "UPDATE agents SET last_heartbeat_at = ? WHERE agent_id = ?", (seen, agent.agent_id)
                )
                continue
            conn.execute(
                "UPDATE agents SET status = 'offline', updated_at = ? WHERE agent_id = ?",
                (now, agent.agent_id),
            )
            out.append(self._release_all(conn, agent, now, "agent missed its heartbeats"))
        return out


def fetch_agent_any(conn: sqlite3.Connection, agent_id: str) -> Agent:
    row = conn.execute("SELECT * FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
    if row is None:
        raise NotFound(f"agent {agent_id!r} is not registered")
    return row_to_agent(row)
