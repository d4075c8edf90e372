"""What an agent may lease now: how many tasks (its free capacity), and which (those whose
required capabilities it has, every one of them).

A task that requires no capability requires ``ANY`` ("*"): it goes to an agent that says it takes
such tasks, not to whichever agent asks first (a specialist with capabilities of its own would
take work it cannot do). An agent lists "*" beside its capabilities to take them too; an agent with
no capability of its own holds it without saying (``marks.lease_capabilities``).

An agent holds at most ``max_concurrent_tasks`` running tasks. It may report
less room in its heartbeats (``reported_free_capacity``, lowered by each lease
and raised by each release until the next report), and the smaller of the two
counts. Only an available or busy agent leases: in maintenance or offline its
free capacity is 0. (The running count itself is kept by triggers in the same
transaction as every lease and release, 0003_tasks.sql.)
"""

from __future__ import annotations

from ..models.agents import AgentStatus

LEASING_STATUSES = frozenset({AgentStatus.AVAILABLE.value, AgentStatus.BUSY.value})
ANY = "*"  # the capability of the tasks that require none


def free_capacity(status: str, max_concurrent: int, running: int, reported_free: int | None) -> int:
    """Free slots of an agent (never negative)."""
    if status not in LEASING_STATUSES:
        return 0
    free = max_concurrent - running
    if reported_free is not None:
        free = min(free, reported_free)
    return max(free, 0)


def covers(agent_caps: set[str] | frozenset[str], required: tuple[str, ...]) -> bool:
    """Whether an agent with ``agent_caps`` may run a task requiring ``required`` (all of them;
    a task requiring nothing requires ``ANY``)."""
    return agent_caps.issuperset(required or (ANY,))


def lease_count(wanted: int, free: int) -> int:
    """How many tasks one lease may take: what was asked for, within the free capacity."""
    return max(0, min(wanted, free))
