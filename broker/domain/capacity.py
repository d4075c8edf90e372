"""What an agent may lease now: how many tasks (its free capacity), and which (those whose
required capabilities it has, every one of them).

A task that requires no capability requires ``ANY`` ("*"): it goes to an agent that says it takes
such tasks, not to whichever agent asks first (a specialist with capabilities of its own would
take work it cannot do). An agent lists "*" beside its capabilities to take them too; an agent with
no capability of its own holds it without saying (``marks.lease_capabilities``).

An agent holds at most ``max_concurrent_tasks`` running tasks. It may report
less room in its heartbeats (``reported_free_capacity``: a budget, lowered by
each lease and raised by each release until the next report), and the smaller
of the two counts. Only an available or busy agent leases: in maintenance or
offline its free capacity is 0.

What a lease and a release do to those counts is declared here (``ON_LEASE``,
``ON_RELEASE``) and applied by the database, in the same transaction as every
lease and release, whatever code path changed the task: its triggers are
generated from these declarations (broker/storage/sqlite/triggers.py,
broker/storage/postgres/triggers.py; tests/unit/test_triggers.py pins that the
migrated schema runs what they generate).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models.agents import AgentStatus
from ..models.tasks import TaskStatus

LEASING_STATUSES = frozenset({AgentStatus.AVAILABLE.value, AgentStatus.BUSY.value})
ANY = "*"  # the capability of the tasks that require none

HOLDING = TaskStatus.RUNNING  # a task in this status takes one of its holder's slots


@dataclass(frozen=True)
class Step:
    """How one of an agent's counts (a column of ``agents``) moves when it takes or gives back a
    task: by ``by``, never past ``bound`` (a number or another column); a count that may be unset
    (``unset``: NULL, the agent reported nothing) stays unset."""

    column: str
    by: int
    bound: str | None = None
    unset: bool = False


# A lease (a task starts holding a slot): one more running, one less in the reported budget (not
# below 0). A release (it stops holding it): one less running, one more in the budget (not above
# max_concurrent_tasks). The running count is also bounded by the agents table's CHECK
# (current_task_count <= max_concurrent_tasks): an over-lease aborts instead of being stored.
ON_LEASE = (
    Step("current_task_count", +1),
    Step("reported_free_capacity", -1, bound="0", unset=True),
)
ON_RELEASE = (
    Step("current_task_count", -1),
    Step("reported_free_capacity", +1, bound="max_concurrent_tasks", unset=True),
)


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
